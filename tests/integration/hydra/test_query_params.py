"""WebSocket query parameters: history opt-in, snapshot-utxo=no, address filter (SnapshotConfirmed only)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import confirms
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.integration


async def _frames(url: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for frame in ws:
            frames.append(json.loads(frame.data))
            if frames[-1]["tag"] == "Greetings":
                return frames
    return frames


async def test_query_parameters(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: one payment alice -> bob, so only one snapshot touches bob's address.
    net, clients, (alice, bob, carol) = open_head
    utxo = await clients[0].get_snapshot_utxo()
    key, out = next((k, o) for k, o in utxo.items() if o["address"] == str(alice.address()))
    amount = out["value"]["lovelace"]
    env = make_tx(alice, [key], [(bob.address(), 2_000_000), (alice.address(), amount - 2_000_000)])
    pos = clients[0].position
    await clients[0].send(messages.NewTx(transaction=env))
    await clients[0].wait_for("SnapshotConfirmed", confirms(env["txId"]), since=pos)
    base = net.urls[0].replace("http://", "ws://")

    # Execute
    no_history = await _frames(base + "/")
    full = await _frames(base + "/any/path?history=yes")
    lean = await _frames(base + "/?history=yes&snapshot-utxo=no")
    to_bob = await _frames(f"{base}/?history=yes&address={bob.address()}")
    to_carol = await _frames(f"{base}/?history=yes&address={carol.address()}")

    # Assert
    assert [f["tag"] for f in no_history] == ["Greetings"]  # history is opt-in
    assert "snapshotUtxo" in no_history[0]
    snaps = [f for f in full if f["tag"] == "SnapshotConfirmed"]
    assert len(snaps) == 4 and all("utxo" in f["snapshot"] for f in snaps)  # 3 deposits + 1 payment
    lean_snaps = [f for f in lean if f["tag"] == "SnapshotConfirmed"]
    assert len(lean_snaps) == 4 and not any("utxo" in f["snapshot"] for f in lean_snaps)
    assert "snapshotUtxo" not in lean[-1]
    bob_snaps = [f for f in to_bob if f["tag"] == "SnapshotConfirmed"]
    assert [f["snapshot"]["confirmed"][0]["txId"] for f in bob_snaps] == [env["txId"]]
    assert not [f for f in to_carol if f["tag"] == "SnapshotConfirmed"]
    # Other outputs pass the address filter untouched.
    assert [f["tag"] for f in to_carol if f["tag"] != "SnapshotConfirmed"] == [
        f["tag"] for f in full if f["tag"] != "SnapshotConfirmed"
    ]
