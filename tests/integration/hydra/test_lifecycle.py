"""A 3-party head through the client: Init, deposits, announcements, snapshots, Close, Fanout."""

from __future__ import annotations

import json

import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages, tx
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import confirms

pytestmark = pytest.mark.integration

FUNDS = 100_000_000


def _announcement(party: str, round_no: int) -> tx.Announcement:
    return tx.Announcement(
        fed="fed-test",
        round=round_no,
        party=party,
        uri=f"sj://bucket-{party}/rounds/{round_no}/{party}.safetensors",
        sha256=f"{round_no:02x}" * 32,
        samples=100 + round_no,
        metrics={"accuracy": 0.5 + round_no / 10},
        spec_hash="ef" * 32,
    )


async def test_three_party_lifecycle(
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    net, clients, party_keys = open_head

    # Funding: every party's L1 output is now in the head, with its original reference.
    head_utxo = await clients[1].get_snapshot_utxo()
    assert sorted(o["value"]["lovelace"] for o in head_utxo.values()) == [FUNDS] * 3
    assert {o["address"] for o in head_utxo.values()} == {str(k.address()) for k in party_keys}
    for c in clients:
        tags = [e.tag for e in c.events]
        for tag in ("CommitRecorded", "DepositActivated", "CommitApproved", "CommitFinalized"):
            assert tags.count(tag) == 3, (tag, tags)

    # Announcements: each party announces round 1 from its own node.
    params = await clients[0].get_protocol_parameters()
    since = [c.position for c in clients]
    sent = {}
    for c, k in zip(clients, party_keys, strict=True):
        peers = [str(p.address()) for p in party_keys if p is not k]
        utxo = await c.get_snapshot_utxo()
        env = tx.build_announcement_tx(
            _announcement(k.name, 1), keys=k, utxo=utxo, peer_addresses=peers, protocol_parameters=params
        )
        sent[env["txId"]] = k.name
        await c.send(messages.NewTx(transaction=env))
        await c.wait_for("SnapshotConfirmed", confirms(env["txId"]), since=since[0])

    # Every node saw TxValid for every tx and the same confirmed announcements, in the same order.
    seen_orders = []
    for c, start in zip(clients, since, strict=True):
        later = c.events[start:]
        assert {e.transaction_id for e in later if isinstance(e, messages.TxValid)} == set(sent)
        confirmed = [env for e in later if isinstance(e, messages.SnapshotConfirmed) for env in e.confirmed]
        anns = [tx.decode_announcement(env) for env in confirmed]
        assert [a.party for a in anns if a] == ["alice", "bob", "carol"]
        assert all(a is not None and a.round == 1 and a.metrics == {"accuracy": 0.6} for a in anns)
        seen_orders.append([env["txId"] for env in confirmed])
        numbers = [e.number for e in later if isinstance(e, messages.SnapshotConfirmed)]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert seen_orders[0] == seen_orders[1] == seen_orders[2]

    # Each party paid 1 ADA to each of two peers and kept the change.
    final_utxo = await clients[2].get_snapshot_utxo()
    by_address: dict[str, int] = {}
    for out in final_utxo.values():
        by_address[out["address"]] = by_address.get(out["address"], 0) + out["value"]["lovelace"]
    assert set(by_address.values()) == {FUNDS}  # each pays 2 ADA and receives 2 ADA
    # Announcements consolidate the sender's outputs: 3 changes + alice 2x1 + bob 1x1 ADA remain.
    assert len(final_utxo) == 6

    # Inputs the state does not allow, and input that does not parse.
    pos = clients[0].position
    await clients[0].send(messages.Init())
    failed = await clients[0].wait_for("CommandFailed", since=pos)
    assert isinstance(failed, messages.CommandFailed) and failed.client_input == {"tag": "Init"}
    assert failed.seq is None
    await clients[0].send({"tag": "NewTx", "transaction": "84a4"})
    invalid = await clients[0].wait_for("InvalidInput", since=pos)
    assert isinstance(invalid, messages.InvalidInput) and "84a4" in invalid.input
    await clients[0].send(messages.Contest())
    await clients[0].wait_for(
        "CommandFailed", lambda o: o.to_json()["clientInput"]["tag"] == "Contest", since=pos
    )

    # Close -> HeadIsClosed everywhere -> ReadyToFanout after the deadline -> Fanout -> HeadIsFinalized.
    before_close = [c.position for c in clients]
    await clients[1].send(messages.Close())
    for c, start in zip(clients, before_close, strict=True):
        closed = await c.wait_for("HeadIsClosed", since=start)
        assert isinstance(closed, messages.HeadIsClosed) and closed.snapshot_number >= 4
    pos = clients[2].position
    await clients[2].send(messages.Fanout())  # too early: not yet FanoutPossible
    await clients[2].wait_for("CommandFailed", since=pos)
    for c in clients:
        await c.wait_for("ReadyToFanout", since=0, timeout=5)
    assert (await clients[0].get_head())["tag"] == "Closed"
    await clients[0].send(messages.Fanout())
    for c in clients:
        final = await c.wait_for("HeadIsFinalized", since=0)
        assert isinstance(final, messages.HeadIsFinalized)
        assert final.finalized_utxo == final_utxo
    assert (await clients[0].get_head())["tag"] == "Idle"
    # The funds are back on L1 at the parties' addresses.
    l1 = await clients[0].devnet_l1_utxo(str(party_keys[0].address()))
    assert sum(o["value"]["lovelace"] for o in l1.values()) == FUNDS
    manifest = json.loads((net.state_dir / "devnet.json").read_text())
    assert [p["name"] for p in manifest["parties"]] == ["alice", "bob", "carol"]
    assert manifest["parties"][1]["apiUrl"] == net.urls[1]
