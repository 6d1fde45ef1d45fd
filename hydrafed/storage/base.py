"""The update-store contract every backend (local, s3, storj) fulfils.

A party writes its updates to its own bucket and hands each peer a read-only credential for a
prefix of it. Stores move bytes between files and the bucket in bounded memory; they know
nothing of Hydra or training.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from hydrafed import errors

CHUNK_BYTES = 1 << 20
"""Read/write granularity of streamed copies and hashing: memory stays bounded by this."""

S3_PRELOAD_ENDPOINT_ENV = "HYDRAFED_S3_PRELOAD_ENDPOINT"
"""An S3 endpoint whose client ``hydrafed.storage.s3`` builds and warms when it is imported.
``hydrafed simulate --store seaweedfs`` sets it before starting its fork server, so that every
party inherits that client instead of building its own (here: named without importing boto3)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object."""

    bucket: str
    key: str
    size: int
    sha256: str | None = None
    """Hex sha256. From ``put``/``stat``/``list``: what the store recorded at upload, when the
    backend keeps one (s3, storj). From a whole-object ``get``: the digest of the bytes written."""


class UpdateStore(Protocol):
    """A bucket store; read-only stores raise AccessDeniedError on every write."""

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        ...

    def put(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        """Upload a file, streamed; the object appears whole or not at all."""
        ...

    def get(
        self, bucket: str, key: str, dest: Path, *, byte_range: tuple[int, int] | None = None
    ) -> ObjectInfo:
        """Download an object (or the inclusive byte range [start, end]) into dest, streamed."""
        ...

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> tuple[bytes, ObjectInfo]:
        """A whole object in memory, hashed as it arrives (``ObjectInfo.sha256``).

        For updates small enough to hold: no temp file, rename or second read. An object longer
        than ``max_bytes`` is refused with IntegrityError before or while it downloads.
        """
        ...

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        """Size of an object; ObjectNotFoundError when it does not exist."""
        ...

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with prefix, sorted by key."""
        ...

    def delete(self, bucket: str, key: str) -> None:
        """Remove an object; deleting a missing object is not an error."""
        ...

    def share(self, bucket: str, prefix: str, expiry: timedelta | None = None) -> str:
        """A serialized credential that can only read objects under prefix, until expiry."""
        ...

    def uri(self, bucket: str, key: str) -> str:
        """The object's address as announced to peers (local://, s3://, sj://)."""
        ...


ReadScope = tuple[str, str]
"""(bucket, key prefix) that a shared, read-only credential may read."""


def refuse_write(read_scope: ReadScope | None) -> None:
    """Stores opened from a shared credential never write or delete."""
    if read_scope is not None:
        raise errors.AccessDeniedError("this credential is read-only: writes and deletes are refused")


def check_read_scope(read_scope: ReadScope | None, not_after: float | None, bucket: str, key: str) -> None:
    """A shared credential reads only its bucket and prefix, and only until it expires."""
    if not_after is not None and time.time() > not_after:
        raise errors.AccessDeniedError(
            "the shared credential has expired: ask the bucket owner for a new one"
        )
    if read_scope is not None:
        allowed_bucket, prefix = read_scope
        if bucket != allowed_bucket or not key.startswith(prefix):
            raise errors.AccessDeniedError(
                f"the shared credential only reads {allowed_bucket}/{prefix}*, not {bucket}/{key}"
            )


def download_target(dest: Path, byte_range: tuple[int, int] | None) -> tuple[Path, Path]:
    """Check an inclusive byte range and make the temp file a download streams into before rename."""
    if byte_range is not None and (byte_range[0] < 0 or byte_range[1] < byte_range[0]):
        raise errors.ConfigError(f"byte_range {byte_range}: need 0 <= start <= end (inclusive)")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".download-")
    os.close(fd)
    return dest, Path(tmp_name)


class CappedBuffer:
    """An in-memory download target that hashes what it is given and refuses more than its cap.

    Peers' objects are untrusted: one that is larger than the model it claims to be must not be
    able to fill the party's memory.
    """

    def __init__(self, bucket: str, key: str, max_bytes: int) -> None:
        self._what = f"{bucket}/{key}"
        self._max_bytes = max_bytes
        self._data = bytearray()
        self._digest = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append a chunk; IntegrityError once the object exceeds the cap."""
        self.refuse_size(len(self._data) + len(data))
        self._data += data
        self._digest.update(data)
        return len(data)

    def refuse_size(self, size: int) -> None:
        """IntegrityError if an object of ``size`` bytes is over the cap (check before downloading)."""
        if size > self._max_bytes:
            raise errors.IntegrityError(
                f"{self._what} is {size} bytes or more, larger than the {self._max_bytes} expected; "
                "the object was rejected"
            )

    def result(self) -> tuple[bytes, str]:
        """The bytes received and their sha256 (hex)."""
        return bytes(self._data), self._digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def split_uri(uri: str) -> tuple[str, str, str]:
    """Split ``scheme://bucket/key`` into its parts."""
    scheme, sep, rest = uri.partition("://")
    bucket, slash, key = rest.partition("/")
    if not sep or not slash or not bucket or not key:
        raise ValueError(f"not an object URI (scheme://bucket/key): {uri!r}")
    return scheme, bucket, key
