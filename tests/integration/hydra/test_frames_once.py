"""Live outputs serialised once for every node and client: each client still gets each output
exactly once, in seq order, in the form it asked for, byte for byte what the node persisted."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import confirms
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.integration


async def _read_until(ws: aiohttp.ClientWebSocketResponse, tx_id: str, texts: list[str]) -> None:
    """Collect frame texts (Greetings left out) until the SnapshotConfirmed of ``tx_id``."""
    while True:
        frame = await asyncio.wait_for(ws.receive(), 30)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        msg = json.loads(frame.data)
        if msg["tag"] == "Greetings":
            continue
        texts.append(frame.data)
        if msg["tag"] == "SnapshotConfirmed" and any(
            t["txId"] == tx_id for t in msg["snapshot"]["confirmed"]
        ):
            return


def _persisted(state_dir: Path, node: int) -> dict[int, str]:
    lines = (state_dir / "nodes" / str(node) / "events.jsonl").read_text().splitlines()
    return {json.loads(line)["seq"]: line for line in lines}


async def test_every_client_of_every_node_gets_each_output_once_in_order_in_its_form(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: two clients on each of two nodes, one with the snapshots' UTxO and one without.
    net, clients, (alice, bob, _carol) = open_head
    base = [url.replace("http://", "ws://") for url in net.urls[:2]]
    forms = [(node, query) for node in range(2) for query in ("", "?snapshot-utxo=no")]
    texts: dict[tuple[int, str], list[str]] = {form: [] for form in forms}
    async with aiohttp.ClientSession() as session:
        sockets = {form: await session.ws_connect(base[form[0]] + "/" + form[1]) for form in forms}
        utxo = await clients[0].get_snapshot_utxo()
        key, out = next((k, o) for k, o in utxo.items() if o["address"] == str(alice.address()))
        amount = out["value"]["lovelace"]

        # Execute: two payments, each validated (TxValid) and confirmed (SnapshotConfirmed).
        first = make_tx(alice, [key], [(bob.address(), 2_000_000), (alice.address(), amount - 2_000_000)])
        pos = clients[0].position
        await clients[0].send(messages.NewTx(transaction=first))
        await clients[0].wait_for("SnapshotConfirmed", confirms(first["txId"]), since=pos)
        change = f"{first['txId']}#1"
        second = make_tx(alice, [change], [(bob.address(), 3_000_000), (alice.address(), amount - 5_000_000)])
        await clients[0].send(messages.NewTx(transaction=second))
        for form, ws in sockets.items():
            await _read_until(ws, second["txId"], texts[form])
        for ws in sockets.values():
            await ws.close()

    # Assert
    for (node, query), got in texts.items():
        persisted = _persisted(net.state_dir, node)
        seqs = [json.loads(text)["seq"] for text in got]
        assert seqs == sorted(set(seqs)) == list(range(seqs[0], seqs[-1] + 1))  # once each, in order
        tags = [json.loads(text)["tag"] for text in got]
        assert tags.count("TxValid") == 2 and tags.count("SnapshotConfirmed") == 2
        for text, seq in zip(got, seqs, strict=True):
            if not query:  # the whole output: the very line the node persisted
                assert text == persisted[seq]
            else:  # the lean form: the persisted output without the snapshot's UTxO
                whole = json.loads(persisted[seq])
                if whole["tag"] == "SnapshotConfirmed":
                    del whole["snapshot"]["utxo"]
                assert json.loads(text) == whole

    # Both nodes sent the same outputs (their own seq and timestamp aside).
    def bare(text: str) -> dict[str, Any]:
        return {k: v for k, v in json.loads(text).items() if k not in ("seq", "timestamp")}

    assert [bare(t) for t in texts[(0, "")]] == [bare(t) for t in texts[(1, "")]]


async def test_the_snapshot_text_built_from_its_parts_is_the_one_every_party_signs(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    net, _clients, party_keys = open_head
    lines = (net.state_dir / "nodes" / "0" / "events.jsonl").read_text().splitlines()
    snapshots = [m for m in map(json.loads, lines) if m["tag"] == "SnapshotConfirmed"]
    assert len(snapshots) == 3  # one per deposit

    for msg in snapshots:
        message = hashlib.blake2b(json.dumps(msg["snapshot"]).encode(), digest_size=32).digest()
        signatures = msg["signatures"]["multiSignature"]
        assert len(signatures) == len(party_keys)
        for party, signature in zip(party_keys, signatures, strict=True):
            verify = nacl.signing.VerifyKey(party.hydra_vkey)
            assert verify.verify(message, bytes.fromhex(signature)) == message
