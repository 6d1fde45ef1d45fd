"""Storj buckets through libuplink (native: end-to-end encrypted, no gateway in between).

The party's storage Secret holds a serialized access grant (``access``). ``share`` restricts it
offline to download+list under one prefix until the expiry (the satellite enforces the
macaroon caveats) and hands the peer the restricted grant; ``open_storj_grant`` opens it. Puts
record the sha256 as custom metadata and full downloads are checked against it.

The Go runtime is loaded into the process on first use; do not fork afterwards (see
hydrafed.storage.uplink).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from hydrafed import errors
from hydrafed.storage import uplink
from hydrafed.storage.base import (
    CHUNK_BYTES,
    CappedBuffer,
    ObjectInfo,
    check_read_scope,
    download_target,
    refuse_write,
    sha256_file,
)

SCHEME = "sj"
GRANT_KIND = "storj"
SHA256_META = "sha256"

_T = TypeVar("_T")


def retry_transient(fn: Callable[[], _T], *, attempts: int = 4, base_delay: float = 0.5) -> _T:
    """Call fn, retrying only UnavailableError (e.g. too many requests) with exponential backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except errors.UnavailableError:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


class StorjStore:
    """One access grant; buckets are the party's own."""

    def __init__(
        self,
        access: uplink.Access,
        *,
        read_only: tuple[str, str] | None = None,
        not_after: float | None = None,
        attempts: int = 4,
    ):
        self._access = access
        self._project: uplink.Project | None = None
        self._read_only = read_only
        self._not_after = not_after
        self._attempts = attempts

    @property
    def project(self) -> uplink.Project:
        """The project, opened on first use."""
        if self._project is None:
            self._project = self._access.open_project()
        return self._project

    def close(self) -> None:
        """Close the project and free the grant."""
        if self._project is not None:
            self._project.close()
            self._project = None
        self._access.close()

    def _retry(self, fn: Callable[[], _T]) -> _T:
        return retry_transient(fn, attempts=self._attempts)

    def _check_write(self) -> None:
        refuse_write(self._read_only)

    def _check_read(self, bucket: str, key: str) -> None:
        check_read_scope(self._read_only, self._not_after, bucket, key)

    # -- UpdateStore ----------------------------------------------------------------------------
    def ensure_bucket(self, bucket: str) -> None:
        self._check_write()
        self._retry(lambda: self.project.ensure_bucket(bucket))

    def put(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        self._check_write()
        path = Path(path)
        digest = sha256_file(path)

        def upload() -> int:
            with path.open("rb") as source:
                return self.project.upload_file(
                    bucket, key, source, metadata={SHA256_META: digest}, chunk=CHUNK_BYTES
                )

        size = self._retry(upload)
        return ObjectInfo(bucket, key, size, sha256=digest)

    def get(
        self, bucket: str, key: str, dest: Path, *, byte_range: tuple[int, int] | None = None
    ) -> ObjectInfo:
        self._check_read(bucket, key)
        dest, tmp = download_target(dest, byte_range)
        offset, length = (byte_range[0], byte_range[1] - byte_range[0] + 1) if byte_range else (0, -1)

        digests: list[Any] = []

        def download() -> uplink.ObjectMeta:
            digests.append(hashlib.sha256())  # a retry starts the hash over
            with tmp.open("wb") as out:
                return self.project.download_file(
                    bucket,
                    key,
                    _HashingWriter(out, digests[-1]),
                    offset=offset,
                    length=length,
                    chunk=CHUNK_BYTES,
                )

        try:
            meta = self._retry(download)
            recorded = meta.custom.get(SHA256_META)
            actual = digests[-1].hexdigest()
            if byte_range is None and recorded and actual != recorded:
                raise errors.IntegrityError(
                    f"{bucket}/{key}: the downloaded bytes do not hash to the sha256 recorded at upload; "
                    "the object is corrupt and was rejected"
                )
            tmp.replace(dest)
            return ObjectInfo(bucket, key, meta.size, sha256=recorded if byte_range else actual)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> tuple[bytes, ObjectInfo]:
        self._check_read(bucket, key)
        buffers: list[CappedBuffer] = []

        def download() -> uplink.ObjectMeta:
            buffers.append(CappedBuffer(bucket, key, max_bytes))  # a retry starts over
            return self.project.download_file(bucket, key, buffers[-1], chunk=CHUNK_BYTES)

        meta = self._retry(download)
        data, actual = buffers[-1].result()
        recorded = meta.custom.get(SHA256_META)
        if recorded and actual != recorded:
            raise errors.IntegrityError(
                f"{bucket}/{key}: the downloaded bytes do not hash to the sha256 recorded at upload; "
                "the object is corrupt and was rejected"
            )
        return data, ObjectInfo(bucket, key, meta.size, sha256=actual)

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        self._check_read(bucket, key)
        meta = self._retry(lambda: self.project.stat_object(bucket, key))
        return ObjectInfo(bucket, key, meta.size, sha256=meta.custom.get(SHA256_META))

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        if self._read_only is not None:
            granted = self._read_only[1]
            if granted.startswith(prefix):
                prefix = granted
            self._check_read(bucket, prefix)
        metas = self._retry(lambda: [m for m in self.project.list_objects(bucket, prefix)])
        found = [ObjectInfo(bucket, m.key, m.size, sha256=m.custom.get(SHA256_META)) for m in metas]
        return sorted(found, key=lambda info: info.key)

    def delete(self, bucket: str, key: str) -> None:
        self._check_write()
        with contextlib.suppress(uplink.ObjectNotFoundError):  # a missing object is not an error
            self._retry(lambda: self.project.delete_object(bucket, key))

    def share(self, bucket: str, prefix: str, expiry: timedelta | None = None) -> str:
        self._check_write()
        return json.dumps(share_grant(self._access, bucket, prefix, expiry), sort_keys=True)

    def uri(self, bucket: str, key: str) -> str:
        return f"{SCHEME}://{bucket}/{key}"

    def revoke(self, credential: str) -> None:
        """Revoke a read grant this store's ``share`` made: the satellite refuses it from now on.

        Storj-only (an S3 server's keys are revoked by its admin); the owner's grant must be a
        parent of the shared one.
        """
        self._check_write()
        try:
            serialized = str(json.loads(credential)["access"])
        except (ValueError, KeyError, TypeError):
            raise errors.ConfigError(
                "revoke: the credential is not a storj read grant from share(); pass share()'s return value"
            ) from None
        with _parse(serialized, "revoke: the read grant's `access` is malformed ({reason})") as shared:
            self._retry(lambda: self.project.revoke_access(shared))


class _HashingWriter:
    """A file that also feeds every chunk to a hash, so a download is hashed in the same pass."""

    def __init__(self, out: BinaryIO, digest: Any):
        self._out = out
        self._digest = digest

    def write(self, data: memoryview, /) -> int:
        self._digest.update(data)
        return self._out.write(data)


def share_grant(access: uplink.Access, bucket: str, prefix: str, expiry: timedelta | None) -> dict[str, Any]:
    """A read-only grant (download + list) for bucket/prefix until expiry, as open_shared reads it."""
    not_after = time.time() + expiry.total_seconds() if expiry is not None else None
    permission = uplink.Permission(
        allow_download=True, allow_list=True, not_after=int(not_after) if not_after is not None else 0
    )
    with access.share(permission, [uplink.SharePrefix(bucket, prefix)]) as restricted:
        serialized = restricted.serialize()
    grant: dict[str, Any] = {"kind": GRANT_KIND, "access": serialized, "bucket": bucket, "prefix": prefix}
    if not_after is not None:
        grant["notAfter"] = not_after
    return grant


def open_storj_store(credentials: Mapping[str, str]) -> StorjStore:
    """The owner's store from the storage Secret's serialized access grant."""
    serialized = credentials.get("access")
    if not serialized:
        raise errors.ConfigError(
            "storj storage credentials lack `access`: put the party's serialized access grant "
            "(uplink access create / the Storj console) into the storage Secret under key access"
        )
    return StorjStore(
        _parse(
            serialized,
            "storj storage credentials: `access` is not a serialized access grant ({reason}); put "
            "the party's whole grant (uplink access create / the Storj console) into the storage "
            "Secret under key access",
        )
    )


_MALFORMED_SHARE = "storj read grant: `access` is malformed ({reason}); ask the owner to share again"


def _parse(serialized: str, message: str) -> uplink.Access:
    """parse_access, with a malformed grant as a ConfigError that names the field (never the grant)."""
    try:
        return uplink.parse_access(serialized)
    except uplink.LibraryNotFoundError:
        raise
    except errors.StorageError as exc:
        reason = str(exc).split(" (libuplink", 1)[0]
        raise errors.ConfigError(message.format(reason=reason)) from None


def open_storj_grant(grant: Mapping[str, Any]) -> StorjStore:
    """A read-only store from a decoded grant written by ``StorjStore.share``."""
    try:
        serialized, bucket, prefix = str(grant["access"]), str(grant["bucket"]), str(grant["prefix"])
    except KeyError as missing:
        raise errors.ConfigError(f"storj read grant lacks {missing}: ask the owner to share again") from None
    not_after = grant.get("notAfter")
    return StorjStore(
        _parse(serialized, _MALFORMED_SHARE),
        read_only=(bucket, prefix),
        not_after=float(not_after) if not_after is not None else None,
    )
