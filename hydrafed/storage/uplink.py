"""hydrafed's own ctypes binding to libuplink (Storj's uplink-c), shaped like uplink-python.

uplink-python 1.2.2.0 cannot be installed (its setup step clones uplink-c with a malformed git
command and hides the failure; unmaintained since 2021), so this module binds the C library
directly and fixes that binding's faults: every error code raises a typed exception (unknown
and newer codes too, EOF is end-of-stream, not a crash), every result, handle and iterator is
freed, bytes move through buffers shared with C (no per-byte Python loops), and a process that
forks after loading the Go runtime refuses to use it.

Library lookup: ``$HYDRAFED_LIBUPLINK``, then ``libuplink.so`` of the PyPI wheel
``storj-uplink``, then ``libuplinkc.so`` of an installed ``uplink_python``.

API (like uplink-python): ``parse_access(serialized) -> Access``; ``Access.serialize()``,
``Access.share(Permission, [SharePrefix])``, ``Access.satellite_address()``,
``Access.open_project() -> Project``; ``Project.ensure_bucket``, ``upload_file``,
``download_file``, ``stat_object``, ``list_objects``, ``delete_object``, ``close``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from hydrafed import errors

ENV_LIBRARY = "HYDRAFED_LIBUPLINK"
EOF = -1

# -- errors -------------------------------------------------------------------------------------


class UplinkError(errors.StorageError):
    """A libuplink error; ``code`` is uplink-c's error code."""

    code = 0

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class InternalError(UplinkError):
    code = 0x02


class CanceledError(UplinkError):
    code = 0x03


class InvalidHandleError(UplinkError):
    code = 0x04


class TooManyRequestsError(UplinkError, errors.UnavailableError):
    code = 0x05


class BandwidthLimitExceededError(UplinkError):
    code = 0x06


class StorageLimitExceededError(UplinkError):
    code = 0x07


class SegmentsLimitExceededError(UplinkError):
    code = 0x08


class PermissionDeniedError(UplinkError, errors.AccessDeniedError):
    code = 0x09


class BucketNameInvalidError(UplinkError):
    code = 0x10


class BucketAlreadyExistsError(UplinkError):
    code = 0x11


class BucketNotEmptyError(UplinkError):
    code = 0x12


class BucketNotFoundError(UplinkError, errors.ObjectNotFoundError):
    code = 0x13


class ObjectKeyInvalidError(UplinkError):
    code = 0x20


class ObjectNotFoundError(UplinkError, errors.ObjectNotFoundError):
    code = 0x21


class UploadDoneError(UplinkError):
    code = 0x22


class EdgeAuthDialFailedError(UplinkError, errors.UnavailableError):
    code = 0x30


class EdgeRegisterAccessFailedError(UplinkError):
    code = 0x31


class DialError(InternalError, errors.UnavailableError):
    """An internal error that is a failed connection (satellite or node unreachable): transient."""


_DIAL_MARKERS = ("tcp connector failed", "dial tcp", "connection refused", "i/o timeout", "no route to host")


class LibraryNotFoundError(errors.ConfigError):
    """No libuplink shared library could be found."""


ERRORS: dict[int, type[UplinkError]] = {
    cls.code: cls
    for cls in (
        InternalError,
        CanceledError,
        InvalidHandleError,
        TooManyRequestsError,
        BandwidthLimitExceededError,
        StorageLimitExceededError,
        SegmentsLimitExceededError,
        PermissionDeniedError,
        BucketNameInvalidError,
        BucketAlreadyExistsError,
        BucketNotEmptyError,
        BucketNotFoundError,
        ObjectKeyInvalidError,
        ObjectNotFoundError,
        UploadDoneError,
        EdgeAuthDialFailedError,
        EdgeRegisterAccessFailedError,
    )
}


def error_for(code: int, message: str) -> UplinkError:
    """The typed exception for an uplink-c error code; unknown codes still raise UplinkError."""
    cls = ERRORS.get(code)
    if cls is InternalError and any(marker in message for marker in _DIAL_MARKERS):
        cls = DialError
    if cls is None:
        return UplinkError(f"libuplink error 0x{code:02x}: {message}", code)
    return cls(f"{message} (libuplink {cls.__name__}, 0x{code:02x})")


# -- C structures (uplink_definitions.h, identical from uplink-c v1.2.2 to v1.14.0) --------------


class _Handle(ctypes.Structure):
    _fields_ = [("_handle", ctypes.c_size_t)]


class _Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int32), ("message", ctypes.c_char_p)]


_ErrorP = ctypes.POINTER(_Error)
_HandleP = ctypes.POINTER(_Handle)


class _Permission(ctypes.Structure):
    _fields_ = [
        ("allow_download", ctypes.c_bool),
        ("allow_upload", ctypes.c_bool),
        ("allow_list", ctypes.c_bool),
        ("allow_delete", ctypes.c_bool),
        ("not_before", ctypes.c_int64),
        ("not_after", ctypes.c_int64),
    ]


class _SharePrefix(ctypes.Structure):
    _fields_ = [("bucket", ctypes.c_char_p), ("prefix", ctypes.c_char_p)]


class _Config(ctypes.Structure):
    _fields_ = [
        ("user_agent", ctypes.c_char_p),
        ("dial_timeout_milliseconds", ctypes.c_int32),
        ("temp_directory", ctypes.c_char_p),
    ]


class _Bucket(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("created", ctypes.c_int64)]


class _SystemMetadata(ctypes.Structure):
    _fields_ = [("created", ctypes.c_int64), ("expires", ctypes.c_int64), ("content_length", ctypes.c_int64)]


class _CustomMetadataEntry(ctypes.Structure):
    # char* in C; declared void* so that keys and values with NUL bytes survive (lengths rule)
    _fields_ = [
        ("key", ctypes.c_void_p),
        ("key_length", ctypes.c_size_t),
        ("value", ctypes.c_void_p),
        ("value_length", ctypes.c_size_t),
    ]


class _CustomMetadata(ctypes.Structure):
    _fields_ = [("entries", ctypes.POINTER(_CustomMetadataEntry)), ("count", ctypes.c_size_t)]


class _Object(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_char_p),
        ("is_prefix", ctypes.c_bool),
        ("system", _SystemMetadata),
        ("custom", _CustomMetadata),
    ]


class _ListObjectsOptions(ctypes.Structure):
    _fields_ = [
        ("prefix", ctypes.c_char_p),
        ("cursor", ctypes.c_char_p),
        ("recursive", ctypes.c_bool),
        ("system", ctypes.c_bool),
        ("custom", ctypes.c_bool),
    ]


class _UploadOptions(ctypes.Structure):
    _fields_ = [("expires", ctypes.c_int64)]


class _DownloadOptions(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_int64), ("length", ctypes.c_int64)]


def _result(name: str, field: str, ctype: Any) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": [(field, ctype), ("error", _ErrorP)]})


_AccessResult = _result("_AccessResult", "access", _HandleP)
_ProjectResult = _result("_ProjectResult", "project", _HandleP)
_BucketResult = _result("_BucketResult", "bucket", ctypes.POINTER(_Bucket))
_ObjectResult = _result("_ObjectResult", "object", ctypes.POINTER(_Object))
_UploadResult = _result("_UploadResult", "upload", _HandleP)
_DownloadResult = _result("_DownloadResult", "download", _HandleP)
_StringResult = _result("_StringResult", "string", ctypes.c_char_p)
_WriteResult = _result("_WriteResult", "bytes_written", ctypes.c_size_t)
_ReadResult = _result("_ReadResult", "bytes_read", ctypes.c_size_t)

_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "uplink_parse_access": ([ctypes.c_char_p], _AccessResult),
    "uplink_access_serialize": ([_HandleP], _StringResult),
    "uplink_access_satellite_address": ([_HandleP], _StringResult),
    "uplink_access_share": (
        [_HandleP, _Permission, ctypes.POINTER(_SharePrefix), ctypes.c_int64],
        _AccessResult,
    ),
    "uplink_config_open_project": ([_Config, _HandleP], _ProjectResult),
    "uplink_close_project": ([_HandleP], _ErrorP),
    "uplink_ensure_bucket": ([_HandleP, ctypes.c_char_p], _BucketResult),
    "uplink_stat_object": ([_HandleP, ctypes.c_char_p, ctypes.c_char_p], _ObjectResult),
    "uplink_delete_object": ([_HandleP, ctypes.c_char_p, ctypes.c_char_p], _ObjectResult),
    "uplink_revoke_access": ([_HandleP, _HandleP], _ErrorP),
    "uplink_upload_object": (
        [_HandleP, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_UploadOptions)],
        _UploadResult,
    ),
    "uplink_upload_write": ([_HandleP, ctypes.c_void_p, ctypes.c_size_t], _WriteResult),
    "uplink_upload_set_custom_metadata": ([_HandleP, _CustomMetadata], _ErrorP),
    "uplink_upload_commit": ([_HandleP], _ErrorP),
    "uplink_upload_abort": ([_HandleP], _ErrorP),
    "uplink_download_object": (
        [_HandleP, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_DownloadOptions)],
        _DownloadResult,
    ),
    "uplink_download_read": ([_HandleP, ctypes.c_void_p, ctypes.c_size_t], _ReadResult),
    "uplink_download_info": ([_HandleP], _ObjectResult),
    "uplink_close_download": ([_HandleP], _ErrorP),
    "uplink_list_objects": ([_HandleP, ctypes.c_char_p, ctypes.POINTER(_ListObjectsOptions)], _HandleP),
    "uplink_object_iterator_next": ([_HandleP], ctypes.c_bool),
    "uplink_object_iterator_item": ([_HandleP], ctypes.POINTER(_Object)),
    "uplink_object_iterator_err": ([_HandleP], _ErrorP),
    "uplink_free_object_iterator": ([_HandleP], None),
    "uplink_free_object": ([ctypes.POINTER(_Object)], None),
    "uplink_free_error": ([_ErrorP], None),
    "uplink_free_access_result": ([_AccessResult], None),
    "uplink_free_project_result": ([_ProjectResult], None),
    "uplink_free_bucket_result": ([_BucketResult], None),
    "uplink_free_object_result": ([_ObjectResult], None),
    "uplink_free_upload_result": ([_UploadResult], None),
    "uplink_free_download_result": ([_DownloadResult], None),
    "uplink_free_string_result": ([_StringResult], None),
    "uplink_free_write_result": ([_WriteResult], None),
    "uplink_free_read_result": ([_ReadResult], None),
}

# -- loading ------------------------------------------------------------------------------------

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_loaded_in_pid: int | None = None


def library_candidates() -> list[Path]:
    """Where libuplink is looked for, in order."""
    found: list[Path] = []
    if env := os.environ.get(ENV_LIBRARY):
        found.append(Path(env))
    for package, name in (("storj_uplink", "libuplink.so"), ("uplink_python", "libuplinkc.so")):
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.append(Path(location) / name)
    return found


def load_library() -> ctypes.CDLL:
    """Load libuplink once per process and declare every function's C signature."""
    global _library, _loaded_in_pid
    with _lock:
        if _library is not None:
            _guard()
            return _library
        candidates = library_candidates()
        env = os.environ.get(ENV_LIBRARY)
        if env and not Path(env).is_file():
            raise LibraryNotFoundError(f"{ENV_LIBRARY}={env} is not a file: point it at libuplink.so")
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise LibraryNotFoundError(
                "libuplink not found: pip install storj-uplink (ships libuplink.so), or build uplink-c "
                f"with `go build -buildmode=c-shared` and set {ENV_LIBRARY} to the .so"
            )
        library = ctypes.CDLL(str(path))
        for name, (argtypes, restype) in _SIGNATURES.items():
            function = getattr(library, name)
            function.argtypes = argtypes
            function.restype = restype
        _library, _loaded_in_pid = library, os.getpid()
        return library


def _first_line(raw: bytes) -> str:
    """Go errors carry a stack trace after the first line; callers need the first line."""
    return raw.decode("utf-8", "replace").strip().splitlines()[0]


def _guard() -> None:
    """Refuse to call into a Go runtime inherited through fork()."""
    if _loaded_in_pid is not None and _loaded_in_pid != os.getpid():
        raise errors.StorageError(
            "libuplink was loaded before this process forked; the Go runtime does not survive "
            "fork: use multiprocessing's 'spawn' start method or keep Storj I/O in one process"
        )


def _take_error(lib: ctypes.CDLL, error: Any) -> None:
    """Raise the typed exception for an UplinkError* (and free it); no-op for NULL."""
    if not error:
        return
    code, raw = error.contents.code, error.contents.message
    message = _first_line(raw) if raw else "end of stream" if code == EOF else "no message"
    lib.uplink_free_error(error)
    raise error_for(code, message)


def _check(lib: ctypes.CDLL, result: Any, free: str) -> None:
    """Raise and free when a result struct carries an error."""
    if result.error:
        code, raw = result.error.contents.code, result.error.contents.message
        message = _first_line(raw) if raw else "no message"
        getattr(lib, free)(result)
        raise error_for(code, message)


class Writable(Protocol):
    """Where downloads go: a binary file, or anything with write() (e.g. a hashing tee)."""

    def write(self, data: memoryview, /) -> int:
        """Consume data; the buffer is reused after the call returns."""
        ...


# -- public API ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    """What a shared access may do; times are unix seconds (0 = unbounded)."""

    allow_download: bool = False
    allow_upload: bool = False
    allow_list: bool = False
    allow_delete: bool = False
    not_before: int = 0
    not_after: int = 0


@dataclass(frozen=True)
class SharePrefix:
    """A bucket and key prefix a shared access is limited to."""

    bucket: str
    prefix: str = ""


@dataclass(frozen=True)
class ObjectMeta:
    """An object's key, size and custom metadata."""

    key: str
    size: int
    created: int
    custom: dict[str, str]


class Access:
    """A parsed access grant; frees its handle on close (or when collected)."""

    def __init__(self, lib: ctypes.CDLL, result: Any):
        self._lib = lib
        self._result: Any = result

    @property
    def _handle(self) -> Any:
        _guard()
        if self._result is None:
            raise InvalidHandleError("this access was closed", InvalidHandleError.code)
        return self._result.access

    def serialize(self) -> str:
        """The grant as base58 text, to store or hand to a peer."""
        result = self._lib.uplink_access_serialize(self._handle)
        _check(self._lib, result, "uplink_free_string_result")
        text = bytes(result.string).decode()
        self._lib.uplink_free_string_result(result)
        return text

    def satellite_address(self) -> str:
        """The satellite this grant talks to (node-id@host:port)."""
        result = self._lib.uplink_access_satellite_address(self._handle)
        _check(self._lib, result, "uplink_free_string_result")
        text = bytes(result.string).decode()
        self._lib.uplink_free_string_result(result)
        return text

    def share(self, permission: Permission, prefixes: Sequence[SharePrefix] = ()) -> Access:
        """A narrower grant: the permissions and prefixes intersect this one's (offline)."""
        c_permission = _Permission(
            permission.allow_download,
            permission.allow_upload,
            permission.allow_list,
            permission.allow_delete,
            permission.not_before,
            permission.not_after,
        )
        array = (_SharePrefix * len(prefixes))(
            *[_SharePrefix(p.bucket.encode(), p.prefix.encode()) for p in prefixes]
        )
        result = self._lib.uplink_access_share(self._handle, c_permission, array, len(prefixes))
        _check(self._lib, result, "uplink_free_access_result")
        return Access(self._lib, result)

    def open_project(self, *, user_agent: str = "hydrafed", dial_timeout_ms: int = 10_000) -> Project:
        """Connect to the satellite (lazily: the first operation dials)."""
        config = _Config(user_agent.encode(), dial_timeout_ms, None)
        result = self._lib.uplink_config_open_project(config, self._handle)
        _check(self._lib, result, "uplink_free_project_result")
        return Project(self._lib, result)

    def close(self) -> None:
        """Free the grant's handle."""
        if self._result is not None:
            self._lib.uplink_free_access_result(self._result)
            self._result = None

    def __enter__(self) -> Access:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_result", None) is not None and _loaded_in_pid == os.getpid():
            self.close()


def parse_access(serialized: str) -> Access:
    """Parse a serialized access grant (offline)."""
    lib = load_library()
    result = lib.uplink_parse_access(serialized.strip().encode())
    _check(lib, result, "uplink_free_access_result")
    return Access(lib, result)


class Project:
    """An open project; every method streams through fixed buffers."""

    def __init__(self, lib: ctypes.CDLL, result: Any):
        self._lib = lib
        self._result: Any = result

    @property
    def _handle(self) -> Any:
        _guard()
        if self._result is None:
            raise InvalidHandleError("this project was closed", InvalidHandleError.code)
        return self._result.project

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket unless it exists."""
        result = self._lib.uplink_ensure_bucket(self._handle, bucket.encode())
        _check(self._lib, result, "uplink_free_bucket_result")
        self._lib.uplink_free_bucket_result(result)

    def stat_object(self, bucket: str, key: str) -> ObjectMeta:
        """Size and metadata of one object."""
        result = self._lib.uplink_stat_object(self._handle, bucket.encode(), key.encode())
        return self._object_result(result)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object (missing objects are not an error in recent uplink)."""
        result = self._lib.uplink_delete_object(self._handle, bucket.encode(), key.encode())
        _check(self._lib, result, "uplink_free_object_result")
        self._lib.uplink_free_object_result(result)

    def revoke_access(self, access: Access) -> None:
        """Revoke a grant derived from this project's: the satellite refuses it from now on."""
        _take_error(self._lib, self._lib.uplink_revoke_access(self._handle, access._handle))

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectMeta]:
        """Objects under prefix (recursive), paged by libuplink; the iterator is always freed."""
        options = _ListObjectsOptions(prefix.encode(), None, True, True, True)
        iterator = self._lib.uplink_list_objects(self._handle, bucket.encode(), ctypes.byref(options))
        try:
            while self._lib.uplink_object_iterator_next(iterator):
                item = self._lib.uplink_object_iterator_item(iterator)
                try:
                    meta = _object_meta(item.contents)
                finally:
                    self._lib.uplink_free_object(item)
                yield meta
            _take_error(self._lib, self._lib.uplink_object_iterator_err(iterator))
        finally:
            self._lib.uplink_free_object_iterator(iterator)

    def upload_file(
        self,
        bucket: str,
        key: str,
        source: IO[bytes],
        *,
        metadata: dict[str, str] | None = None,
        chunk: int = 1 << 20,
    ) -> int:
        """Stream a file into an object; committed only after every byte was written."""
        result = self._lib.uplink_upload_object(self._handle, bucket.encode(), key.encode(), None)
        _check(self._lib, result, "uplink_free_upload_result")
        upload = result.upload
        buffer = bytearray(chunk)
        c_buffer = (ctypes.c_char * chunk).from_buffer(buffer)
        total = 0
        try:
            while n := source.readinto(buffer):  # type: ignore[attr-defined]
                offset = 0
                while offset < n:
                    written = self._lib.uplink_upload_write(
                        upload, ctypes.addressof(c_buffer) + offset, n - offset
                    )
                    _check(self._lib, written, "uplink_free_write_result")
                    offset += written.bytes_written
                    self._lib.uplink_free_write_result(written)
                total += n
            if metadata:
                self._set_metadata(upload, metadata)
            _take_error(self._lib, self._lib.uplink_upload_commit(upload))
        except BaseException:
            abort_error = self._lib.uplink_upload_abort(upload)
            if abort_error:
                self._lib.uplink_free_error(abort_error)
            raise
        finally:
            del c_buffer
            self._lib.uplink_free_upload_result(result)
        return total

    def _set_metadata(self, upload: Any, metadata: dict[str, str]) -> None:
        buffers = [
            (ctypes.create_string_buffer(k.encode()), ctypes.create_string_buffer(v.encode()))
            for k, v in metadata.items()
        ]
        entries = (_CustomMetadataEntry * len(buffers))(
            *[
                _CustomMetadataEntry(ctypes.addressof(k), len(k) - 1, ctypes.addressof(v), len(v) - 1)
                for k, v in buffers
            ]
        )
        custom = _CustomMetadata(entries, len(buffers))
        _take_error(self._lib, self._lib.uplink_upload_set_custom_metadata(upload, custom))

    def download_file(
        self,
        bucket: str,
        key: str,
        dest: Writable,
        *,
        offset: int = 0,
        length: int = -1,
        chunk: int = 1 << 20,
    ) -> ObjectMeta:
        """Stream an object (or length bytes from offset) into dest until EOF."""
        options = _DownloadOptions(offset, length)
        result = self._lib.uplink_download_object(
            self._handle, bucket.encode(), key.encode(), ctypes.byref(options)
        )
        _check(self._lib, result, "uplink_free_download_result")
        download = result.download
        buffer = bytearray(chunk)
        c_buffer = (ctypes.c_char * chunk).from_buffer(buffer)
        view = memoryview(buffer)
        try:
            info = self._object_result(self._lib.uplink_download_info(download))
            while True:
                read = self._lib.uplink_download_read(download, ctypes.addressof(c_buffer), chunk)
                n = read.bytes_read
                if n:
                    dest.write(view[:n])
                if read.error:
                    if read.error.contents.code == EOF:
                        self._lib.uplink_free_read_result(read)
                        break
                    _check(self._lib, read, "uplink_free_read_result")
                self._lib.uplink_free_read_result(read)
            return info
        finally:
            view.release()
            del c_buffer
            _close_error = self._lib.uplink_close_download(download)
            if _close_error:
                self._lib.uplink_free_error(_close_error)
            self._lib.uplink_free_download_result(result)

    def _object_result(self, result: Any) -> ObjectMeta:
        _check(self._lib, result, "uplink_free_object_result")
        try:
            return _object_meta(result.object.contents)
        finally:
            self._lib.uplink_free_object_result(result)

    def close(self) -> None:
        """Close the project and free its handle."""
        if self._result is not None:
            error = self._lib.uplink_close_project(self._result.project)
            self._lib.uplink_free_project_result(self._result)
            self._result = None
            _take_error(self._lib, error)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _object_meta(obj: Any) -> ObjectMeta:
    custom: dict[str, str] = {}
    for i in range(obj.custom.count):
        entry = obj.custom.entries[i]
        key = ctypes.string_at(entry.key, entry.key_length).decode("utf-8", "replace")
        custom[key] = ctypes.string_at(entry.value, entry.value_length).decode("utf-8", "replace")
    return ObjectMeta(
        key=bytes(obj.key or b"").decode(),
        size=int(obj.system.content_length),
        created=int(obj.system.created),
        custom=custom,
    )
