"""The devnet's node endpoints: HTTP and WebSocket on one port per node, as hydra-node serves.

:class:`Devnet` owns the state dir (``devnet.json``, key files, event logs, emulated L1), the
shared :class:`~hydrafed.hydra.devnet.emulated_head.Head` and one aiohttp site per node on
``127.0.0.1:P+i``. It runs in the caller's event loop (``await start()``) or in a thread of its
own (:class:`DevnetThread`) for synchronous callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pycardano
from aiohttp import WSMsgType, web

from hydrafed import errors
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import ledger, limits, messages
from hydrafed.hydra import utxo as utxo_mod
from hydrafed.hydra.devnet import emulated_head

log = logging.getLogger(__name__)

DEFAULT_FUNDS = 100_000_000

#: Every path a node serves, with its methods: anything else is 404, a wrong method 405.
ROUTES: dict[str, frozenset[str]] = {
    "/head": frozenset({"GET"}),
    "/snapshot": frozenset({"GET"}),
    "/snapshot/utxo": frozenset({"GET"}),
    "/protocol-parameters": frozenset({"GET"}),
    "/commits": frozenset({"GET"}),
    "/devnet/l1-utxo": frozenset({"GET"}),
    "/commit": frozenset({"POST"}),
    "/cardano-transaction": frozenset({"POST"}),
    "/transaction": frozenset({"POST"}),
}


class Devnet:
    """N emulated hydra-nodes sharing one head, state kept in ``state_dir``.

    With ``open_head=True`` a fresh devnet opens the head at start and brings every party's
    funds in (like hydra-node's offline mode with an initial UTxO); ``start()`` returns once
    they are committed. Otherwise a party sends Init and commits with funding.commit_funds.
    """

    def __init__(
        self,
        *,
        parties: int | Sequence[str] = 3,
        api_port: int = 4001,
        state_dir: Path,
        host: str = "127.0.0.1",
        contestation_period: float = 60.0,
        deposit_activation: float = 1.0,
        deposit_period: float = 60.0,
        funds_per_party: int = DEFAULT_FUNDS,
        network: keys_mod.NetworkName = "testnet",
        protocol_parameters: dict[str, Any] | None = None,
        open_head: bool = False,
    ) -> None:
        names = [f"party{i}" for i in range(parties)] if isinstance(parties, int) else list(parties)
        if not names:
            raise errors.ConfigError("parties: a devnet needs at least 1 party")
        if len(set(names)) != len(names):
            raise errors.ConfigError(f"party names must be unique, got {names}")
        for name in names:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise errors.ConfigError(f"party name {name!r}: use letters, digits, '-' or '_'")
        if contestation_period <= 0 or deposit_activation < 0:
            raise errors.ConfigError("contestation_period must be > 0 and deposit_activation >= 0 seconds")
        if not 0 < api_port <= 65535 - len(names):
            raise errors.ConfigError(f"api_port: {api_port} leaves no room for {len(names)} ports")
        self.names = names
        self.api_port = api_port
        self.host = host
        self.state_dir = state_dir
        self.network_name: keys_mod.NetworkName = network
        self.network = keys_mod.to_network(network)
        self.funds_per_party = funds_per_party
        self._cp, self._da, self._dp = contestation_period, deposit_activation, deposit_period
        self._pp = protocol_parameters or dict(emulated_head.DEFAULT_PROTOCOL_PARAMETERS)
        self.head: emulated_head.Head | None = None
        self.open_head = open_head
        self._runners: list[web.AppRunner] = []
        self._sockets: set[web.WebSocketResponse] = set()

    # ------------------------------------------------------------------ state dir
    @property
    def urls(self) -> list[str]:
        """API base URL of each node."""
        return [f"http://{self.host}:{self.api_port + i}" for i in range(len(self.names))]

    def keys_dir(self, name: str) -> Path:
        return self.state_dir / "parties" / name

    def _load_or_create_keys(self) -> tuple[list[keys_mod.PartyKeys], bool]:
        manifest = self.state_dir / "devnet.json"
        if manifest.exists():
            data = json.loads(manifest.read_text())
            stored = [p["name"] for p in data["parties"]]
            if stored != self.names:
                raise errors.ConfigError(
                    f"state dir {self.state_dir} holds a devnet of parties {stored}, not {self.names}; "
                    "use another --state-dir or the same party names"
                )
            return [keys_mod.load_party_keys(self.keys_dir(n), n) for n in self.names], False
        generated = []
        for name in self.names:
            k = keys_mod.generate_party_keys(name)
            keys_mod.save_party_keys(k, self.keys_dir(name), self.network_name)
            generated.append(k)
        return generated, True

    def _write_manifest(self, parties: list[keys_mod.PartyKeys]) -> None:
        assert self.head is not None
        data = {
            "network": self.network_name,
            "headId": self.head.head_id,
            "contestationPeriod": self._cp,
            "depositActivation": self._da,
            "parties": [
                {
                    "name": k.name,
                    "apiUrl": url,
                    "keysDir": str(self.keys_dir(k.name)),
                    "address": str(k.address(self.network_name)),
                    "hydraVkey": k.hydra_vkey_hex,
                }
                for k, url in zip(parties, self.urls, strict=True)
            ],
        }
        (self.state_dir / "devnet.json").write_text(json.dumps(data, indent=2) + "\n")

    # ------------------------------------------------------------------ run
    async def start(self) -> None:
        """Create or resume the state, then listen on every node port."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        parties, fresh = self._load_or_create_keys()
        config = emulated_head.HeadConfig(
            parties=tuple(parties),
            network=self.network,
            contestation_period=self._cp,
            deposit_activation=self._da,
            deposit_period=self._dp,
            protocol_parameters=self._pp,
        )
        self.head = emulated_head.Head(config, self.state_dir)
        self.head.open_logs()
        if fresh:
            for k in parties:
                self.head.fund_l1(k.address(self.network_name), self.funds_per_party, k.name)
        try:
            for i in range(len(parties)):
                await self._serve(i)
        except BaseException:
            await self.stop()
            raise
        self.head.resume_timers()
        if fresh and self.open_head:
            # Like hydra-node's offline mode: the head opens at start with the initial funds.
            self.head.open_with_l1_funds()
            await self.head.wait_deposits_settled()
        self._write_manifest(parties)

    async def _serve(self, index: int) -> None:
        app = web.Application(client_max_size=limits.MAX_HTTP_BODY)  # 413 beyond

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(index, request)

        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        port = self.api_port + index
        site = web.TCPSite(runner, self.host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise errors.ConfigError(
                    f"port {port} (node {index}, {self.names[index]}) on {self.host} is in use; "
                    f"pick another base port with --api-port (node i listens on api-port + i)"
                ) from exc
            raise

    async def stop(self) -> None:
        """Close every socket and the event logs; the state dir stays for a restart."""
        for ws in list(self._sockets):  # 1001 going away, as a node that shuts down sends
            await ws.close(code=1001, message=b"node shutting down")
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        if self.head is not None:
            self.head.close_logs()

    async def __aenter__(self) -> Devnet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ HTTP + WS
    async def _dispatch(self, index: int, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(index, request)
        head = self.head
        assert head is not None
        path = request.path.rstrip("/") or "/"
        methods = ROUTES.get(path)
        if methods is None:
            return web.json_response("Resource not found", status=404)
        if request.method not in methods:
            allowed = ", ".join(sorted(methods))
            return web.json_response(
                f"{request.method} {path} is not served: use {allowed}",
                status=405,
                headers={"Allow": allowed},
            )
        route = (request.method, path)
        if route == ("GET", "/head"):
            return web.json_response(head.head_state())
        if route == ("GET", "/snapshot/utxo"):
            if not head.ever_opened:
                return web.json_response("Head is not open", status=404)
            return web.Response(text=head.utxo_text(), content_type="application/json")
        if route == ("GET", "/snapshot"):
            if not head.ever_opened:
                return web.json_response("Head is not open", status=404)
            return web.json_response(head.confirmed_snapshot())
        if route == ("GET", "/protocol-parameters"):
            return web.json_response(head.config.protocol_parameters)
        if route == ("GET", "/commits"):
            return web.json_response(sorted(head.deposits))
        if route == ("GET", "/devnet/l1-utxo"):
            return web.json_response(self._l1_utxo(request.query.get("address")))
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        if route == ("POST", "/commit"):
            return self._commit(body)
        if route == ("POST", "/cardano-transaction"):
            try:
                head.submit_l1(body if isinstance(body, dict) else {"cborHex": body})
            except errors.HydrafedError as exc:  # the ledger's reasons and bad UTxO keys alike
                reason = limits.cut(str(exc))
                return web.json_response({"tag": "FailedToPostTx", "failureReason": reason}, status=400)
            return web.json_response({"tag": "TransactionSubmitted"})
        if route == ("POST", "/transaction"):
            if not isinstance(body, dict):
                reason = "the body must be a tx envelope object {type, description, cborHex, txId}"
                return web.json_response({"tag": "SubmitTxRejected", "reason": reason}, status=400)
            if head.status != "Open":
                return web.json_response(
                    {"tag": "SubmitTxRejected", "reason": "Head is not open"}, status=503
                )
            ok, detail = head.new_tx(body)
            if not ok:
                return web.json_response({"tag": "SubmitTxInvalid", "validationError": detail}, status=400)
            return web.json_response({"tag": "SubmitTxSubmitted"}, status=202)
        raise AssertionError(f"route {route} is in ROUTES but not dispatched")  # pragma: no cover

    async def _json_body(self, request: web.Request) -> Any:
        """The parsed body, or a 400 saying why not (413 comes from aiohttp beyond the size limit)."""
        try:
            return await request.json()
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, or nested past the stack
            reason = limits.cut((str(exc).splitlines() or [type(exc).__name__])[0], 200)
            return web.json_response(f"Invalid JSON body: {reason}", status=400)

    def _commit(self, body: Any) -> web.Response:
        assert self.head is not None
        if not isinstance(body, dict):
            return web.json_response("expected a UTxO object or {utxoToCommit}", status=400)
        if "blueprintTx" in body:
            return web.json_response(
                {"tag": "FailedToConstructDepositTx", "failureReason": "blueprint commits are not emulated"},
                status=400,
            )
        utxo = body.get("utxoToCommit", body)
        if not isinstance(utxo, dict):
            return web.json_response(
                {
                    "tag": "FailedToConstructDepositTx",
                    "failureReason": "utxoToCommit must be an object of '<txid>#<ix>' keys",
                },
                status=400,
            )
        try:
            envelope = self.head.draft_deposit(utxo)
        except ledger.LedgerRuleError as exc:
            text = str(exc)
            return web.json_response(
                text
                if text == "Head is not open"
                else {"tag": "FailedToConstructDepositTx", "failureReason": text},
                status=400,
            )
        except errors.ConfigError as exc:
            return web.json_response(
                {"tag": "FailedToConstructDepositTx", "failureReason": limits.cut(str(exc))}, status=400
            )
        return web.json_response(envelope)

    def _l1_utxo(self, address: str | None) -> dict[str, Any]:
        assert self.head is not None
        return {
            k: v for k, v in utxo_mod.utxo_to_json(self.head.l1).items() if address in (None, v["address"])
        }

    async def _websocket(self, index: int, request: web.Request) -> web.WebSocketResponse:
        head = self.head
        assert head is not None
        # Frames over MAX_WS_FRAME close the socket with 1009 (message too big), as RFC 6455 says.
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=limits.MAX_WS_FRAME)
        await ws.prepare(request)
        self._sockets.add(ws)
        history = request.query.get("history") == "yes"
        with_utxo = request.query.get("snapshot-utxo") != "no"
        address = request.query.get("address") or None
        queue: asyncio.Queue[str] = asyncio.Queue()

        def shape(frame: emulated_head.Frame) -> str | None:
            """The frame's text for this client: its form serialised once for every client."""
            if address and frame.msg.get("tag") == "SnapshotConfirmed" and not _touches(frame.msg, address):
                return None
            return frame.text if with_utxo else frame.lean

        def sink(frame: emulated_head.Frame) -> None:
            shaped = shape(frame)
            if shaped is None:
                return
            if queue.qsize() >= limits.MAX_CLIENT_QUEUE:  # a client that does not read: drop it
                node.sinks.discard(sink)
                log.warning("devnet node %d: a client fell %d frames behind; closed", index, queue.qsize())
                asyncio.get_running_loop().create_task(ws.close(code=1008, message=b"too far behind"))
                return
            queue.put_nowait(shaped)

        node = head.nodes[index]
        replay = list(node.history) if history else []
        node.sinks.add(sink)  # registered in the same step as the copy: nothing lost, nothing twice
        for msg in replay:
            shaped = shape(emulated_head.Frame(msg))
            if shaped is not None:
                queue.put_nowait(shaped)
        queue.put_nowait(json.dumps(head.greetings(index, with_utxo)))
        writer = asyncio.create_task(_pump(ws, queue))
        try:
            async for frame in ws:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    data = (
                        frame.data if isinstance(frame.data, str) else frame.data.decode("utf-8", "replace")
                    )
                    head.handle_text(index, data)
        finally:
            self._sockets.discard(ws)
            node.sinks.discard(sink)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws


def _touches(msg: dict[str, Any], address: str) -> bool:
    """Does any confirmed tx of a SnapshotConfirmed pay to ``address``?"""
    for env in msg["snapshot"].get("confirmed", []):
        try:
            tx = pycardano.Transaction.from_cbor(env["cborHex"])
        except (ValueError, pycardano.DecodingException, pycardano.DeserializeException):
            continue
        if any(str(out.address) == address for out in tx.transaction_body.outputs):
            return True
    return False


async def _pump(ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
    """Send queued frames in order; ends when the socket closes."""
    while True:
        text = await queue.get()
        try:
            await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            return


class DevnetThread:
    """Run a :class:`Devnet` in a background thread with its own event loop (for sync code)."""

    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hydrafed-devnet", daemon=True)

    def __enter__(self) -> Devnet:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.devnet.start(), self._loop).result(timeout=60)
        return self.devnet

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.devnet.stop(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


__all__ = ["Devnet", "DevnetThread", "messages"]
