"""The node goes away under a connected client: it reconnects and replays, or fails naming the node.

test_resilience.py cuts the socket from the client's side; here the server side dies: the devnet
stops (every socket closed, nothing listening) and comes back on the same ports and state dir,
as a restarted hydra-node does from its persistence.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages
from hydrafed.hydra.devnet import Devnet
from hydrafed.spec import FederationSpec
from hydrafed.worker.ledger import HydraLedger
from tests.integration.hydra.conftest import DevnetFactory, confirms
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.integration


async def _pay(c: client_mod.HydraClient, alice: keys.PartyKeys, bob: keys.PartyKeys) -> str:
    utxo = await c.get_snapshot_utxo()
    key, amount = next(
        (k, o["value"]["lovelace"]) for k, o in utxo.items() if o["address"] == str(alice.address())
    )
    env = make_tx(alice, [key], [(bob.address(), 1_000_000), (alice.address(), amount - 1_000_000)])
    await c.send(messages.NewTx(transaction=env))
    await c.wait_for("SnapshotConfirmed", confirms(env["txId"]), since=0, timeout=10)
    return env["txId"]


def _timed(c: client_mod.HydraClient) -> list[tuple[int, str]]:
    return [(e.seq, e.tag) for e in c.events if e.seq is not None]


async def test_node_restart_mid_stream_client_replays_without_gaps_or_doubles(
    make_devnet: DevnetFactory,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: a watcher on node 1 that outlives the node; two payments before the restart.
    net, clients, (alice, bob, _) = open_head
    watcher = client_mod.HydraClient(net.urls[1], max_backoff=0.2)
    await watcher.connect()
    before = [await _pay(clients[0], alice, bob) for _ in range(2)]
    await watcher.wait_for("SnapshotConfirmed", confirms(before[-1]), since=0)
    for c in clients:
        await c.close()

    # Execute: the server side goes away (sockets closed, port dead), then comes back.
    await net.stop()
    await asyncio.sleep(0.5)
    again = await make_devnet(api_port=net.api_port, state_dir=net.state_dir)
    async with client_mod.HydraClient(again.urls[0]) as sender:
        after = [await _pay(sender, alice, bob) for _ in range(2)]
    await watcher.wait_for("SnapshotConfirmed", confirms(after[-1]), since=0, timeout=15)

    # Assert: the watcher saw everything once, exactly as a client that joins now replays it.
    async with client_mod.HydraClient(again.urls[1]) as fresh:
        reference = _timed(fresh)
    try:
        assert watcher.reconnects >= 1
        assert _timed(watcher) == reference
        valid = [e.transaction_id for e in watcher.events if isinstance(e, messages.TxValid)]
        assert valid == before + after
    finally:
        await watcher.close()


async def test_node_away_past_the_limit_fails_the_stream_naming_the_node(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare
    net, clients, _ = open_head
    for c in clients:
        await c.close()
    watcher = client_mod.HydraClient(net.urls[2], offline_limit=1.0, max_backoff=0.2)
    await watcher.connect()
    started = time.monotonic()

    async def follow() -> None:
        async for _ in watcher.subscribe(watcher.position):
            pass

    following = asyncio.create_task(follow())

    # Execute
    await net.stop()

    # Assert: the stream ends with a HeadError naming the URL and the limit, within seconds.
    try:
        with pytest.raises(errors.HeadError, match=rf"{net.urls[2]} has been unreachable .* limit of 1s"):
            await asyncio.wait_for(following, 15)
        assert time.monotonic() - started < 10
        with pytest.raises(errors.HeadError, match="unreachable"):
            await watcher.send(messages.Init())
    finally:
        await watcher.close()


async def test_offline_limit_must_be_positive() -> None:
    with pytest.raises(errors.ConfigError, match="offline_limit"):
        client_mod.HydraClient("http://127.0.0.1:1", offline_limit=0)


async def test_worker_ledger_fails_naming_the_node_when_it_stays_away(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: a party's production ledger with a 1 s limit (config.nodeOfflineSeconds).
    net, clients, party_keys = open_head
    members = {k.name: (str(k.address()), k.participant_id) for k in party_keys}
    ledger = HydraLedger(net.urls[0], party_keys[0], "fed", FederationSpec(), members, offline_limit=1.0)

    async def follow() -> None:
        async for _ in ledger.confirmed():
            pass

    # Execute
    async with ledger:
        following = asyncio.create_task(follow())
        for c in clients:
            await c.close()
        await net.stop()

        # Assert
        with pytest.raises(errors.HeadError, match=rf"{net.urls[0]} has been unreachable"):
            await asyncio.wait_for(following, 15)
