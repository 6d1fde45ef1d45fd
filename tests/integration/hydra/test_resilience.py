"""Reconnects lose and repeat nothing; a restarted devnet resumes its head; busy ports are named."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages
from hydrafed.hydra.devnet import Devnet
from hydrafed.ports import free_base_port
from tests.integration.hydra.conftest import DevnetFactory, confirms
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.integration


async def _chain_payments(
    sender: client_mod.HydraClient, alice: keys.PartyKeys, bob: keys.PartyKeys, count: int
) -> list[str]:
    """Send ``count`` chained payments alice -> bob, each spending the previous change."""
    utxo = await sender.get_snapshot_utxo()
    key, amount = next(
        (k, o["value"]["lovelace"]) for k, o in utxo.items() if o["address"] == str(alice.address())
    )
    ids = []
    for _ in range(count):
        env = make_tx(alice, [key], [(bob.address(), 1_000_000), (alice.address(), amount - 1_000_000)])
        await sender.send(messages.NewTx(transaction=env))
        ids.append(env["txId"])
        key, amount = f"{env['txId']}#1", amount - 1_000_000
        await asyncio.sleep(0.005)
    return ids


def _timed(c: client_mod.HydraClient) -> list[tuple[int, str]]:
    return [(e.seq, e.tag) for e in c.events if e.seq is not None]


async def test_reconnect_mid_stream_misses_and_repeats_nothing(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare: a reference client and a flaky client on the same node.
    net, clients, (alice, bob, _) = open_head
    async with client_mod.HydraClient(net.urls[1]) as steady, client_mod.HydraClient(net.urls[1]) as flaky:
        # Execute: payments flow while the flaky client's socket is cut again and again.
        sending = asyncio.create_task(_chain_payments(clients[0], alice, bob, 40))
        while not sending.done():
            await asyncio.sleep(0.02)
            await flaky.drop_connection()
        ids = await sending
        last = ids[-1]
        for c in (steady, flaky):
            await c.wait_for("SnapshotConfirmed", confirms(last), since=0, timeout=20)

        # Assert
        assert flaky.reconnects >= 3
        seqs = [s for s, _ in _timed(flaky)]
        assert seqs == sorted(set(seqs))  # strictly increasing: nothing repeated
        assert _timed(flaky) == _timed(steady)  # nothing missed
        valid = [e.transaction_id for e in flaky.events if isinstance(e, messages.TxValid)]
        assert valid == ids


async def test_restarted_devnet_resumes_head_with_history(
    make_devnet: DevnetFactory,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare
    net, clients, (alice, bob, _) = open_head
    await _chain_payments(clients[0], alice, bob, 3)
    await clients[0].wait_for(
        "SnapshotConfirmed",
        lambda o: isinstance(o, messages.SnapshotConfirmed) and len(o.confirmed) > 0,
        since=0,
    )
    await asyncio.sleep(0.1)
    before_events = _timed(clients[2])
    before_utxo = await clients[2].get_snapshot_utxo()
    head_id = next(e.head_id for e in clients[2].events if isinstance(e, messages.HeadIsOpen))
    for c in clients:
        await c.close()
    await net.stop()

    # Execute
    again = await make_devnet(api_port=net.api_port, state_dir=net.state_dir)

    # Assert: same head, same UTxO, same history; new txs continue the seq.
    async with client_mod.HydraClient(again.urls[2]) as c:
        assert c.greetings.head_status == "Open"
        assert c.greetings.hydra_head_id == head_id
        assert _timed(c) == before_events
        assert await c.get_snapshot_utxo() == before_utxo
        pos = c.position
        await _chain_payments(c, alice, bob, 1)
        confirmed = await c.wait_for("SnapshotConfirmed", since=pos)
        assert confirmed.seq is not None and confirmed.seq > before_events[-1][0]


async def test_busy_port_is_a_config_error_naming_it(make_devnet: DevnetFactory) -> None:
    base = free_base_port(3)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 1))
        blocker.listen()
        with pytest.raises(errors.ConfigError, match=rf"port {base + 1} .*--api-port"):
            await make_devnet(api_port=base)
    # The ports it did open were released: the same base now works.
    net = await make_devnet(api_port=base)
    assert net.urls[0].endswith(f":{base}")
