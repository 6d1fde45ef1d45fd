"""Each ledger rule rejects the tx that breaks it, with the ledger's name for the failure."""

from __future__ import annotations

import pycardano
import pytest

from hydrafed.hydra import keys, ledger
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.unit

PARAMS = ledger.LedgerParams.from_json(DEFAULT_PROTOCOL_PARAMETERS)
NET = pycardano.Network.TESTNET
IN = "22" * 32 + "#1"


@pytest.fixture
def alice() -> keys.PartyKeys:
    return keys.generate_party_keys("alice")


@pytest.fixture
def bob() -> keys.PartyKeys:
    return keys.generate_party_keys("bob")


def _utxo(owner: keys.PartyKeys, lovelace: int = 10_000_000) -> dict[str, pycardano.TransactionOutput]:
    return {IN: pycardano.TransactionOutput(owner.address(), lovelace)}


def _check(env: dict[str, str], utxo: dict[str, pycardano.TransactionOutput]) -> ledger.ValidatedTx:
    return ledger.validate_tx(env["cborHex"], utxo, PARAMS, NET, env["txId"])


def test_valid_payment_is_applied(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    utxo = _utxo(alice)
    env = make_tx(alice, [IN], [(bob.address(), 2_000_000), (alice.address(), 8_000_000)])
    valid = _check(env, utxo)
    ledger.apply_tx(utxo, valid)
    assert IN not in utxo
    assert sorted(o.amount for o in utxo.values()) == [2_000_000, 8_000_000]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown_input", "BadInputsUTxO"),
        ("bad_signature", "InvalidWitnessesUTXOW"),
        ("missing_witness", "MissingVKeyWitnessesUTXOW"),
        ("unbalanced", "ValueNotConservedUTxO"),
        ("below_min_ada", "BabbageOutputTooSmallUTxO"),
        ("wrong_metadata_hash", "ConflictingMetadataHash"),
        ("wrong_network", "WrongNetwork"),
        ("txid_mismatch", "TxIdMismatch"),
    ],
)
def test_rule_violations(case: str, reason: str, alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    # Prepare
    utxo = _utxo(alice)
    pay = [(bob.address(), 2_000_000), (alice.address(), 8_000_000)]
    env: dict[str, str]
    if case == "unknown_input":
        env = make_tx(alice, ["33" * 32 + "#0"], pay)
    elif case == "bad_signature":
        env = make_tx(alice, [IN], pay, signing_key=bob.payment_signing_key)
    elif case == "missing_witness":
        env = make_tx(bob, [IN], pay)  # bob signs validly, but the input is alice's
    elif case == "unbalanced":
        env = make_tx(alice, [IN], [(bob.address(), 2_000_000), (alice.address(), 9_000_000)])
    elif case == "below_min_ada":
        env = make_tx(alice, [IN], [(bob.address(), 500_000), (alice.address(), 9_500_000)])
    elif case == "wrong_metadata_hash":
        aux = pycardano.AuxiliaryData(pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: "a"})))
        other = pycardano.AuxiliaryData(pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: "b"})))
        env = make_tx(alice, [IN], pay, aux=aux, aux_hash=other.hash())
    elif case == "wrong_network":
        env = make_tx(alice, [IN], [(bob.address("mainnet"), 2_000_000), (alice.address(), 8_000_000)])
    else:
        env = {**make_tx(alice, [IN], pay), "txId": "00" * 32}

    # Execute / Assert
    with pytest.raises(ledger.LedgerRuleError, match=reason):
        _check(env, utxo)


def test_fee_below_minimum(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    params = ledger.LedgerParams.from_json({**DEFAULT_PROTOCOL_PARAMETERS, "txFeeFixed": 1000})
    env = make_tx(alice, [IN], [(bob.address(), 2_000_000), (alice.address(), 7_999_500)], fee=500)
    with pytest.raises(ledger.LedgerRuleError, match="FeeTooSmallUTxO"):
        ledger.validate_tx(env["cborHex"], _utxo(alice), params, NET)


def test_min_lovelace_matches_the_cost_per_byte_rule(alice: keys.PartyKeys) -> None:
    out = pycardano.TransactionOutput(alice.address(), 1_000_000)
    assert ledger.min_lovelace(out, PARAMS) == (160 + len(out.to_cbor())) * 4310
    # An enterprise address (no stake part) needs about 0.85 ADA; base addresses about 0.97.
    assert 800_000 < ledger.min_lovelace(out, PARAMS) < 1_000_000


def test_minting_is_refused(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    body = pycardano.TransactionBody(
        inputs=[pycardano.TransactionInput.from_primitive([bytes.fromhex("22" * 32), 1])],
        outputs=[pycardano.TransactionOutput(bob.address(), 10_000_000)],
        fee=0,
        mint=pycardano.MultiAsset.from_primitive({b"\x01" * 28: {b"tok": 1}}),
    )
    witness = pycardano.VerificationKeyWitness(
        alice.payment_verification_key, alice.payment_signing_key.sign(body.hash())
    )
    tx = pycardano.Transaction(body, pycardano.TransactionWitnessSet(vkey_witnesses=[witness]))
    with pytest.raises(ledger.LedgerRuleError, match="mint is not supported"):
        ledger.validate_tx(tx.to_cbor_hex(), _utxo(alice), PARAMS, NET)


def test_garbage_cbor_is_a_decoder_failure(alice: keys.PartyKeys) -> None:
    for bad in ("zz", "", "a0", "8400"):
        with pytest.raises(ledger.LedgerRuleError, match="DecoderFailure"):
            ledger.validate_tx(bad, _utxo(alice), PARAMS, NET)
