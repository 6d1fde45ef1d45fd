"""The local (directory) store: the contract the round engine relies on."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.spec import StorageSpec
from hydrafed.storage import (
    LocalStore,
    fetch_verified,
    open_shared,
    open_store,
    sha256_file,
    share_buckets,
    split_uri,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "buckets")
    store.ensure_bucket("party-a")
    return store


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_get_roundtrip_with_ranges(store: LocalStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    info = store.put("party-a", "rounds/1/a.safetensors", _file(tmp_path, "up", data))

    store.get("party-a", "rounds/1/a.safetensors", tmp_path / "down")
    store.get("party-a", "rounds/1/a.safetensors", tmp_path / "part", byte_range=(10, 19))

    assert info.size == len(data)
    assert (tmp_path / "down").read_bytes() == data
    assert (tmp_path / "part").read_bytes() == data[10:20]
    assert store.uri("party-a", "rounds/1/a.safetensors") == "local://party-a/rounds/1/a.safetensors"
    assert split_uri("local://party-a/rounds/1/a.safetensors") == (
        "local",
        "party-a",
        "rounds/1/a.safetensors",
    )


def test_list_stat_delete_and_missing_objects(store: LocalStore, tmp_path: Path) -> None:
    for key in ("rounds/2/a", "rounds/1/a", "other/x"):
        store.put("party-a", key, _file(tmp_path, "f", key.encode()))

    assert [o.key for o in store.list("party-a", "rounds/")] == ["rounds/1/a", "rounds/2/a"]
    assert store.stat("party-a", "other/x").size == len(b"other/x")
    store.delete("party-a", "other/x")
    store.delete("party-a", "other/x")  # idempotent
    with pytest.raises(errors.ObjectNotFoundError):
        store.stat("party-a", "other/x")
    with pytest.raises(errors.ObjectNotFoundError):
        store.get("party-a", "nope", tmp_path / "nope")
    with pytest.raises(errors.ObjectNotFoundError):
        store.put("no-such-bucket", "k", _file(tmp_path, "g", b"x"))


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "", "/abs"])
def test_keys_cannot_escape_the_bucket(store: LocalStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(errors.ConfigError, match="invalid object key"):
        store.put("party-a", key, _file(tmp_path, "f", b"x"))


def test_shared_credential_reads_only_its_prefix_and_never_writes(store: LocalStore, tmp_path: Path) -> None:
    store.put("party-a", "rounds/1/a", _file(tmp_path, "f", b"update"))
    store.put("party-a", "private/key", _file(tmp_path, "g", b"secret"))
    peer = open_shared(store.share("party-a", "rounds/", timedelta(hours=1)))

    peer.get("party-a", "rounds/1/a", tmp_path / "read")

    assert (tmp_path / "read").read_bytes() == b"update"
    assert [o.key for o in peer.list("party-a")] == ["rounds/1/a"]
    with pytest.raises(errors.AccessDeniedError):
        peer.get("party-a", "private/key", tmp_path / "stolen")
    with pytest.raises(errors.AccessDeniedError):
        peer.put("party-a", "rounds/1/a", _file(tmp_path, "h", b"forged"))
    with pytest.raises(errors.AccessDeniedError):
        peer.delete("party-a", "rounds/1/a")
    assert store.stat("party-a", "rounds/1/a").size == len(b"update")


def test_expired_credential_is_refused(store: LocalStore, tmp_path: Path) -> None:
    store.put("party-a", "rounds/1/a", _file(tmp_path, "f", b"update"))
    peer = open_shared(store.share("party-a", "rounds/", timedelta(seconds=-1)))

    with pytest.raises(errors.AccessDeniedError, match="expired"):
        peer.get("party-a", "rounds/1/a", tmp_path / "read")


def test_fetch_verified_accepts_the_announced_hash_and_rejects_tampering(
    store: LocalStore, tmp_path: Path
) -> None:
    data = b"weights" * 1000
    store.put("party-a", "rounds/1/a", _file(tmp_path, "f", data))
    good = hashlib.sha256(data).hexdigest()

    fetch_verified(store, "party-a", "rounds/1/a", tmp_path / "ok", good)
    with pytest.raises(errors.IntegrityError, match="does not match"):
        fetch_verified(store, "party-a", "rounds/1/a", tmp_path / "bad", "0" * 64)

    assert sha256_file(tmp_path / "ok") == good
    assert not (tmp_path / "bad").exists()
    assert not list(tmp_path.glob(".fetch-*"))


def test_open_store_and_bad_credentials(tmp_path: Path) -> None:
    assert isinstance(open_store(StorageSpec(root=str(tmp_path))), LocalStore)
    with pytest.raises(errors.ConfigError, match=r"storage.root"):
        open_store(StorageSpec())
    with pytest.raises(errors.ConfigError, match="unreadable read grant"):
        open_shared("not json")


def test_share_buckets_makes_each_owners_bucket_and_a_grant_on_its_prefix(tmp_path: Path) -> None:
    spec = StorageSpec(backend="local", root=str(tmp_path / "buckets"))

    grants = share_buckets(spec, {"party-a": {}, "party-b": {}}, "fed/rounds/", timedelta(hours=1))

    assert sorted(grants) == ["party-a", "party-b"]
    owner = open_store(spec)
    owner.put("party-b", "fed/rounds/1/b", _file(tmp_path, "f", b"update"))
    owner.put("party-b", "fed/other", _file(tmp_path, "g", b"other"))
    peer = open_shared(grants["party-b"])
    peer.get("party-b", "fed/rounds/1/b", tmp_path / "read")
    assert (tmp_path / "read").read_bytes() == b"update"
    with pytest.raises(errors.AccessDeniedError):
        peer.get("party-b", "fed/other", tmp_path / "outside")
    assert (tmp_path / "buckets" / "party-a").is_dir()  # made, though nothing is in it yet
