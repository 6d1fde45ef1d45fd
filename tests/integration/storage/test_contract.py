"""One contract, every backend: local directories, s3 on a real SeaweedFS and storj on a real
local Storj network (tests/fixtures/storj.py). The round engine relies on exactly these behaviours."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.spec import StorageBackend, StorageSpec
from hydrafed.storage import (
    UpdateStore,
    fetch_verified,
    open_shared,
    open_store,
    read_verified,
    sha256_file,
    split_uri,
)
from hydrafed.storage.seaweedfs import SeaweedS3
from hydrafed.storage.storjnet import LocalStorj

pytestmark = pytest.mark.integration


@dataclass
class Backend:
    """An owner's store on a fresh bucket, and the URI scheme it announces."""

    store: UpdateStore
    bucket: str
    scheme: str


def _local(tmp_path: Path, _: pytest.FixtureRequest) -> Backend:
    return Backend(open_store(StorageSpec(root=str(tmp_path / "buckets"))), "party-a", "local")


def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    server: SeaweedS3 = request.getfixturevalue("seaweedfs")
    spec = StorageSpec(backend=StorageBackend.S3, endpoint=server.endpoint)
    return Backend(open_store(spec, server.credentials("party-a", reader_for="party-b")), "party-a", "s3")


def _storj(tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    """Project 0 of the local Storj network; STORJ_ACCESS (and STORJ_BUCKET) pick a real one instead."""
    access = os.environ.get("STORJ_ACCESS")
    if access:
        bucket = os.environ.get("STORJ_BUCKET", "hydrafed-test")
    else:
        network: LocalStorj = request.getfixturevalue("storj_network")
        access, bucket = network.credentials(0)["access"], "party-a"
    return Backend(open_store(StorageSpec(backend=StorageBackend.STORJ), {"access": access}), bucket, "sj")


BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Backend]] = {
    "local": _local,
    "s3": _s3,
    "storj": _storj,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path, request)
    made.store.ensure_bucket(made.bucket)
    made.store.ensure_bucket(made.bucket)  # idempotent
    yield made


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix: backends share one server (and bucket) across tests."""
    return f"t-{uuid.uuid4().hex[:8]}/"


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_get_roundtrip_ranges_and_uri(backend: Backend, prefix: str, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    key = f"{prefix}rounds/1/a.safetensors"

    put = backend.store.put(backend.bucket, key, _file(tmp_path, "up", data))
    got = backend.store.get(backend.bucket, key, tmp_path / "down")
    part = backend.store.get(backend.bucket, key, tmp_path / "part", byte_range=(1000, 1999))
    tail = backend.store.get(
        backend.bucket, key, tmp_path / "tail", byte_range=(len(data) - 5, len(data) - 1)
    )

    assert put.size == got.size == part.size == tail.size == len(data)
    assert (tmp_path / "down").read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest()  # hashed while downloading, every backend
    assert (tmp_path / "part").read_bytes() == data[1000:2000]
    assert (tmp_path / "tail").read_bytes() == data[-5:]
    uri = backend.store.uri(backend.bucket, key)
    assert split_uri(uri) == (backend.scheme, backend.bucket, key)


def test_get_bytes_hashes_in_memory_and_refuses_oversized_objects(
    backend: Backend, prefix: str, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    key = f"{prefix}rounds/1/b.safetensors"
    backend.store.put(backend.bucket, key, _file(tmp_path, "up", data))

    got, info = backend.store.get_bytes(backend.bucket, key, max_bytes=len(data))

    assert got == data
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(errors.IntegrityError, match="larger than"):
        backend.store.get_bytes(backend.bucket, key, max_bytes=len(data) - 1)
    with pytest.raises(errors.IntegrityError, match="does not match"):
        read_verified(backend.store, backend.bucket, key, "00" * 32, max_bytes=len(data))


def test_list_stat_delete_and_not_found(backend: Backend, prefix: str, tmp_path: Path) -> None:
    store, bucket = backend.store, backend.bucket
    for key in ("rounds/2/a", "rounds/1/a", "other/x"):
        store.put(bucket, prefix + key, _file(tmp_path, "f", key.encode()))

    assert [o.key for o in store.list(bucket, prefix + "rounds/")] == [
        prefix + "rounds/1/a",
        prefix + "rounds/2/a",
    ]
    assert store.stat(bucket, prefix + "other/x").size == len(b"other/x")
    store.delete(bucket, prefix + "other/x")
    store.delete(bucket, prefix + "other/x")  # deleting a missing object is fine
    with pytest.raises(errors.ObjectNotFoundError):
        store.stat(bucket, prefix + "other/x")
    with pytest.raises(errors.ObjectNotFoundError):
        store.get(bucket, prefix + "nope", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    assert store.list(bucket, prefix + "empty/") == []


def test_overwrite_replaces_the_whole_object(backend: Backend, prefix: str, tmp_path: Path) -> None:
    key = prefix + "k"
    backend.store.put(backend.bucket, key, _file(tmp_path, "a", b"first version, longer"))
    backend.store.put(backend.bucket, key, _file(tmp_path, "b", b"second"))

    backend.store.get(backend.bucket, key, tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == b"second"


def test_shared_credential_reads_its_prefix_and_never_writes(
    backend: Backend, prefix: str, tmp_path: Path
) -> None:
    store, bucket = backend.store, backend.bucket
    store.put(bucket, prefix + "rounds/1/a", _file(tmp_path, "f", b"update"))
    store.put(bucket, prefix + "private/key", _file(tmp_path, "g", b"secret"))
    peer = open_shared(store.share(bucket, prefix + "rounds/", timedelta(hours=1)))

    peer.get(bucket, prefix + "rounds/1/a", tmp_path / "read")

    assert (tmp_path / "read").read_bytes() == b"update"
    assert [o.key for o in peer.list(bucket, prefix)] == [prefix + "rounds/1/a"]
    assert peer.stat(bucket, prefix + "rounds/1/a").size == 6
    with pytest.raises(errors.AccessDeniedError):
        peer.get(bucket, prefix + "private/key", tmp_path / "stolen")
    with pytest.raises(errors.AccessDeniedError):
        peer.put(bucket, prefix + "rounds/1/b", _file(tmp_path, "h", b"forged"))
    with pytest.raises(errors.AccessDeniedError):
        peer.delete(bucket, prefix + "rounds/1/a")
    with pytest.raises(errors.AccessDeniedError):
        peer.share(bucket, prefix, None)
    assert store.stat(bucket, prefix + "rounds/1/a").size == 6


def test_expired_credential_is_refused(backend: Backend, prefix: str, tmp_path: Path) -> None:
    backend.store.put(backend.bucket, prefix + "a", _file(tmp_path, "f", b"x"))
    peer = open_shared(backend.store.share(backend.bucket, prefix, timedelta(seconds=-1)))

    with pytest.raises(errors.AccessDeniedError, match="expired"):
        peer.get(backend.bucket, prefix + "a", tmp_path / "late")


def test_fetch_verified_rejects_a_wrong_hash_and_leaves_no_file(
    backend: Backend, prefix: str, tmp_path: Path
) -> None:
    source = _file(tmp_path, "f", os.urandom(100_000))
    backend.store.put(backend.bucket, prefix + "u", source)
    dest = tmp_path / "peer" / "u.safetensors"

    with pytest.raises(errors.IntegrityError, match="does not match"):
        fetch_verified(backend.store, backend.bucket, prefix + "u", dest, "0" * 64)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == []

    info = fetch_verified(backend.store, backend.bucket, prefix + "u", dest, sha256_file(source))
    assert info.size == 100_000
    assert dest.read_bytes() == source.read_bytes()
