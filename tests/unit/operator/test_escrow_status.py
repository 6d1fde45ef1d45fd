"""The Federation status' escrow lines: each party's state and any slash, from real txs."""

from __future__ import annotations

import pycardano
import pytest

from hydrafed import spec
from hydrafed.hydra import escrow, keys, ledger
from hydrafed.operator.federation import escrow_progress
from hydrafed.operator.membership import Member

pytestmark = pytest.mark.unit

PARTIES = [keys.generate_party_keys(n) for n in ("alice", "bob", "carol")]
ESCROW = spec.EscrowSpec(enabled=True, amount_lovelace=9_000_000, threshold=2, refund_slot=10**6)


def _member(k: keys.PartyKeys) -> Member:
    return Member(
        name=k.name,
        hydra_vkey=k.hydra_vkey_hex,
        cardano_vkey=bytes(k.payment_verification_key.payload).hex(),
        address=str(k.address()),
        key_hash=k.participant_id,
        bucket=k.name,
        peer_address=None,
    )


def test_locked_slashed_and_none_as_status_objects() -> None:
    # Prepare: carol locks, then alice and bob slash her for equivocating in round 4.
    alice, bob, carol = PARTIES
    members = [_member(k) for k in PARTIES]
    terms = escrow.terms_from_spec("fed", [escrow.Member.of(k) for k in PARTIES], ESCROW)
    funds = {"cc" * 32 + "#0": pycardano.TransactionOutput(carol.address(), 50_000_000)}
    lock = escrow.build_lock_tx(terms, carol, funds, ledger.LedgerParams())
    evidence = escrow.Equivocation(4, "carol", "11" * 32, "22" * 32)
    slash = escrow.build_slash(terms, evidence, [(lock["txId"] + "#0", 9_000_000)], ledger.LedgerParams())
    slash_env = slash.envelope([slash.sign(alice), slash.sign(bob)])

    # Execute
    locked = escrow_progress("fed", ESCROW, members, [lock])
    slashed = escrow_progress("fed", ESCROW, members, [lock, slash_env])

    # Assert: the objects are what the status schema takes.
    assert locked["carol"] == {"state": "locked", "txId": lock["txId"]}
    assert slashed["carol"] == {"state": "slashed", "txId": slash.tx_id, "round": 4, "reason": "equivocation"}
    assert slashed["alice"] == {"state": "none"}
    for row in slashed.values():
        spec.PartyProgress.model_validate({"name": "x", "escrow": row})
