"""S3 buckets through boto3: Storj's S3 gateway or any S3 server (tested on SeaweedFS).

Uploads stream from the file: one PUT up to ``part_bytes``, multipart above; downloads fetch parts in
parallel into a temporary file next to the destination, hash them in order as they complete and
rename the file into place. botocore's "standard" retry
mode retries only transient failures (5xx, throttling, dropped connections) with exponential
backoff and jitter; a 403 or 404 is never retried. Every botocore failure becomes a typed
hydrafed error.

Sharing: S3 has no offline way to derive a restricted key, so the bucket owner issues read-only
keys out of band (a SeaweedFS identity with ``Read:<bucket>``/``List:<bucket>``, or a Storj
grant restricted with ``share`` and registered with Storj's auth service) and passes them in the
credentials as ``readAccessKeyId``/``readSecretAccessKey``; ``share`` packs them with the bucket,
prefix and expiry for the peer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
import botocore.loaders
import botocore.session
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from s3transfer.exceptions import RetriesExceededError as TransferRetriesExceededError
from s3transfer.manager import TransferManager

from hydrafed import errors
from hydrafed.spec import S3_REGION
from hydrafed.storage.base import (
    CHUNK_BYTES,
    S3_PRELOAD_ENDPOINT_ENV,
    CappedBuffer,
    ObjectInfo,
    check_read_scope,
    download_target,
    refuse_write,
    sha256_file,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCHEME = "s3"
SHA256_META = "sha256"
"""User-metadata key under which ``put`` records the object's sha256 (x-amz-meta-sha256)."""

PART_BYTES = 16 << 20
"""Multipart part size; Storj's gateway prefers 64 MiB parts (one segment each)."""

MAX_ATTEMPTS = 5
"""botocore's attempts per request (standard retry mode)."""

_T = TypeVar("_T")
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidToken",
}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


_session_lock = threading.Lock()

_loader = botocore.loaders.create_loader()
"""botocore's data loader, shared by every session of this process and of its forked children.

It caches the parsed JSON of the S3 model, its endpoint rules and the partitions. It is warmed
when this module is imported (``_warm``), which in ``hydrafed simulate`` happens in the fork
server: the parties then inherit the parsed data instead of each parsing it again. Measured in a
child forked from the server: its first client cost 22.2 MiB and 78 ms of CPU cold, 8.8 MiB and
22 ms warm (28 more clients: ~0.4 MiB each either way; a party's stores now share one,
``_shared``). ``hydrafed.storage`` imports this module lazily, so only a process about to open
an S3 store pays for the warming, and the fork server of a simulate run whose parties use S3
(``worker.processes.preloaded_modules``)."""


@functools.cache
def _session(pid: int) -> boto3.session.Session:
    """One boto3 session per process, so that every client shares its parsed service model.

    A session of its own per store cost 12.4 MiB per client (botocore loads and parses the S3
    model anew); a party reading 28 peers held 29 of them, which is where most of the 15 GB of
    PSS of 29 parties on SeaweedFS went. From one session a client costs about 0.4 MiB.
    Keyed by pid: a forked child builds its own session (a session's clients and connection
    pools must not cross a fork), over the shared ``_loader`` (plain parsed data).
    """
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def _config(*, region: str, path_style: bool, max_attempts: int) -> Config:
    return Config(
        region_name=region,
        s3={"addressing_style": "path" if path_style else "virtual"},
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=60,
        signature_version="s3v4",
        # checksums only where the API requires them: SeaweedFS and Storj's gateway do not
        # all speak the newer flexible checksums, and sha256 is checked end to end anyway
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _client(**kwargs: Any) -> S3Client:
    """A client from the process's shared session (boto3 sessions do not create clients thread-safely)."""
    with _session_lock:
        return _session(os.getpid()).client("s3", **kwargs)


_request_keys: contextvars.ContextVar[Credentials | None] = contextvars.ContextVar(
    "_request_keys", default=None
)
"""The keys of the store whose request is being signed in this thread (see ``_shared``)."""

_SHARED_KEY_ID = "hydrafed-shared-client-signs-each-request"
"""The shared client's own access key id: no server knows it, so a request that somehow went out
without its store's keys would be refused (403), never signed with another store's keys."""

_Endpoint = tuple[str | None, str, bool, int]
"""endpoint, region, path style, attempts: what a shared client is built for."""

_prebuilt: dict[_Endpoint, S3Client] = {}
"""Shared clients built at import that have never opened a connection: the one kind of client
that may cross a fork (a forked child has no socket or lock of its parent's to share)."""


def _sign_with_store_keys(request: AWSRequest, **_: Any) -> None:
    """botocore's before-sign hook: sign with the calling store's keys (its signer reads
    ``request_credentials`` from the request's signing context, as it does for S3 Express)."""
    keys = _request_keys.get()
    if keys is not None:
        request.context.setdefault("signing", {})["request_credentials"] = keys


def _new_shared(endpoint: _Endpoint) -> S3Client:
    url, region, path_style, max_attempts = endpoint
    client = _client(
        endpoint_url=url,
        aws_access_key_id=_SHARED_KEY_ID,
        aws_secret_access_key=os.urandom(16).hex(),
        config=_config(region=region, path_style=path_style, max_attempts=max_attempts),
    )
    client.meta.events.register("before-sign.s3", _sign_with_store_keys)
    return client


@functools.cache
def _shared(pid: int, endpoint: _Endpoint) -> S3Client:
    """One client per process and endpoint for every store on it (a party's own and its peers').

    The first client a forked party built cost it ~7.6 MiB (copy-on-write of the parsed model it
    walks, a client class with a docstring per operation, endpoint rules, event handlers) and its
    first requests ~4.4 MiB more; each further client ~0.4 MiB. The stores of one endpoint differ
    only in their keys, so they share this client and each request is signed with its store's
    keys (``_request_keys``). Keyed by pid like ``_session``: a child builds its own, or takes
    the never-connected one its fork server built (``_prebuilt``).
    """
    return _prebuilt.pop(endpoint, None) or _new_shared(endpoint)


class _EmptyBody:
    """The raw body botocore reads from a response: here, none."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


def _answer_locally(request: AWSRequest, **_: Any) -> AWSResponse:
    """A before-send hook: answer 404 without a socket (it warms a client, nothing more)."""
    headers = HTTPHeaders()
    headers["Content-Length"] = "0"
    return AWSResponse(str(request.url), 404, headers, _EmptyBody())


def _prebuild(endpoint: _Endpoint) -> None:
    """Build ``endpoint``'s shared client and run the requests a party makes through it (HEAD,
    PUT, GET), each answered in-process (404), never sent: its model, operations, serialisers and
    endpoint rules are then built before the fork. A party inheriting it paid 4.8 MiB for its S3
    client instead of 12 (one run in a forked child)."""
    client = _new_shared(endpoint)
    hook = cast("Callable[..., None]", _answer_locally)  # botocore uses what a before-send hook returns
    client.meta.events.register_first("before-send.s3", hook)
    try:
        for call in (
            lambda: client.head_object(Bucket="warm", Key="warm"),
            lambda: client.put_object(Bucket="warm", Key="warm", Body=b"", Metadata={SHA256_META: "0"}),
            lambda: client.get_object(Bucket="warm", Key="warm"),
        ):
            with contextlib.suppress(ClientError):
                call()
    finally:
        client.meta.events.unregister("before-send.s3", hook)
    _prebuilt[endpoint] = client


def _warm() -> None:
    """Fill ``_loader`` by building one client: the shared client of ``S3_PRELOAD_ENDPOINT_ENV``
    where it is set (for the stores ``open_store`` makes from a spec with its defaults), else a
    throwaway one (no request is sent, no credentials are looked up)."""
    preload = os.environ.get(S3_PRELOAD_ENDPOINT_ENV)
    with contextlib.suppress(BotoCoreError, ValueError):
        if preload:
            _prebuild((preload, S3_REGION, True, MAX_ATTEMPTS))
            return
        _client(
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="warm",
            aws_secret_access_key="warm",  # noqa: S106 (no request is made: nothing to authenticate)
            config=_config(region=S3_REGION, path_style=True, max_attempts=MAX_ATTEMPTS),
        )


_warm()


class _ContextThreadPool(ThreadPoolExecutor):
    """s3transfer's executor for multipart uploads: each task runs in the context it was
    submitted from, so its requests are signed with the uploading store's keys."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class _BrokenStreamError(errors.UnavailableError):
    """The response body broke off mid-download (botocore retried only the request)."""


class S3Store:
    """One S3 endpoint and one set of keys; buckets are per party."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        access_key_id: str,
        secret_access_key: str,
        region: str = S3_REGION,
        path_style: bool = True,
        session_token: str | None = None,
        read_access_key_id: str | None = None,
        read_secret_access_key: str | None = None,
        read_only: tuple[str, str] | None = None,
        not_after: float | None = None,
        part_bytes: int = PART_BYTES,
        max_concurrency: int = 4,
        download_threads: int = 8,
        max_attempts: int = MAX_ATTEMPTS,
        stream_attempts: int = 3,
    ):
        self.endpoint = endpoint
        self.region = region
        self.path_style = path_style
        self._read_keys = (
            (read_access_key_id, read_secret_access_key)
            if read_access_key_id and read_secret_access_key
            else None
        )
        self._read_only = read_only
        self._not_after = not_after
        self._stream_attempts = stream_attempts
        self._part_bytes = part_bytes
        self._download_threads = download_threads
        self._keys = Credentials(access_key_id, secret_access_key, session_token)
        """Every request of this store is signed with these (``_mapped``), on the shared client."""
        self._client: S3Client = _shared(os.getpid(), (endpoint, region, path_style, max_attempts))
        self._transfer = TransferConfig(
            multipart_threshold=part_bytes,
            multipart_chunksize=part_bytes,
            max_concurrency=max_concurrency,
            io_chunksize=CHUNK_BYTES,
            max_io_queue=16,
        )

    @property
    def client(self) -> S3Client:
        """The underlying boto3 client (benchmarks compare with it): the process's one client for
        this endpoint, shared with every other store on it. Its own key is one no server knows;
        requests made through it outside this store's methods are refused."""
        return self._client

    # -- checks ---------------------------------------------------------------------------------
    def _check_write(self) -> None:
        refuse_write(self._read_only)

    def _check_read(self, bucket: str, key: str) -> None:
        check_read_scope(self._read_only, self._not_after, bucket, key)

    @contextmanager
    def _signing(self) -> Iterator[None]:
        """Every request made inside, on this thread or the transfer manager's, is signed with this
        store's keys (``_shared``)."""
        token = _request_keys.set(self._keys)
        try:
            yield
        finally:
            _request_keys.reset(token)

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """Turn botocore failures into typed hydrafed errors that name the object; every request
        made inside is signed with this store's keys (``_shared``)."""
        with self._signing():
            try:
                yield
            except ClientError as exc:
                raise _map_client_error(exc, what) from exc
            except (S3UploadFailedError, RetriesExceededError, TransferRetriesExceededError) as exc:
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, ClientError):
                    raise _map_client_error(cause, what) from exc
                raise errors.UnavailableError(f"{what}: S3 transfer failed after retries: {exc}") from exc
            except EndpointConnectionError as exc:
                raise errors.UnavailableError(
                    f"{what}: cannot reach S3 endpoint {self.endpoint}: {exc}"
                ) from exc
            except (
                BotoConnectionError,
                HTTPClientError,
            ) as exc:  # timeouts, dropped connections, broken bodies
                raise errors.UnavailableError(f"{what}: S3 transfer failed after retries: {exc}") from exc
            except (NoCredentialsError, ParamValidationError) as exc:
                raise errors.ConfigError(f"{what}: {exc}: check the storage credentials and names") from exc
            except BotoCoreError as exc:
                raise errors.StorageError(f"{what}: S3 client error: {exc}") from exc

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        with self._mapped(what):
            return fn()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- UpdateStore ----------------------------------------------------------------------------
    def ensure_bucket(self, bucket: str) -> None:
        self._check_write()
        with self._signing():
            self._ensure_bucket(bucket)

    def _ensure_bucket(self, bucket: str) -> None:
        try:
            self._client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _NOT_FOUND:
                raise _map_client_error(exc, f"bucket {bucket}") from exc
        except BotoCoreError:
            with self._mapped(f"bucket {bucket}"):
                raise
        try:
            self._client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise _map_client_error(exc, f"create bucket {bucket}") from exc

    def put(self, bucket: str, key: str, path: Path) -> ObjectInfo:
        self._check_write()
        path = Path(path)
        digest = sha256_file(path)
        size = path.stat().st_size
        with self._mapped(f"put {bucket}/{key}"):
            if size <= self._part_bytes:
                # One PUT streamed from the file: upload_file would start a transfer manager and
                # its threads for every call, which cost a round's update more than its bytes.
                with path.open("rb") as body:
                    self._client.put_object(
                        Bucket=bucket, Key=key, Body=body, ContentLength=size, Metadata={SHA256_META: digest}
                    )
            else:
                # s3transfer's threads make the parts' requests: they run in this context.
                with TransferManager(
                    self._client, self._transfer, executor_cls=_ContextThreadPool
                ) as manager:
                    manager.upload(
                        str(path), bucket, key, extra_args={"Metadata": {SHA256_META: digest}}
                    ).result()
        return ObjectInfo(bucket, key, size, sha256=digest)

    def get(
        self, bucket: str, key: str, dest: Path, *, byte_range: tuple[int, int] | None = None
    ) -> ObjectInfo:
        """Stream into a temp file next to dest, hashing on the way; rename when complete.

        A whole-object download is checked against the sha256 recorded at upload and returns the
        sha256 of the bytes written, so callers need not hash the file again.
        """
        self._check_read(bucket, key)
        dest, tmp = download_target(dest, byte_range)
        try:
            if byte_range is None:
                info = self._download_whole(bucket, key, tmp)
            else:
                info = self._retry_stream(lambda: self._stream(bucket, key, tmp, byte_range))
            tmp.replace(dest)
            return info
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, bucket: str, key: str, *, max_bytes: int) -> tuple[bytes, ObjectInfo]:
        self._check_read(bucket, key)
        what = f"get {bucket}/{key}"

        def fetch() -> tuple[bytes, ObjectInfo]:
            buffer = CappedBuffer(bucket, key, max_bytes)
            with self._mapped(what):
                response = self._client.get_object(Bucket=bucket, Key=key)
            buffer.refuse_size(int(response["ContentLength"]))
            try:
                with self._mapped(what):
                    for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                        buffer.write(chunk)
            except errors.UnavailableError as exc:
                raise _BrokenStreamError(str(exc)) from exc
            data, actual = buffer.result()
            recorded = response.get("Metadata", {}).get(SHA256_META)
            if recorded is not None and actual != recorded:
                raise errors.IntegrityError(
                    f"{bucket}/{key}: the downloaded bytes do not hash to the sha256 recorded at upload; "
                    "the object is corrupt and was rejected"
                )
            return data, ObjectInfo(bucket, key, len(data), sha256=actual)

        return self._retry_stream(fetch)

    def _download_whole(self, bucket: str, key: str, tmp: Path) -> ObjectInfo:
        """Parallel ranged GETs written in place, hashed in order as the parts complete.

        The hash of part n runs while later parts still download, so verification costs no extra
        pass; memory is one chunk per thread (the file's pages are the kernel's page cache).
        """
        head = self.stat(bucket, key)
        if head.size <= self._part_bytes:
            return self._retry_stream(lambda: self._stream(bucket, key, tmp, None))
        ranges = [
            (start, min(start + self._part_bytes, head.size) - 1)
            for start in range(0, head.size, self._part_bytes)
        ]
        digest = hashlib.sha256()
        with tmp.open("r+b") as out, ThreadPoolExecutor(self._download_threads) as pool:
            fd = out.fileno()
            futures = [
                pool.submit(self._retry_stream, functools.partial(self._fetch_part, bucket, key, fd, r))
                for r in ranges
            ]
            try:
                for (start, end), future in zip(ranges, futures, strict=True):
                    future.result()
                    position = start
                    while position <= end:
                        data = os.pread(fd, min(CHUNK_BYTES, end + 1 - position), position)
                        digest.update(data)
                        position += len(data)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        actual = digest.hexdigest()
        if head.sha256 is not None and actual != head.sha256:
            raise errors.IntegrityError(
                f"{bucket}/{key}: the downloaded bytes do not hash to the sha256 recorded at upload; "
                "the object is corrupt and was rejected"
            )
        return ObjectInfo(bucket, key, head.size, sha256=actual)

    def _fetch_part(self, bucket: str, key: str, fd: int, byte_range: tuple[int, int]) -> None:
        start, end = byte_range
        what = f"get {bucket}/{key} bytes {start}-{end}"
        with self._mapped(what):
            response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        position = start
        try:
            with self._mapped(what):
                for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                    os.pwrite(fd, chunk, position)
                    position += len(chunk)
        except errors.UnavailableError as exc:
            raise _BrokenStreamError(str(exc)) from exc
        if position != end + 1:
            raise _BrokenStreamError(
                f"{what}: the server sent {position - start} bytes, expected {end + 1 - start}"
            )

    def _retry_stream(self, fn: Callable[[], _T]) -> _T:
        """botocore retries the request, not a body that breaks mid-stream: restart those."""
        for attempt in range(self._stream_attempts):
            try:
                return fn()
            except _BrokenStreamError:
                if attempt == self._stream_attempts - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _stream(self, bucket: str, key: str, tmp: Path, byte_range: tuple[int, int] | None) -> ObjectInfo:
        what = f"get {bucket}/{key}" + (f" bytes {byte_range[0]}-{byte_range[1]}" if byte_range else "")
        digest = hashlib.sha256()
        with self._mapped(what):
            if byte_range is None:
                response = self._client.get_object(Bucket=bucket, Key=key)
                size = int(response["ContentLength"])
            else:
                start, end = byte_range
                response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
                size = int(str(response.get("ContentRange", "/0")).rpartition("/")[2] or 0)
        try:
            with self._mapped(what), tmp.open("wb") as out:
                for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
        except errors.UnavailableError as exc:
            raise _BrokenStreamError(str(exc)) from exc
        recorded = response.get("Metadata", {}).get(SHA256_META)
        if byte_range is not None:
            return ObjectInfo(bucket, key, size, sha256=recorded)
        actual = digest.hexdigest()
        if recorded is not None and actual != recorded:
            raise errors.IntegrityError(
                f"{bucket}/{key}: the downloaded bytes do not hash to the sha256 recorded at upload; "
                "the object is corrupt and was rejected"
            )
        return ObjectInfo(bucket, key, size, sha256=actual)

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        self._check_read(bucket, key)
        head = self._call(f"stat {bucket}/{key}", lambda: self._client.head_object(Bucket=bucket, Key=key))
        return ObjectInfo(
            bucket, key, int(head["ContentLength"]), sha256=head.get("Metadata", {}).get(SHA256_META)
        )

    def list(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        if self._read_only is not None:
            granted = self._read_only[1]
            if granted.startswith(prefix):
                prefix = granted  # a broad listing narrows to what the grant covers
            self._check_read(bucket, prefix)
        found: list[ObjectInfo] = []
        with self._mapped(f"list {bucket}/{prefix}*"):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(ObjectInfo(bucket, item["Key"], int(item["Size"])))
        return sorted(found, key=lambda info: info.key)

    def delete(self, bucket: str, key: str) -> None:
        self._check_write()
        self._call(f"delete {bucket}/{key}", lambda: self._client.delete_object(Bucket=bucket, Key=key))

    def share(self, bucket: str, prefix: str, expiry: timedelta | None = None) -> str:
        self._check_write()
        if self._read_keys is None:
            raise errors.ConfigError(
                "s3 share needs read-only keys: put readAccessKeyId and readSecretAccessKey (issued by "
                "the S3 server's admin, or from a restricted Storj grant registered with the auth "
                "service) into the storage credentials"
            )
        grant: dict[str, Any] = {
            "kind": SCHEME,
            "endpoint": self.endpoint,
            "region": self.region,
            "pathStyle": self.path_style,
            "bucket": bucket,
            "prefix": prefix,
            "accessKeyId": self._read_keys[0],
            "secretAccessKey": self._read_keys[1],
        }
        if expiry is not None:
            grant["notAfter"] = time.time() + expiry.total_seconds()
        return json.dumps(grant, sort_keys=True)

    def uri(self, bucket: str, key: str) -> str:
        return f"{SCHEME}://{bucket}/{key}"


def open_s3_store(
    endpoint: str | None, region: str, path_style: bool, credentials: Mapping[str, str]
) -> S3Store:
    """The owner's store from the spec's endpoint and the storage Secret's keys."""
    missing = [name for name in ("accessKeyId", "secretAccessKey") if not credentials.get(name)]
    if missing:
        raise errors.ConfigError(
            f"s3 storage credentials lack {', '.join(missing)}: put them in the party's storage Secret"
        )
    return S3Store(
        endpoint=endpoint,
        region=region,
        path_style=path_style,
        access_key_id=credentials["accessKeyId"],
        secret_access_key=credentials["secretAccessKey"],
        session_token=credentials.get("sessionToken") or None,
        read_access_key_id=credentials.get("readAccessKeyId") or None,
        read_secret_access_key=credentials.get("readSecretAccessKey") or None,
    )


def open_s3_grant(grant: Mapping[str, Any]) -> S3Store:
    """A read-only S3Store from a decoded grant written by ``S3Store.share``."""
    try:
        bucket, prefix = str(grant["bucket"]), str(grant["prefix"])
        key_id, secret = str(grant["accessKeyId"]), str(grant["secretAccessKey"])
    except KeyError as missing:
        raise errors.ConfigError(f"s3 read grant lacks {missing}: ask the owner to share again") from None
    not_after = grant.get("notAfter")
    return S3Store(
        endpoint=grant.get("endpoint"),
        region=str(grant.get("region") or S3_REGION),
        path_style=bool(grant.get("pathStyle", True)),
        access_key_id=key_id,
        secret_access_key=secret,
        read_only=(bucket, prefix),
        not_after=float(not_after) if not_after is not None else None,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _map_client_error(exc: ClientError, what: str) -> errors.StorageError:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _NOT_FOUND or status == 404:
        return errors.ObjectNotFoundError(f"{what}: not found ({code or status})")
    if code in _DENIED or status == 403:
        return errors.AccessDeniedError(f"{what}: access denied by the S3 server ({code or status})")
    if code in _UNAVAILABLE or status >= 500:
        return errors.UnavailableError(f"{what}: S3 server unavailable after retries ({code or status})")
    return errors.StorageError(f"{what}: S3 error {code or status}: {exc}")
