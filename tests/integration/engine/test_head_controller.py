"""HeadController against a real devnet: open, fund, follow rounds, close and fan out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hydrafed import errors
from hydrafed.head import HeadController, close_step
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages, tx
from hydrafed.hydra.devnet import Devnet
from hydrafed.ports import free_base_port
from hydrafed.rounds import RoundBook
from tests.integration.engine.conftest import Net

pytestmark = pytest.mark.integration


async def _announce(
    client: client_mod.HydraClient, k: keys.PartyKeys, peers: list[str], round_no: int
) -> str:
    ann = tx.Announcement(
        fed="fed",
        round=round_no,
        party=k.name,
        uri=f"local://{k.name}/fed/rounds/{round_no}/{k.name}.safetensors",
        sha256="ab" * 32,
        samples=10,
        spec_hash="cafe",
    )
    params: dict[str, Any] = await client.get_protocol_parameters()
    envelope = tx.build_announcement_tx(
        ann, keys=k, utxo=await client.get_snapshot_utxo(), peer_addresses=peers, protocol_parameters=params
    )
    await client.submit_transaction(envelope)
    await client.wait_for("SnapshotConfirmed", lambda o: envelope["txId"] in o.confirmed_tx_ids, since=0)
    return envelope["txId"]


async def test_open_fund_follow_close_fanout(devnet: Net) -> None:
    # Prepare
    _, clients, party_keys = devnet
    controller = HeadController(clients, timeout=20)
    addresses = {n: str(k.address()) for n, k in party_keys.items()}

    # Execute: open and fund
    head_id = await controller.open()
    await controller.fund(party_keys, 50_000_000)

    # Assert: one head id everywhere, every party's deposit in the head
    assert head_id == (await clients["bob"].get_head())["contents"]["headId"]
    utxo = await clients["carol"].get_snapshot_utxo()
    assert {o["address"] for o in utxo.values()} == set(addresses.values())

    # Execute: the controller follows two rounds while the parties announce
    book = RoundBook("fed", "cafe", {n: k.participant_id for n, k in party_keys.items()})
    follower = asyncio.create_task(controller.follow(book, rounds=2))
    sent = {}
    for round_no in (1, 2):
        for name in ("carol", "alice", "bob"):
            peers = [a for n, a in addresses.items() if n != name]
            sent[(round_no, name)] = await _announce(clients[name], party_keys[name], peers, round_no)
        if round_no == 1:
            await asyncio.sleep(0.2)
            assert not follower.done()
    await asyncio.wait_for(follower, 10)

    # Assert: both rounds complete, members sorted, tx ids as sent
    for round_no in (1, 2):
        entries = book.round_announcements(round_no)
        assert [e.announcement.party for e in entries] == ["alice", "bob", "carol"]
        assert {(round_no, e.announcement.party): e.tx_id for e in entries} == {
            k: v for k, v in sent.items() if k[0] == round_no
        }

    # Execute / Assert: Close -> contestation -> Fanout -> HeadIsFinalized
    closing_utxo = await clients["bob"].get_snapshot_utxo()
    result = await controller.close_and_fanout()
    assert result.head_id == head_id
    assert (await clients["alice"].get_head())["tag"] == "Idle"
    assert result.finalized_utxo == closing_utxo
    # Announcements move ADA between parties; the head returns everything that was committed.
    committed = sum(int(o["value"]["lovelace"]) for o in utxo.values())
    assert committed >= 3 * 50_000_000
    assert sum(int(o["value"]["lovelace"]) for o in closing_utxo.values()) == committed


async def test_open_refuses_a_closed_head_and_bad_controllers(devnet: Net) -> None:
    # Prepare: a head that is closed but not yet fanned out
    _, clients, party_keys = devnet
    controller = HeadController(clients, timeout=20)
    await controller.open()
    await controller.open()  # already open: nothing to do, same head
    since = clients["bob"].position
    await clients["bob"].send(messages.Close())
    await clients["bob"].wait_for("HeadIsClosed", since=since)

    # Execute / Assert
    with pytest.raises(errors.HeadError, match="it is Closed"):
        await HeadController(clients, timeout=5).open()
    with pytest.raises(errors.ConfigError, match="at least one"):
        HeadController({})
    with pytest.raises(errors.ConfigError, match="no node client"):
        await controller.fund({"dave": party_keys["alice"]})


async def test_a_reopened_head_gets_its_own_id(devnet: Net) -> None:
    # Prepare: a head opened, closed and fanned out; the nodes' history still holds its HeadIsOpen
    _, clients, _ = devnet
    controller = HeadController(clients, timeout=20)
    first = await controller.open()
    await controller.close_and_fanout()

    # Execute
    second = await HeadController(clients, timeout=20).open()

    # Assert
    assert second != first
    assert second == (await clients["carol"].get_head())["contents"]["headId"]


async def test_fanout_waits_for_the_contestation_deadline_not_a_fixed_timeout(tmp_path: Path) -> None:
    # Prepare: a contestation period three times the controller's per-event timeout
    async with (
        Devnet(
            parties=["alice"], api_port=free_base_port(1), state_dir=tmp_path / "d", contestation_period=3.0
        ) as net,
        client_mod.HydraClient(net.urls[0]) as client,
    ):
        controller = HeadController({"alice": client}, timeout=1.0)
        await controller.open()

        # Execute
        result = await controller.close_and_fanout()

        # Assert
        assert result.head_id == controller.head_id
        assert (await client.get_head())["tag"] == "Idle"


async def test_close_step_closes_and_fans_out_one_idempotent_step_at_a_time(devnet: Net) -> None:
    # Prepare
    _, clients, _ = devnet
    head_id = await HeadController(clients, timeout=20).open()

    # Execute: steps from two different parties' nodes, as two operators would take them
    steps = []
    for turn in range(40):
        step = await close_step(clients["bob" if turn % 2 else "carol"], head_id)
        steps.append(step.waiting_for)
        if step.done:
            break
        await asyncio.sleep(min(step.retry_in, 0.2))

    # Assert: Close, the deadline, Fanout, then done; the head is idle and says so again
    assert step.done, steps
    assert any("HeadIsClosed" in s for s in steps) and any("Fanout" in s for s in steps)
    assert (await clients["alice"].get_head())["tag"] == "Idle"
    assert (await close_step(clients["alice"], head_id)).done


async def test_close_step_releases_a_head_that_never_opened_at_once(devnet: Net) -> None:
    _, clients, _ = devnet
    step = await close_step(clients["alice"], None)
    assert step.done and "no head was opened" in step.waiting_for
