"""Async client of one hydra-node API endpoint (WebSocket and HTTP on one port).

The client connects with ``history=yes``, treats ``Greetings`` as the end of the replay,
keeps every timed output once (deduplicated by ``seq``) and reconnects with backoff, resuming
without losing or repeating events: after a reconnect the node replays its whole history and
everything at or below the last seen ``seq`` is dropped. A node that stays unreachable longer
than ``offline_limit`` seconds ends the stream with a HeadError naming its URL, instead of a wait
that never ends. Frames are bounded (``limits.MAX_SERVER_FRAME``) and a frame that is not JSON or
not an output this client knows is kept as a ``RawOutput`` or dropped, never fatal. It refuses
hydra-node 1.x and older, whose head lifecycle differs (commit phase), and never logs
``Greetings.env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from hydrafed import errors
from hydrafed.hydra import limits, messages

log = logging.getLogger(__name__)

Predicate = Callable[[messages.ServerOutput], bool]


def _base_urls(url: str) -> tuple[str, str]:
    """(http base, ws base) of an endpoint given as http(s)://, ws(s):// or host:port."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise errors.ConfigError(f"hydra API url {url!r}: expected http://host:port or ws://host:port")
    secure = parts.scheme in ("https", "wss")
    http = urlunsplit(("https" if secure else "http", parts.netloc, parts.path.rstrip("/"), "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, parts.path.rstrip("/") or "/", "", ""))
    return http, ws


def check_version(version: str) -> None:
    """Refuse nodes before 2.0: they open heads through a commit phase hydrafed does not drive."""
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) < 2:
        raise errors.HeadError(
            f"hydra-node {version} is not supported: hydrafed needs hydra-node 2.x (directly opened heads); "
            "upgrade the node image"
        )


#: Seconds a connected node may stay unreachable before the stream fails (``offline_limit``).
DEFAULT_OFFLINE_LIMIT = 300.0


class HydraClient:
    """One node's API: a replayed, deduplicated event log plus the HTTP endpoints.

    ``offline_limit`` (seconds, None for ever) bounds how long the client keeps reconnecting
    after it lost a node it was connected to; past it, ``subscribe``/``wait_for``/``send``
    raise a HeadError that names the node's URL.
    """

    def __init__(
        self,
        url: str,
        *,
        history: bool = True,
        snapshot_utxo: bool = True,
        connect_timeout: float = 10.0,
        max_backoff: float = 2.0,
        offline_limit: float | None = DEFAULT_OFFLINE_LIMIT,
    ) -> None:
        self.http_url, ws = _base_urls(url)
        query = []
        if history:
            query.append("history=yes")
        if not snapshot_utxo:
            query.append("snapshot-utxo=no")
        self.ws_url = ws + ("?" + "&".join(query) if query else "")
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        if offline_limit is not None and offline_limit <= 0:
            raise errors.ConfigError(f"offline_limit: {offline_limit} must be > 0 seconds (or None)")
        self._offline_limit = offline_limit
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log: list[messages.ServerOutput] = []
        self._changed = asyncio.Event()
        self._connected = asyncio.Event()
        self._last_seq = -1
        self._greetings: messages.Greetings | None = None
        self._fatal: BaseException | None = None
        self._closing = False
        self.reconnects = 0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> HydraClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the session and wait for the first Greetings (the end of the history replay)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        self._reader = asyncio.create_task(self._run(), name=f"hydra-client {self.ws_url}")
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError as exc:
            await self.close()
            raise errors.HeadError(
                f"no Greetings from the hydra-node at {self.ws_url} within {self._connect_timeout}s; "
                "is it running?"
            ) from exc
        if self._fatal is not None:
            fatal = self._fatal
            await self.close()
            raise fatal

    async def close(self) -> None:
        """Stop the reader and close the socket and the session."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self._notify()

    async def drop_connection(self) -> None:
        """Close the current WebSocket as a network failure would; the reader reconnects."""
        if self._ws is not None:
            await self._ws.close()

    @property
    def greetings(self) -> messages.Greetings:
        """The latest Greetings (sent after every (re)connect)."""
        if self._greetings is None:
            raise errors.HeadError("not connected: no Greetings received yet")
        return self._greetings

    @property
    def position(self) -> int:
        """Index of the next event; pass it as ``since`` to wait only for later events."""
        return len(self._log)

    @property
    def events(self) -> list[messages.ServerOutput]:
        """Every output received so far, in order, each once."""
        return list(self._log)

    # ------------------------------------------------------------------ reader
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        backoff = 0.05
        assert self._session is not None
        loop = asyncio.get_running_loop()
        lost_at: float | None = None  # when the node we had Greetings from went away
        last_error = "the connection closed"
        while not self._closing:
            try:
                async with self._session.ws_connect(
                    self.ws_url, heartbeat=60.0, max_msg_size=limits.MAX_SERVER_FRAME
                ) as ws:
                    self._ws = ws
                    backoff = 0.05
                    async for frame in ws:
                        if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            self._receive(frame.data)
                            lost_at = None
                        elif frame.type == aiohttp.WSMsgType.ERROR:
                            last_error = f"WebSocket error: {ws.exception()}"
                            break
                    else:
                        last_error = f"the node closed the socket (code {ws.close_code})"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                last_error = str(exc) or type(exc).__name__
                log.debug("hydra-node %s: connection failed: %s", self.ws_url, exc)
            finally:
                self._ws = None
                self._connected.clear()
            if self._fatal is not None or self._closing:
                return
            if self._greetings is not None:
                lost_at = loop.time() if lost_at is None else lost_at
                if self._offline_limit is not None and loop.time() - lost_at > self._offline_limit:
                    self._fatal = errors.HeadError(
                        f"the hydra-node at {self.http_url} has been unreachable for "
                        f"{loop.time() - lost_at:.0f}s, over the limit of {self._offline_limit:g}s "
                        f"(last error: {limits.cut(last_error, 200)}); check that node, then restart"
                    )
                    self._connected.set()
                    self._notify()
                    return
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _receive(self, data: str | bytes) -> None:
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the stack
            log.warning("hydra-node %s sent a frame that is not JSON; ignored", self.ws_url)
            return
        out = messages.parse_output(raw)
        if isinstance(out, messages.Greetings):
            try:
                check_version(out.hydra_node_version)
            except errors.HeadError as exc:
                self._fatal = exc
                self._connected.set()
                raise asyncio.CancelledError from exc
            self._greetings = out
            log.debug("connected to %s: %s", self.ws_url, out)  # repr hides env
            self._connected.set()
            self._notify()
            return
        if out.seq is not None:
            if out.seq <= self._last_seq:
                return
            self._last_seq = out.seq
        self._log.append(out)
        self._notify()

    # ------------------------------------------------------------------ WebSocket API
    async def send(self, message: messages.ClientInput | Mapping[str, Any]) -> None:
        """Send one client input, waiting for a connection if the socket is being re-opened."""
        payload = message.to_json() if isinstance(message, messages.ClientInput) else dict(message)
        deadline = asyncio.get_running_loop().time() + self._connect_timeout
        while True:
            ws = self._ws
            if ws is not None and not ws.closed and self._connected.is_set():
                try:
                    await ws.send_str(json.dumps(payload))
                    return
                except (ConnectionResetError, aiohttp.ClientError):
                    pass
            if self._fatal is not None:
                raise self._fatal
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._closing:
                raise errors.HeadError(f"cannot send {payload.get('tag')} to {self.ws_url}: not connected")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), remaining)

    async def subscribe(self, since: int = 0) -> AsyncIterator[messages.ServerOutput]:
        """Every output from index ``since`` on (replay included), then live ones; survives reconnects."""
        index = since
        while True:
            while index < len(self._log):
                yield self._log[index]
                index += 1
            if self._closing:
                return
            if self._fatal is not None:
                raise self._fatal
            await self._changed.wait()

    async def wait_for(
        self,
        tag: str | tuple[str, ...],
        predicate: Predicate | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - the documented interface
        since: int | None = None,
    ) -> messages.ServerOutput:
        """The first output with ``tag`` (and matching ``predicate``) at or after ``since``.

        ``since`` defaults to the current position: only outputs that arrive after the call.
        """
        tags = (tag,) if isinstance(tag, str) else tag
        start = self.position if since is None else since

        async def find() -> messages.ServerOutput:
            async for out in self.subscribe(start):
                if out.tag in tags and (predicate is None or predicate(out)):
                    return out
            raise errors.HeadError(f"client closed while waiting for {tags}")

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError as exc:
            raise errors.HeadError(f"no {'/'.join(tags)} from {self.ws_url} within {timeout}s") from exc

    # ------------------------------------------------------------------ HTTP API
    async def _request(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        if self._session is None:
            raise errors.HeadError("client is not connected; use `async with HydraClient(...)`")
        try:
            async with self._session.request(method, self.http_url + path, json=body) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.HeadError(f"{method} {self.http_url}{path} failed: {exc}") from exc
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        if status not in ok:  # the node's answer, cut: an error message is not a place for a UTxO
            raise errors.HeadError(f"{method} {path} answered {status}: {limits.cut(str(data))}")
        return data

    async def get_head(self) -> dict[str, Any]:
        """GET /head: the node's HeadState."""
        result: dict[str, Any] = await self._request("GET", "/head")
        return result

    async def get_snapshot_utxo(self) -> dict[str, Any]:
        """GET /snapshot/utxo: the confirmed UTxO (raises HeadError when the head never opened)."""
        result: dict[str, Any] = await self._request("GET", "/snapshot/utxo")
        return result

    async def get_protocol_parameters(self) -> dict[str, Any]:
        """GET /protocol-parameters: the L2 ledger parameters."""
        result: dict[str, Any] = await self._request("GET", "/protocol-parameters")
        return result

    async def submit_transaction(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        """POST /transaction; returns SubmitTxSubmitted/SubmitTxConfirmed, raises on invalid."""
        result: dict[str, Any] = await self._request("POST", "/transaction", dict(envelope), ok=(200, 202))
        return result

    async def commit(self, utxo: Mapping[str, Any]) -> dict[str, Any]:
        """POST /commit with a UTxO map: the unsigned deposit tx envelope to sign and submit on L1."""
        result: dict[str, Any] = await self._request("POST", "/commit", {"utxoToCommit": dict(utxo)})
        return result

    async def submit_cardano_transaction(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        """POST /cardano-transaction: submit a signed L1 tx through the node."""
        result: dict[str, Any] = await self._request("POST", "/cardano-transaction", dict(envelope))
        return result

    async def devnet_l1_utxo(self, address: str) -> dict[str, Any]:
        """GET /devnet/l1-utxo (devnet only): the emulated L1 outputs at ``address``."""
        result: dict[str, Any] = await self._request("GET", f"/devnet/l1-utxo?address={address}")
        return result
