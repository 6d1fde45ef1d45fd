"""Escrow terms and txs without a head: validation, addresses, determinism, refund-slot arithmetic."""

from __future__ import annotations

import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import escrow, keys, ledger, native_script

pytestmark = pytest.mark.unit

PARTIES = [keys.generate_party_keys(n) for n in ("alice", "bob", "carol")]
MEMBERS = tuple(escrow.Member.of(k) for k in PARTIES)
TERMS = escrow.EscrowTerms(fed="fed", members=MEMBERS, threshold=2, refund_slot=500, amount=9_000_000)
PARAMS = ledger.LedgerParams()
INPUTS = [("aa" * 32 + "#0", 9_000_000)]


def test_terms_are_checked() -> None:
    with pytest.raises(errors.ConfigError, match=r"escrow.threshold: 3 must be between 1 and 2"):
        escrow.EscrowTerms(fed="fed", members=MEMBERS, threshold=3, refund_slot=5, amount=1)
    with pytest.raises(errors.ConfigError, match="at least 2 distinct"):
        escrow.EscrowTerms(fed="fed", members=MEMBERS[:1], threshold=1, refund_slot=5, amount=1)
    with pytest.raises(errors.ConfigError, match="'zed' is not a member"):
        TERMS.script("zed")


def test_the_script_is_m_of_the_others_or_the_owner_after_the_refund_slot() -> None:
    script = TERMS.script("alice")
    a, b, c = ({bytes(k.payment_verification_key.hash().payload)} for k in PARTIES)
    assert native_script.evaluate(script, b | c, None, None)
    assert not native_script.evaluate(script, b, None, None)
    assert not native_script.evaluate(script, a | b, 499, None)  # alice does not count for herself
    assert native_script.evaluate(script, a, 500, None)
    assert TERMS.address("alice").payment_part == script.hash()
    assert len({str(TERMS.address(m.name)) for m in MEMBERS}) == 3


def test_every_party_rebuilds_the_same_slash_bytes() -> None:
    evidence = escrow.Equivocation(3, "carol", "11" * 32, "22" * 32)
    first = escrow.build_slash(TERMS, evidence, INPUTS, PARAMS)
    again = escrow.build_slash(TERMS, evidence, list(reversed(INPUTS)), PARAMS)
    assert (first.body_cbor, first.aux_cbor) == (again.body_cbor, again.aux_cbor)
    other = escrow.build_slash(TERMS, escrow.Equivocation(4, "carol", "11" * 32, "22" * 32), INPUTS, PARAMS)
    assert other.tx_id != first.tx_id
    # Shares: 4.5 ADA each to alice and bob.
    tx = pycardano.Transaction.from_cbor(first.envelope([first.sign(PARTIES[0])])["cborHex"])
    assert [(str(o.address), o.amount) for o in tx.transaction_body.outputs] == [
        (str(MEMBERS[0].address), 4_500_000),
        (str(MEMBERS[1].address), 4_500_000),
    ]


def test_an_l1_slash_pays_its_fee_from_the_escrow() -> None:
    l1 = ledger.LedgerParams(tx_fee_fixed=155_381, tx_fee_per_byte=44)
    evidence = escrow.Equivocation(3, "carol", "11" * 32, "22" * 32)
    slash = escrow.build_slash(TERMS, evidence, INPUTS, l1)
    env = slash.envelope([slash.sign(PARTIES[0]), slash.sign(PARTIES[1])])
    tx = pycardano.Transaction.from_cbor(env["cborHex"])
    fee = tx.transaction_body.fee
    assert fee >= ledger.min_fee(len(bytes.fromhex(env["cborHex"])), l1)
    assert sum(o.lovelace for o in tx.transaction_body.outputs) + fee == 9_000_000


def test_a_share_below_min_ada_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match=r"below its min-ADA.*raise the escrow amount"):
        escrow.build_slash(
            TERMS,
            escrow.Equivocation(0, "carol", "11" * 32, "22" * 32),
            [("aa" * 32 + "#0", 1_000_000)],
            PARAMS,
        )


def test_refund_slot_leaves_time_for_close_contestation_and_fanout() -> None:
    kw = {"current_slot": 1000, "training_seconds": 600.0, "contestation_period": 60.0, "parties": 3}
    # 600 s training + (1 + 3) x 60 s + 3600 s margin = 4440 slots after slot 1000.
    escrow.check_refund_slot(5440, **kw)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match=r"escrow.refundSlot: 5439 is too early.*slot 5440 or later"):
        escrow.check_refund_slot(5439, **kw)  # type: ignore[arg-type]


def test_escrow_states_count_only_what_really_spent_an_escrow() -> None:
    alice, bob, carol = PARTIES
    funds = {"cc" * 32 + "#0": pycardano.TransactionOutput(alice.address(), 50_000_000)}
    lock = escrow.build_lock_tx(TERMS, alice, funds, PARAMS)
    assert escrow.escrow_states(TERMS, [lock])["alice"] == escrow.EscrowState("locked", lock["txId"])
    # A tx that claims alice's slash in its metadata but spends alice's change, not her escrow.
    evidence = escrow.Equivocation(1, "alice", "11" * 32, "22" * 32)
    fake = escrow.build_slash(TERMS, evidence, [(lock["txId"] + "#1", 41_000_000)], PARAMS)
    fake_env = fake.envelope([fake.sign(alice)])
    assert escrow.escrow_states(TERMS, [lock, fake_env])["alice"].state == "locked"
    real = escrow.build_slash(TERMS, evidence, [(lock["txId"] + "#0", TERMS.amount)], PARAMS)
    real_env = real.envelope([real.sign(bob), real.sign(carol)])
    states = escrow.escrow_states(TERMS, [lock, fake_env, real_env])
    assert states["alice"] == escrow.EscrowState("slashed", real.tx_id, 1, "equivocation")
    assert states["bob"] == escrow.EscrowState()
