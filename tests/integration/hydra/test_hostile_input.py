"""Malformed input of any field type gets TxInvalid / InvalidInput / a 4xx naming it, never a 500.

Each case is a transaction or request an attacker with access to a node's API port could send:
hand-made CBOR (cbor2, not pycardano, so any field can hold any type) spending a real input of
the head. The devnet must answer every one on the same socket, keep serving, leave the UTxO as
it was and keep what it persists and replays small (issue 16: a ~200-byte NewTx declaring one
huge required-signer integer used to make every node allocate and log hundreds of MB).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, limits, messages
from hydrafed.hydra.devnet import Devnet

pytestmark = pytest.mark.integration

Body = dict[int, Any]


def _own_input(utxo: dict[str, Any], owner: keys.PartyKeys) -> tuple[bytes, int, int]:
    key, out = next((k, o) for k, o in utxo.items() if o["address"] == str(owner.address()))
    tx_id, _, ix = key.partition("#")
    return bytes.fromhex(tx_id), int(ix), int(out["value"]["lovelace"])


def _envelope(
    body: Body, witnesses: dict[int, Any] | None = None, signer: keys.PartyKeys | None = None
) -> dict[str, str]:
    """A tx envelope from raw CBOR items; signed by ``signer`` when given."""
    body_cbor = cbor2.dumps(body)
    body_hash = hashlib.blake2b(body_cbor, digest_size=32).digest()
    ws: dict[int, Any] = dict(witnesses or {})
    if signer is not None:
        vkey = bytes(signer.payment_verification_key.payload)
        ws[0] = [[vkey, signer.payment_signing_key.sign(body_hash)]]
    tx = b"\x84" + body_cbor + cbor2.dumps(ws) + b"\xf5\xf6"
    return {"type": "Tx ConwayEra", "description": "", "cborHex": tx.hex(), "txId": body_hash.hex()}


#: name -> (change to a valid payment body, the words the reason must contain)
BODY_CASES: dict[str, tuple[Callable[[Body], None], str]] = {
    # The case: one 500-million required-signer integer (bytes(n) allocated n bytes).
    "huge_required_signer_int": (lambda b: b.__setitem__(14, [500_000_000]), "required signer"),
    "required_signer_str": (lambda b: b.__setitem__(14, ["ab" * 14]), "required signer"),
    "required_signer_short": (lambda b: b.__setitem__(14, [b"\x01" * 5]), "required signer"),
    "inputs_not_array": (lambda b: b.__setitem__(0, 7), "input"),
    "input_index_str": (lambda b: b.__setitem__(0, [[b"\x00" * 32, "0"]]), "input"),
    "outputs_map": (lambda b: b.__setitem__(1, {1: 2}), "output"),
    "output_value_str": (lambda b: b[1].__setitem__(0, [b[1][0][0], "1000"]), "output 0"),
    "output_multiasset_not_map": (
        lambda b: b[1].__setitem__(0, [b[1][0][0], [2_000_000, {b"p" * 28: 5}]]),
        "output 0",
    ),
    "output_asset_qty_str": (
        lambda b: b[1].__setitem__(0, [b[1][0][0], [2_000_000, {b"p" * 28: {b"n": "x"}}]]),
        "output 0",
    ),
    "output_negative_asset": (
        lambda b: b[1].__setitem__(0, [b[1][0][0], [2_000_000, {b"p" * 28: {b"n": -5}}]]),
        "output 0",
    ),
    "fee_bignum": (lambda b: b.__setitem__(2, cbor2.CBORTag(2, b"\xff" * 3000)), "CBOR"),
    "network_id_bignum": (lambda b: b.__setitem__(15, cbor2.CBORTag(2, b"\xff" * 3000)), "CBOR"),
    "fee_negative": (lambda b: b.__setitem__(2, -1), "fee"),
    "date_tag": (lambda b: b.__setitem__(3, cbor2.CBORTag(1, "not a date")), "tag 1"),
    "deep_nesting": (lambda b: b.__setitem__(99, _nested(200)), "nest"),
    "aux_hash_str": (lambda b: b.__setitem__(7, "zz"), "auxiliary data"),
}


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _valid_body(alice: keys.PartyKeys, bob: keys.PartyKeys, utxo: dict[str, Any]) -> Body:
    tx_id, ix, amount = _own_input(utxo, alice)
    bob_raw, alice_raw = bytes(bob.address().to_primitive()), bytes(alice.address().to_primitive())
    return {0: [[tx_id, ix]], 1: [[bob_raw, 2_000_000], [alice_raw, amount - 2_000_000]], 2: 0}


def _log_bytes(net: Devnet) -> int:
    return sum(p.stat().st_size for p in Path(net.state_dir, "nodes").glob("*/events.jsonl"))


@pytest.mark.parametrize("case", sorted(BODY_CASES))
async def test_malformed_tx_field_gets_tx_invalid_on_every_node_and_a_400(
    case: str,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: a valid payment body with one field broken; signed (rules after decoding run).
    net, clients, (alice, bob, _) = open_head
    utxo = await clients[0].get_snapshot_utxo()
    body = _valid_body(alice, bob, utxo)
    mutate, words = BODY_CASES[case]
    mutate(body)
    env = _envelope(body, signer=None if case == "huge_required_signer_int" else alice)
    assert len(env["cborHex"]) < 20_000  # small on the wire, whatever it declares
    since = [c.position for c in clients]
    logged = _log_bytes(net)

    # Execute
    await clients[0].send(messages.NewTx(transaction=env))

    # Assert: TxInvalid on every node, reason names the field and is bounded; nothing else moved.
    for c, start in zip(clients, since, strict=True):
        out = await c.wait_for("TxInvalid", since=start, timeout=10)
        assert isinstance(out, messages.TxInvalid)
        assert words.lower() in out.reason.lower(), out.reason
        assert len(out.reason) <= limits.MAX_REASON_CHARS
    assert await clients[1].get_snapshot_utxo() == utxo
    async with (
        aiohttp.ClientSession() as session,
        session.post(net.urls[2] + "/transaction", json=env) as resp,
    ):
        assert resp.status == 400, await resp.text()
        answer = await resp.json()
    assert answer["tag"] == "SubmitTxInvalid"
    assert words.lower() in json.dumps(answer).lower()
    assert _log_bytes(net) - logged < 64 * 1024  # invalid txs are not replayed history
    # The node still serves the socket that sent it.
    await clients[0].send(messages.Init())
    await clients[0].wait_for("CommandFailed", since=since[0], timeout=5)


async def test_invalid_txs_are_not_replayed_and_seq_stays_monotonic_across_restart(
    make_devnet: Any,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare
    net, clients, (alice, bob, _) = open_head
    utxo = await clients[0].get_snapshot_utxo()
    body = _valid_body(alice, bob, utxo)
    body[14] = [b"\x01" * 5]
    env = _envelope(body, signer=alice)
    pos = clients[1].position
    for _ in range(20):
        await clients[0].send(messages.NewTx(transaction=env))
    last = None
    for _ in range(20):
        last = await clients[1].wait_for("TxInvalid", since=pos, timeout=10)
        pos = clients[1].events.index(last) + 1
    assert last is not None and last.seq is not None

    # Execute: a fresh client replays history; then the devnet restarts.
    async with client_mod.HydraClient(net.urls[1]) as fresh:
        replayed = [e.tag for e in fresh.events]
    for c in clients:
        await c.close()
    await net.stop()
    again = await make_devnet(api_port=net.api_port, state_dir=net.state_dir)
    async with client_mod.HydraClient(again.urls[1]) as c:
        await c.send(messages.NewTx(transaction=env))
        after = await c.wait_for("TxInvalid", since=c.position, timeout=10)

    # Assert
    assert "TxInvalid" not in replayed
    assert after.seq is not None and after.seq > last.seq


WS_FRAMES: dict[str, tuple[str, str]] = {
    "not_json": ("{nope", "InvalidInput"),
    "deep_json": ("[" * 100_000 + "]" * 100_000, "InvalidInput"),
    "unknown_tag": (json.dumps({"tag": "Nonsense"}), "InvalidInput"),
    "newtx_transaction_str": (json.dumps({"tag": "NewTx", "transaction": "ab"}), "InvalidInput"),
    "newtx_cborhex_int": (json.dumps({"tag": "NewTx", "transaction": {"cborHex": 5}}), "TxInvalid"),
    "newtx_not_hex": (json.dumps({"tag": "NewTx", "transaction": {"cborHex": "zz"}}), "TxInvalid"),
    "newtx_not_cbor": (json.dumps({"tag": "NewTx", "transaction": {"cborHex": "84ff"}}), "TxInvalid"),
    "newtx_oversize": (
        json.dumps({"tag": "NewTx", "transaction": {"cborHex": "84" + "00" * (limits.MAX_TX_BYTES + 10)}}),
        "TxInvalid",
    ),
}


@pytest.mark.parametrize("case", sorted(WS_FRAMES))
async def test_malformed_websocket_frame_is_answered_on_the_same_socket(
    case: str, open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]]
) -> None:
    net, _, _ = open_head
    frame, tag = WS_FRAMES[case]
    async with aiohttp.ClientSession() as session, session.ws_connect(net.urls[0]) as ws:
        greeting = await ws.receive_json(timeout=5)
        assert greeting["tag"] == "Greetings"
        await ws.send_str(frame)
        answer = await asyncio.wait_for(_next_not(ws, {"Greetings"}), 10)
        assert answer["tag"] == tag, answer
        text = json.dumps(answer)
        assert len(text) < 2 * limits.MAX_TX_BYTES + 8 * limits.MAX_REASON_CHARS  # echoes are cut
        await ws.send_str(json.dumps({"tag": "Init"}))  # the socket still works
        assert (await asyncio.wait_for(_next_not(ws, {"Greetings"}), 5))["tag"] == "CommandFailed"


async def _next_not(ws: aiohttp.ClientWebSocketResponse, skip: set[str]) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = await ws.receive_json()
        if msg.get("tag") not in skip:
            return msg


HTTP_CASES: list[tuple[str, str, Any, int, str]] = [
    ("GET", "/nowhere", None, 404, "Resource not found"),
    ("POST", "/nowhere", {}, 404, "Resource not found"),
    ("DELETE", "/head", None, 405, "GET"),
    ("GET", "/transaction", None, 405, "POST"),
    ("POST", "/transaction", "[" * 100_000, 400, "JSON"),
    ("POST", "/transaction", "not json", 400, "JSON"),
    ("POST", "/transaction", [1, 2], 400, "envelope"),
    ("POST", "/transaction", {"cborHex": 7}, 400, "cborHex"),
    ("POST", "/commit", {"utxoToCommit": 5}, 400, "utxoToCommit"),
    ("POST", "/commit", {"utxoToCommit": [{}]}, 400, "utxoToCommit"),
    ("POST", "/commit", {"utxoToCommit": {"x": 1}}, 400, "x"),
    ("POST", "/cardano-transaction", {"cborHex": "84ff"}, 400, "CBOR"),
    ("POST", "/cardano-transaction", 5, 400, "cborHex"),
    ("POST", "/transaction", "x" * (limits.MAX_HTTP_BODY + 1), 413, ""),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), HTTP_CASES)
async def test_malformed_http_request_gets_a_4xx_naming_it(
    method: str,
    path: str,
    body: Any,
    status: int,
    words: str,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    net, _, _ = open_head
    data = body if isinstance(body, str) else (None if body is None else json.dumps(body))
    async with aiohttp.ClientSession() as session:
        async with session.request(method, net.urls[0] + path, data=data) as resp:
            text = await resp.text()
            assert resp.status == status, text
        assert words in text, text
        async with session.get(net.urls[0] + "/head") as resp:  # still serving
            assert resp.status == 200


async def test_a_client_that_does_not_read_is_dropped_not_buffered_for_ever(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: a raw WebSocket client on node 0 (small receive buffer) that never reads; a lower
    # queue limit, so that the flood below stays small.
    net, _, _ = open_head
    monkeypatch.setattr(limits, "MAX_CLIENT_QUEUE", 200)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((net.host, net.api_port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {net.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")

    # Execute: another client on the same node makes it answer (CommandFailed) far past the limit.
    async with aiohttp.ClientSession() as session, session.ws_connect(net.urls[0]) as ws:
        for _ in range(2_500):
            await ws.send_str(json.dumps({"tag": "Init"}))

    # Assert: the node closed the silent client's socket (EOF once its buffered frames are read).
    async def drain() -> int:
        total = 0
        while chunk := await reader.read(1 << 20):
            total += len(chunk)
        return total

    received = await asyncio.wait_for(drain(), 60)
    assert received < 200 * 64 * 1024  # what the socket buffers held, not the whole flood
    writer.close()
