"""Escrow on a real devnet head: lock, release, refund, and slashes that every party checks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import escrow, keys, ledger, messages, multisig
from hydrafed.hydra import tx as tx_mod
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import DevnetFactory

pytestmark = pytest.mark.integration

NAMES = ["alice", "bob", "carol", "dave"]
AMOUNT = 10_000_000
REFUND_SLOT = 100_000
PARAMS = ledger.LedgerParams.from_json({"txFeeFixed": 0, "txFeePerByte": 0})
GOOD = b"the update dave trained"
SWAPPED = b"something else entirely"

Fed = tuple[Devnet, list[client_mod.HydraClient], dict[str, keys.PartyKeys], escrow.EscrowTerms]


async def submit(c: client_mod.HydraClient, env: dict[str, str]) -> messages.ServerOutput:
    """Send NewTx; the first TxValid/TxInvalid for it (and, when valid, its snapshot)."""
    pos = c.position
    await c.send(messages.NewTx(transaction=env))
    out = await c.wait_for(
        ("TxValid", "TxInvalid"),
        lambda o: (
            (isinstance(o, messages.TxValid) and o.transaction_id == env["txId"])
            or isinstance(o, messages.TxInvalid)
        ),
        since=pos,
    )
    return out


async def confirmed(c: client_mod.HydraClient, env: dict[str, str]) -> None:
    out = await submit(c, env)
    assert isinstance(out, messages.TxValid), getattr(out, "reason", out)
    await c.wait_for(
        "SnapshotConfirmed",
        lambda o: isinstance(o, messages.SnapshotConfirmed) and env["txId"] in o.confirmed_tx_ids,
        since=0,
    )


async def refused(c: client_mod.HydraClient, env: dict[str, str], reason: str) -> None:
    out = await submit(c, env)
    assert isinstance(out, messages.TxInvalid), out
    assert reason in out.reason, out.reason


@pytest.fixture
async def fed(make_devnet: DevnetFactory) -> AsyncIterator[Fed]:
    """A 4-party head, open and funded, with every party's deposit locked in escrow (M = 2)."""
    net = await make_devnet(parties=NAMES, open_head=True)
    clients = [client_mod.HydraClient(url) for url in net.urls]
    for c in clients:
        await c.connect()
    party = {n: keys.load_party_keys(net.keys_dir(n), n) for n in NAMES}
    terms = escrow.EscrowTerms(
        fed="fed",
        members=tuple(escrow.Member.of(party[n]) for n in NAMES),
        threshold=2,
        refund_slot=REFUND_SLOT,
        amount=AMOUNT,
    )
    for i, n in enumerate(NAMES):
        utxo = await clients[i].get_snapshot_utxo()
        await confirmed(clients[i], escrow.build_lock_tx(terms, party[n], utxo, PARAMS))
    yield net, clients, party, terms
    for c in clients:
        await c.close()


def _at(utxo: dict[str, Any], address: pycardano.Address) -> int:
    return sum(o["value"]["lovelace"] for o in utxo.values() if o["address"] == str(address))


async def test_lock_puts_each_deposit_at_its_own_escrow_address(fed: Fed) -> None:
    _, clients, _, terms = fed
    utxo = await clients[0].get_snapshot_utxo()
    addresses = {str(terms.address(n)) for n in NAMES}
    assert len(addresses) == 4
    for n in NAMES:
        assert escrow.escrow_inputs(terms, n, utxo)[0][1] == AMOUNT
        assert _at(utxo, terms.address(n)) == AMOUNT


async def test_release_after_the_last_round_pays_the_owner(fed: Fed) -> None:
    # Prepare
    _, clients, party, terms = fed
    utxo = await clients[1].get_snapshot_utxo()
    before = _at(utxo, terms.member("alice").address)
    proposal = escrow.build_release(terms, "alice", escrow.escrow_inputs(terms, "alice", utxo), PARAMS)

    # Execute: bob and carol each rebuild it from their own view and sign.
    votes = []
    for i in (1, 2):
        view = await clients[i].get_snapshot_utxo()
        votes.append(escrow.vote_release(terms, party[NAMES[i]], proposal, "alice", view, PARAMS))
    await confirmed(clients[1], escrow.gather(proposal, terms, "alice", votes))

    # Assert
    after = await clients[0].get_snapshot_utxo()
    assert _at(after, terms.address("alice")) == 0
    assert _at(after, terms.member("alice").address) == before + AMOUNT
    states = escrow.escrow_states(terms, (await _confirmed_txs(clients[3])).values())
    assert states["alice"] == escrow.EscrowState("released", proposal.tx_id)
    assert {states[n].state for n in NAMES[1:]} == {"locked"}


async def test_refund_is_refused_before_the_refund_slot_and_accepted_after(fed: Fed) -> None:
    net, clients, party, terms = fed
    assert net.head is not None
    utxo = await clients[3].get_snapshot_utxo()
    refund = escrow.build_refund(terms, "dave", escrow.escrow_inputs(terms, "dave", utxo), PARAMS)
    env = refund.envelope([refund.sign(party["dave"])])
    await refused(clients[3], env, "OutsideValidityIntervalUTxO")
    # Signed by another party instead of the owner: the script does not hold even in time.
    net.head.advance_slots(REFUND_SLOT - net.head.current_slot())
    await refused(clients[3], refund.envelope([refund.sign(party["bob"])]), "ScriptWitnessNotValidatingUTXOW")
    await confirmed(clients[3], env)
    after = await clients[0].get_snapshot_utxo()
    assert _at(after, terms.address("dave")) == 0
    states = escrow.escrow_states(terms, (await _confirmed_txs(clients[0])).values())
    assert states["dave"] == escrow.EscrowState("refunded", env["txId"])


async def _dave_announces(
    clients: list[client_mod.HydraClient], party: dict[str, keys.PartyKeys], sha: str
) -> str:
    ann = tx_mod.Announcement(
        fed="fed", round=0, party="dave", uri="s3://dave/rounds/0/dave", sha256=sha, samples=10
    )
    utxo = await clients[3].get_snapshot_utxo()
    peers = [str(party[n].address()) for n in NAMES if n != "dave"]
    env = tx_mod.build_announcement_tx(
        ann, keys=party["dave"], utxo=utxo, peer_addresses=peers, protocol_parameters={}
    )
    await confirmed(clients[3], env)
    return env["txId"]


async def _confirmed_txs(c: client_mod.HydraClient) -> dict[str, dict[str, Any]]:
    txs: dict[str, dict[str, Any]] = {}
    for out in c.events:
        if isinstance(out, messages.SnapshotConfirmed):
            for env in out.confirmed:
                txs[env["txId"]] = env
    return txs


def _hasher(ann: tx_mod.Announcement) -> str:
    """What a party computes after downloading dave's object: its bytes were swapped."""
    return hashlib.sha256(SWAPPED).hexdigest()


async def test_slash_needs_m_signatures_and_pays_the_others_equal_shares(fed: Fed) -> None:
    # Prepare: dave announces the sha256 of GOOD but its bucket serves SWAPPED.
    _, clients, party, terms = fed
    tx_id = await _dave_announces(clients, party, hashlib.sha256(GOOD).hexdigest())
    evidence = escrow.HashMismatch(
        round=0,
        accused="dave",
        announcement_tx=tx_id,
        announced_sha256=hashlib.sha256(GOOD).hexdigest(),
        object_sha256=hashlib.sha256(SWAPPED).hexdigest(),
    )
    utxo = await clients[0].get_snapshot_utxo()
    proposal = escrow.build_slash(terms, evidence, escrow.escrow_inputs(terms, "dave", utxo), PARAMS)

    # Execute: every other party rebuilds, checks and signs.
    votes = {}
    for i in (0, 1, 2):
        view, txs = await clients[i].get_snapshot_utxo(), await _confirmed_txs(clients[i])
        votes[NAMES[i]] = escrow.vote_slash(
            terms, party[NAMES[i]], proposal, evidence, view, PARAMS, txs, _hasher
        )
    # The accused cannot vote; one signature is not enough, neither for gather nor for the ledger.
    with pytest.raises(escrow.EscrowRefused, match="is the accused"):
        escrow.vote_slash(terms, party["dave"], proposal, evidence, utxo, PARAMS, {}, _hasher)
    with pytest.raises(errors.HeadError, match="1 of the 2 signatures"):
        escrow.gather(proposal, terms, "dave", [votes["alice"]])
    await refused(clients[0], proposal.envelope([votes["alice"]]), "ScriptWitnessNotValidatingUTXOW")
    # dave's own signature does not count towards M.
    await refused(
        clients[0],
        proposal.envelope([votes["alice"], proposal.sign(party["dave"])]),
        "ScriptWitnessNotValidatingUTXOW",
    )
    before = await clients[0].get_snapshot_utxo()
    await confirmed(clients[0], escrow.gather(proposal, terms, "dave", [votes["alice"], votes["carol"]]))

    # Assert: dave's escrow is split equally among the other three; the metadata names it all.
    after = await clients[2].get_snapshot_utxo()
    assert _at(after, terms.address("dave")) == 0
    share = AMOUNT // 3
    gains = [_at(after, party[n].address()) - _at(before, party[n].address()) for n in NAMES[:3]]
    assert gains == [share + AMOUNT % 3, share, share]
    env = (await _confirmed_txs(clients[2]))[proposal.tx_id]
    states = escrow.escrow_states(terms, (await _confirmed_txs(clients[2])).values())
    assert states["dave"] == escrow.EscrowState("slashed", proposal.tx_id, 0, "hash-mismatch")
    assert escrow.decode_action(env) == {
        "fed": "fed",
        "action": "slash",
        "round": 0,
        "accused": "dave",
        **evidence.metadata(),
    }


async def test_a_slash_with_wrong_shares_is_refused_by_every_party(fed: Fed) -> None:
    # Prepare: bob proposes dave's slash with everything paid to himself.
    _, clients, party, terms = fed
    sha = hashlib.sha256(GOOD).hexdigest()
    tx_id = await _dave_announces(clients, party, sha)
    evidence = escrow.HashMismatch(0, "dave", tx_id, sha, hashlib.sha256(SWAPPED).hexdigest())
    utxo = await clients[1].get_snapshot_utxo()
    honest = escrow.build_slash(terms, evidence, escrow.escrow_inputs(terms, "dave", utxo), PARAMS)
    greedy = escrow.EscrowTx(
        multisig.encode_body(
            escrow.escrow_inputs(terms, "dave", utxo), [(party["bob"].address(), AMOUNT)], 0, honest.aux_cbor
        ),
        honest.aux_cbor,
        honest.script,
    )

    # Execute / Assert: every party, bob's honest peers and dave alike, refuses to sign it.
    for i, name in enumerate(NAMES):
        view, txs = await clients[i].get_snapshot_utxo(), await _confirmed_txs(clients[i])
        with pytest.raises(escrow.EscrowRefused, match=r"is not the one|is the accused"):
            escrow.vote_slash(terms, party[name], greedy, evidence, view, PARAMS, txs, _hasher)
    await refused(clients[1], greedy.envelope([greedy.sign(party["bob"])]), "ScriptWitnessNotValidatingUTXOW")


async def test_evidence_that_does_not_hold_is_refused(fed: Fed) -> None:
    _, clients, party, terms = fed
    sha = hashlib.sha256(GOOD).hexdigest()
    first = await _dave_announces(clients, party, sha)
    txs = await _confirmed_txs(clients[0])
    utxo = await clients[0].get_snapshot_utxo()
    inputs = escrow.escrow_inputs(terms, "dave", utxo)

    def honest(ann: tx_mod.Announcement) -> str:
        return hashlib.sha256(GOOD).hexdigest()  # the object is what dave announced

    claim = escrow.HashMismatch(0, "dave", first, sha, hashlib.sha256(SWAPPED).hexdigest())
    proposal = escrow.build_slash(terms, claim, inputs, PARAMS)
    with pytest.raises(escrow.EscrowRefused, match="hashes to the announced"):
        escrow.vote_slash(terms, party["alice"], proposal, claim, utxo, PARAMS, txs, honest)
    # One announcement is no equivocation; a second, different one for the same round is.
    lone = escrow.Equivocation(0, "dave", first, first)
    with pytest.raises(escrow.EscrowRefused, match="same tx twice"):
        escrow.check_evidence(terms, lone, txs, honest)
    second = await _dave_announces(clients, party, hashlib.sha256(SWAPPED).hexdigest())
    txs = await _confirmed_txs(clients[0])
    double = escrow.Equivocation(0, "dave", first, second)
    escrow.check_evidence(terms, double, txs, honest)
    # Blaming carol for dave's txs fails: they are not carol's announcements.
    with pytest.raises(escrow.EscrowRefused, match="is not carol's announcement"):
        escrow.check_evidence(terms, escrow.Equivocation(0, "carol", first, second), txs, honest)


async def test_when_the_accused_withholds_its_signature_the_others_slash_on_l1(fed: Fed) -> None:
    # Prepare: dave's bad announcement is confirmed, then dave's node stops signing snapshots.
    net, clients, party, terms = fed
    assert net.head is not None
    sha = hashlib.sha256(GOOD).hexdigest()
    tx_id = await _dave_announces(clients, party, sha)
    evidence = escrow.HashMismatch(0, "dave", tx_id, sha, hashlib.sha256(SWAPPED).hexdigest())
    txs = {n: await _confirmed_txs(clients[i]) for i, n in enumerate(NAMES)}
    net.head.withhold_snapshot_signature(NAMES.index("dave"))
    utxo = await clients[0].get_snapshot_utxo()
    in_head = escrow.build_slash(terms, evidence, escrow.escrow_inputs(terms, "dave", utxo), PARAMS)
    votes = [in_head.sign(party[n]) for n in ("alice", "bob")]
    pos = clients[0].position
    assert isinstance(
        await submit(clients[0], escrow.gather(in_head, terms, "dave", votes)), messages.TxValid
    )
    with pytest.raises(errors.HeadError, match="no SnapshotConfirmed"):
        await clients[0].wait_for("SnapshotConfirmed", since=pos, timeout=1.0)

    # Execute: close, wait out the contestation period, fan out; dave's escrow lands on L1 as is.
    pos = clients[0].position
    await clients[0].send(messages.Close())
    await clients[0].wait_for("ReadyToFanout", since=pos, timeout=10)
    await clients[0].send(messages.Fanout())
    await clients[0].wait_for("HeadIsFinalized", since=pos, timeout=10)
    l1 = await clients[0].devnet_l1_utxo(str(terms.address("dave")))
    assert [o["value"]["lovelace"] for o in l1.values()] == [AMOUNT]
    l1_params = net.head.params
    proposal = escrow.build_slash(terms, evidence, escrow.escrow_inputs(terms, "dave", l1), l1_params)
    # (The devnet fans outputs out under their head references and its L1 charges no fee, so
    # here the L1 slash has the in-head bytes; a real fanout gives new references: rebuild, re-sign.)
    signed = [
        escrow.vote_slash(terms, party[n], proposal, evidence, l1, l1_params, txs[n], _hasher)
        for n in ("bob", "carol")
    ]
    before = {n: await clients[0].devnet_l1_utxo(str(party[n].address())) for n in NAMES}
    # One signature is refused by the L1 ledger too; M are accepted.
    with pytest.raises(errors.HeadError, match="ScriptWitnessNotValidatingUTXOW"):
        await clients[1].submit_cardano_transaction(proposal.envelope(signed[:1]))
    await clients[1].submit_cardano_transaction(escrow.gather(proposal, terms, "dave", signed))

    # Assert
    assert await clients[0].devnet_l1_utxo(str(terms.address("dave"))) == {}
    share = AMOUNT // 3
    for i, n in enumerate(NAMES[:3]):
        after = await clients[0].devnet_l1_utxo(str(party[n].address()))
        gained = sum(o["value"]["lovelace"] for o in after.values()) - sum(
            o["value"]["lovelace"] for o in before[n].values()
        )
        assert gained == share + (AMOUNT % 3 if i == 0 else 0)
