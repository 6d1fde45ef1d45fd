"""The local Storj network's launcher and the storj store's bad-input errors, without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.spec import StorageBackend, StorageSpec
from hydrafed.storage import open_shared, open_store, storjnet, uplink
from hydrafed.storage.storj import StorjStore
from tests.unit.storage.storj_grants import make_grant

pytestmark = pytest.mark.unit


def test_missing_planet_binary_names_the_setting_and_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storjnet.PLANET_ENV, str(tmp_path / "nope"))

    with pytest.raises(errors.ConfigError, match=r"HYDRAFED_STORJ_PLANET=.*make storj"):
        storjnet.find_planet()
    with pytest.raises(errors.ConfigError, match="make storj"):
        storjnet.LocalStorj.start(tmp_path / "work")
    assert not (tmp_path / "work").exists()  # nothing started, nothing written


def test_a_non_executable_planet_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planet = tmp_path / "planet"
    planet.write_text("not a program")
    monkeypatch.setenv(storjnet.PLANET_ENV, str(planet))

    with pytest.raises(errors.ConfigError, match="missing"):
        storjnet.find_planet()
    planet.chmod(0o755)
    assert storjnet.find_planet() == planet


def test_at_least_one_project(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="projects must be at least 1"):
        storjnet.LocalStorj.start(tmp_path, projects=0)


def test_project_repr_hides_the_grant() -> None:
    project = storjnet.StorjProject("project-0", "id", api_key="KEY-SECRET", access="GRANT-SECRET")

    assert "SECRET" not in repr(project)


def test_malformed_grants_name_the_field_and_hide_the_text() -> None:
    spec = StorageSpec(backend=StorageBackend.STORJ)
    with pytest.raises(errors.ConfigError, match="`access` is not a serialized access grant") as owner:
        open_store(spec, {"access": "s3cr3t-but-broken"})
    shared = json.dumps({"kind": "storj", "access": "s3cr3t-but-broken", "bucket": "b", "prefix": "p/"})
    with pytest.raises(errors.ConfigError, match="read grant: `access` is malformed") as peer:
        open_shared(shared)

    assert "s3cr3t" not in str(owner.value) and "s3cr3t" not in str(peer.value)


def test_revoke_takes_only_a_share_credential() -> None:
    store = StorjStore(uplink.parse_access(make_grant()))

    with pytest.raises(errors.ConfigError, match="pass share\\(\\)'s return value"):
        store.revoke("not json")
    with pytest.raises(errors.ConfigError, match="malformed"):
        store.revoke(json.dumps({"access": "broken"}))
    read_only = StorjStore(uplink.parse_access(make_grant()), read_only=("b", "p/"))
    with pytest.raises(errors.AccessDeniedError):
        read_only.revoke(json.dumps({"access": make_grant()}))
    store.close()
    read_only.close()
