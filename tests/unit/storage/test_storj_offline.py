"""libuplink through hydrafed's ctypes binding, offline: grants parse, serialize, restrict; errors map."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.spec import StorageSpec
from hydrafed.storage import open_shared, open_store, uplink
from tests.unit.storage.storj_grants import decode_grant, make_grant

pytestmark = pytest.mark.unit

# storj common/macaroon Caveat field numbers
DISALLOW_READS, DISALLOW_WRITES, DISALLOW_LISTS, DISALLOW_DELETES, ALLOWED_PATHS = 1, 2, 3, 4, 10


def test_parse_and_serialize_round_trip() -> None:
    grant = make_grant()
    access = uplink.parse_access(grant)
    assert access.satellite_address().endswith("@127.0.0.1:7777")
    again = uplink.parse_access(access.serialize())
    assert decode_grant(again.serialize()).satellite == decode_grant(grant).satellite


def test_share_restricts_permissions_and_prefix() -> None:
    access = uplink.parse_access(make_grant())
    restricted = access.share(
        uplink.Permission(allow_download=True, allow_list=True),
        [uplink.SharePrefix("party-a", "rounds/")],
    )
    decoded = decode_grant(restricted.serialize())
    caveat = dict((n, v) for n, v in decoded.caveats[-1] if n != ALLOWED_PATHS)
    assert caveat.get(DISALLOW_WRITES) == 1 and caveat.get(DISALLOW_DELETES) == 1
    assert DISALLOW_READS not in caveat and DISALLOW_LISTS not in caveat
    paths = [v for n, v in decoded.caveats[-1] if n == ALLOWED_PATHS]
    assert len(paths) == 1 and isinstance(paths[0], bytes) and b"party-a" in paths[0]
    # the root key is gone: only the shared prefix's derived key travels
    assert decode_grant(make_grant()).has_default_key and not decoded.has_default_key
    assert len(decoded.store_entries) == 1


def test_store_share_gives_read_only_store(tmp_path: Path) -> None:
    owner = open_store(StorageSpec.model_validate({"backend": "storj"}), {"access": make_grant()})
    credential = owner.share("party-a", "rounds/", timedelta(hours=1))
    peer = open_shared(credential)
    update = tmp_path / "u.bin"
    update.write_bytes(b"x")
    with pytest.raises(errors.AccessDeniedError):
        peer.put("party-a", "rounds/1/a.safetensors", update)
    with pytest.raises(errors.AccessDeniedError):
        peer.delete("party-a", "rounds/1/a.safetensors")
    with pytest.raises(errors.AccessDeniedError):
        peer.stat("party-b", "rounds/1/a.safetensors")
    assert peer.uri("party-a", "rounds/1/a.safetensors") == "sj://party-a/rounds/1/a.safetensors"


def test_bad_grant_raises_typed_error() -> None:
    with pytest.raises(uplink.UplinkError, match="access grant"):
        uplink.parse_access("not-a-grant")


def test_missing_access_names_the_key() -> None:
    with pytest.raises(errors.ConfigError, match="access"):
        open_store(StorageSpec.model_validate({"backend": "storj"}), {})


@pytest.mark.parametrize("code", sorted(uplink.ERRORS))
def test_every_error_code_maps_to_its_class(code: int) -> None:
    error = uplink.error_for(code, "boom")
    assert type(error) is uplink.ERRORS[code] and "boom" in str(error)


def test_error_families() -> None:
    assert isinstance(uplink.error_for(0x21, "x"), errors.ObjectNotFoundError)
    assert isinstance(uplink.error_for(0x09, "x"), errors.AccessDeniedError)
    assert isinstance(uplink.error_for(0x05, "x"), errors.UnavailableError)
    unknown = uplink.error_for(0x7F, "new")
    assert type(unknown) is uplink.UplinkError and "0x7f" in str(unknown)


def test_library_env_pointing_nowhere_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(uplink.ENV_LIBRARY, "/nonexistent/libuplink.so")
    assert uplink.library_candidates()[0] == Path("/nonexistent/libuplink.so")


@pytest.mark.skipif(not os.environ.get("STORJ_ACCESS"), reason="live Storj test: set STORJ_ACCESS to a grant")
def test_live_round_trip(tmp_path: Path) -> None:
    store = open_store(
        StorageSpec.model_validate({"backend": "storj"}), {"access": os.environ["STORJ_ACCESS"]}
    )
    bucket = os.environ.get("STORJ_BUCKET", "hydrafed-test")
    store.ensure_bucket(bucket)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(1 << 20))
    info = store.put(bucket, "live/obj.bin", src)
    got = store.get(bucket, "live/obj.bin", tmp_path / "dst.bin")
    assert got.size == info.size == src.stat().st_size
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    store.delete(bucket, "live/obj.bin")
    with pytest.raises(errors.ObjectNotFoundError):
        store.stat(bucket, "live/obj.bin")
