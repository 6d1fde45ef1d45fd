"""Update stores: where parties keep their model updates and how peers read them.

``open_store`` gives a party its own read-write store from the Federation's StorageSpec;
``open_shared`` turns a credential a peer shared into a read-only store; ``fetch_verified``
downloads a peer's object and checks its announced sha256 before anyone reads it.
Backends: local directories (the embedded default), s3 and storj.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from hydrafed import errors
from hydrafed.spec import StorageBackend, StorageSpec
from hydrafed.storage.base import S3_PRELOAD_ENDPOINT_ENV, ObjectInfo, UpdateStore, sha256_file, split_uri
from hydrafed.storage.local import LocalStore, open_local_grant

__all__ = [
    "S3_PRELOAD_ENDPOINT_ENV",
    "LocalStore",
    "ObjectInfo",
    "UpdateStore",
    "fetch_verified",
    "open_shared",
    "open_store",
    "read_verified",
    "sha256_file",
    "share_buckets",
    "split_uri",
]


def open_store(spec: StorageSpec, credentials: Mapping[str, str] | None = None) -> UpdateStore:
    """The party's own read-write store for the configured backend."""
    if spec.backend == StorageBackend.LOCAL:
        if not spec.root:
            raise errors.ConfigError("storage.root is required for the local backend: set it to a directory")
        return LocalStore(Path(spec.root))
    if spec.backend == StorageBackend.S3:
        from hydrafed.storage.s3 import open_s3_store

        return open_s3_store(spec.endpoint, spec.region, spec.path_style, credentials or {})
    if spec.backend == StorageBackend.STORJ:
        from hydrafed.storage.storj import open_storj_store

        return open_storj_store(credentials or {})
    raise errors.ConfigError(f"storage.backend {spec.backend.value!r} is unknown: use local, s3 or storj")


def share_buckets(
    spec: StorageSpec,
    credentials: Mapping[str, Mapping[str, str]],
    prefix: str,
    expiry: timedelta | None = None,
) -> dict[str, str]:
    """Owner -> the read grant on ``prefix`` of its own bucket (named after it), made if missing.

    What each organisation's operator does for its own party, done here for several owners at
    once (``hydrafed simulate``, the in-process engine): ``credentials`` maps each owner to its
    storage credentials.
    """
    grants = {}
    for owner, keys in credentials.items():
        store = open_store(spec, keys)
        store.ensure_bucket(owner)
        grants[owner] = store.share(owner, prefix, expiry)
    return grants


def open_shared(credential: str) -> UpdateStore:
    """A read-only store from a credential that a peer produced with ``share``."""
    if not isinstance(credential, str) or not credential.strip():
        raise errors.ConfigError("empty read grant: paste the text that the peer's `share` produced")
    try:
        grant = json.loads(credential)
    except json.JSONDecodeError:
        grant = None
    if not isinstance(grant, dict) or "kind" not in grant:
        raise errors.ConfigError("unreadable read grant: expected the text that the peer's `share` produced")
    if grant["kind"] == "local":
        return open_local_grant(grant)
    if grant["kind"] == "s3":
        from hydrafed.storage.s3 import open_s3_grant

        return open_s3_grant(grant)
    if grant["kind"] == "storj":
        from hydrafed.storage.storj import open_storj_grant

        return open_storj_grant(grant)
    raise errors.ConfigError(
        f"read grants of kind {grant['kind']!r} are not supported: use local, s3 or storj"
    )


def fetch_verified(store: UpdateStore, bucket: str, key: str, dest: Path, sha256: str) -> ObjectInfo:
    """Download an object to dest only if its bytes hash to sha256; no partial file is left.

    Raises
    ------
    IntegrityError
        The downloaded bytes do not match the announced hash; dest is not created.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".fetch-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        info = store.get(bucket, key, tmp)
        # every backend hashes while it downloads and returns the digest of the bytes written
        actual = info.sha256 if info.sha256 is not None else sha256_file(tmp)
        if actual != sha256.lower():
            raise errors.IntegrityError(
                f"{bucket}/{key}: sha256 {actual} does not match the announced {sha256}; "
                "the object was rejected"
            )
        tmp.replace(dest)
        return info
    finally:
        tmp.unlink(missing_ok=True)


def read_verified(store: UpdateStore, bucket: str, key: str, sha256: str, *, max_bytes: int) -> bytes:
    """An object's bytes, only if they hash to sha256 and are at most max_bytes long.

    The in-memory twin of ``fetch_verified`` for updates small enough to hold (a model's
    exchanged state): no temp file, rename or second read.
    """
    data, info = store.get_bytes(bucket, key, max_bytes=max_bytes)
    if info.sha256 != sha256.lower():
        raise errors.IntegrityError(
            f"{bucket}/{key}: sha256 {info.sha256} does not match the announced {sha256}; "
            "the object was rejected"
        )
    return data
