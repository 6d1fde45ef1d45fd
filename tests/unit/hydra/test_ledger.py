"""Each ledger rule rejects the tx that breaks it, with the ledger's name for the failure."""

from __future__ import annotations

import dataclasses

import cbor2
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


def test_mint_without_its_policy_script_is_refused(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
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
    with pytest.raises(ledger.LedgerRuleError, match=f"MissingScriptWitnessesUTXOW: .*{'01' * 28}"):
        ledger.validate_tx(tx.to_cbor_hex(), _utxo(alice), PARAMS, NET)


def test_garbage_cbor_is_a_decoder_failure(alice: keys.PartyKeys) -> None:
    for bad in ("zz", "", "a0", "8400"):
        with pytest.raises(ledger.LedgerRuleError, match="DecoderFailure"):
            ledger.validate_tx(bad, _utxo(alice), PARAMS, NET)


# -- One rule at a time: each check_* passes the valid tx and rejects the one that breaks it. --


def _decoded(env: dict[str, str]) -> ledger.DecodedTx:
    return ledger.decode_tx(env["cborHex"])


def _bare(body: dict[int, object]) -> ledger.DecodedTx:
    """A decoded tx with only the body fields a rule reads."""
    return ledger.DecodedTx(raw=b"", body=body, witness_set={}, aux_bytes=b"\xf6", body_hash=b"\0" * 32)


def _pay(alice: keys.PartyKeys, bob: keys.PartyKeys) -> dict[str, str]:
    return make_tx(alice, [IN], [(bob.address(), 2_000_000), (alice.address(), 8_000_000)])


def test_rule_tx_id(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    env = _pay(alice, bob)
    tx = _decoded(env)
    assert tx.tx_id == env["txId"]
    ledger.check_tx_id(tx, env["txId"])
    ledger.check_tx_id(tx, None)
    with pytest.raises(ledger.LedgerRuleError, match=f"TxIdMismatch: envelope txId {'00' * 32} but"):
        ledger.check_tx_id(tx, "00" * 32)


def test_rule_max_tx_size(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    tx = _decoded(_pay(alice, bob))
    ledger.check_max_tx_size(tx, ledger.LedgerParams(max_tx_size=len(tx.raw)))
    with pytest.raises(ledger.LedgerRuleError, match=f"MaxTxSizeUTxO: tx is {len(tx.raw)} bytes, limit"):
        ledger.check_max_tx_size(tx, ledger.LedgerParams(max_tx_size=len(tx.raw) - 1))


@pytest.mark.parametrize(("field", "name"), [(4, "certificates"), (5, "withdrawals"), (22, "donation")])
def test_rule_supported_fields(field: int, name: str) -> None:
    ledger.check_supported_fields(_bare({0: [], field: 0}))  # an empty/zero field is absent
    with pytest.raises(ledger.LedgerRuleError, match=f"UnsupportedTxField: {name} is not supported"):
        ledger.check_supported_fields(_bare({field: [1]}))


def test_rule_inputs_not_empty() -> None:
    ledger.check_inputs_not_empty([IN])
    with pytest.raises(ledger.LedgerRuleError, match="InputSetEmptyUTxO"):
        ledger.check_inputs_not_empty([])


def test_rule_no_duplicate_inputs() -> None:
    other = "33" * 32 + "#0"
    ledger.check_no_duplicate_inputs([IN, other])
    with pytest.raises(ledger.LedgerRuleError, match=f"BadInputsUTxO: input {IN} is spent twice"):
        ledger.check_no_duplicate_inputs([IN, other, IN])


def test_rule_inputs_exist(alice: keys.PartyKeys) -> None:
    utxo = _utxo(alice)
    ledger.check_inputs_exist([IN], utxo)
    with pytest.raises(ledger.LedgerRuleError, match=r"BadInputsUTxO: input 3{64}#0 is not in the UTxO"):
        ledger.check_inputs_exist([IN, "33" * 32 + "#0"], utxo)


def test_rule_witness_signatures(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    signed_by = ledger.check_witness_signatures(_decoded(_pay(alice, bob)))
    assert signed_by == {bytes(alice.payment_verification_key.hash().payload)}
    forged = make_tx(alice, [IN], [(bob.address(), 10_000_000)], signing_key=bob.payment_signing_key)
    with pytest.raises(ledger.LedgerRuleError, match="InvalidWitnessesUTXOW"):
        ledger.check_witness_signatures(_decoded(forged))


def test_rule_required_signers(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    utxo = _utxo(alice)
    tx = _decoded(_pay(alice, bob))
    alice_hash = bytes(alice.payment_verification_key.hash().payload)
    bob_hash = bytes(bob.payment_verification_key.hash().payload)
    ledger.check_required_signers(tx, [IN], utxo, {alice_hash})
    with pytest.raises(ledger.LedgerRuleError, match=f"MissingVKeyWitnessesUTXOW: .*{alice_hash.hex()}"):
        ledger.check_required_signers(tx, [IN], utxo, {bob_hash})
    # A required signer in the body (field 14) must sign too, not just the input's owner.
    with pytest.raises(ledger.LedgerRuleError, match=f"MissingVKeyWitnessesUTXOW: .*{bob_hash.hex()}"):
        ledger.check_required_signers(_bare({14: [bob_hash]}), [IN], utxo, {alice_hash})
    # A script-locked input needs its script, not a vkey witness: this rule leaves it alone.
    script = pycardano.Address(pycardano.ScriptHash(b"\x07" * 28), network=NET)
    locked = {IN: pycardano.TransactionOutput(script, 10_000_000)}
    ledger.check_required_signers(tx, [IN], locked, set())


def test_rule_metadata_hash(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    pay = [(bob.address(), 2_000_000), (alice.address(), 8_000_000)]
    aux = pycardano.AuxiliaryData(pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: "a"})))
    ledger.check_metadata_hash(_decoded(make_tx(alice, [IN], pay)))
    ledger.check_metadata_hash(_decoded(make_tx(alice, [IN], pay, aux=aux)))
    no_aux = make_tx(alice, [IN], pay, aux_hash=aux.hash())
    with pytest.raises(ledger.LedgerRuleError, match="MissingTxMetadata"):
        ledger.check_metadata_hash(_decoded(no_aux))
    tx = _decoded(make_tx(alice, [IN], pay, aux=aux))
    no_hash = dataclasses.replace(tx, body={k: v for k, v in tx.body.items() if k != 7})
    with pytest.raises(ledger.LedgerRuleError, match="MissingTxBodyMetadataHash"):
        ledger.check_metadata_hash(no_hash)


def test_rule_body_network_id() -> None:
    ledger.check_body_network_id(_bare({}), NET)
    ledger.check_body_network_id(_bare({15: NET.value}), NET)
    with pytest.raises(
        ledger.LedgerRuleError, match="WrongNetworkInTxBody: body network id 1, head is TESTNET"
    ):
        ledger.check_body_network_id(_bare({15: 1}), NET)


def test_rule_output_networks(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    ledger.check_output_networks(ledger.decode_outputs(_decoded(_pay(alice, bob))), NET)
    env = make_tx(alice, [IN], [(alice.address(), 8_000_000), (bob.address("mainnet"), 2_000_000)])
    with pytest.raises(ledger.LedgerRuleError, match="WrongNetwork: output 1 address is not a TESTNET"):
        ledger.check_output_networks(ledger.decode_outputs(_decoded(env)), NET)


def test_rule_min_ada(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    outputs = ledger.decode_outputs(_decoded(_pay(alice, bob)))
    need = (ledger.MIN_UTXO_OVERHEAD + outputs[0].size) * PARAMS.utxo_cost_per_byte
    at_min = make_tx(alice, [IN], [(bob.address(), need), (alice.address(), 10_000_000 - need)])
    ledger.check_min_ada(ledger.decode_outputs(_decoded(at_min)), PARAMS)
    below = make_tx(alice, [IN], [(bob.address(), need - 1), (alice.address(), 10_000_001 - need)])
    with pytest.raises(ledger.LedgerRuleError, match=f"BabbageOutputTooSmallUTxO: output 0 holds {need - 1}"):
        ledger.check_min_ada(ledger.decode_outputs(_decoded(below)), PARAMS)


def test_rule_output_size(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    outputs = ledger.decode_outputs(_decoded(_pay(alice, bob)))
    biggest = max(o.size for o in outputs)
    ledger.check_output_size(outputs, ledger.LedgerParams(max_value_size=biggest - ledger.MIN_UTXO_OVERHEAD))
    with pytest.raises(ledger.LedgerRuleError, match="OutputTooBigUTxO"):
        ledger.check_output_size(
            outputs, ledger.LedgerParams(max_value_size=biggest - ledger.MIN_UTXO_OVERHEAD - 1)
        )


def test_rule_fee(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    tx = _decoded(_pay(alice, bob))
    params = ledger.LedgerParams(tx_fee_fixed=100, tx_fee_per_byte=2)
    need = 100 + 2 * len(tx.raw)
    ledger.check_fee(tx, need, params)
    with pytest.raises(
        ledger.LedgerRuleError, match=f"FeeTooSmallUTxO: fee {need - 1} lovelace, minimum {need}"
    ):
        ledger.check_fee(tx, need - 1, params)
    with pytest.raises(ledger.LedgerRuleError, match="DecoderFailure: fee is missing"):
        ledger.decode_fee(_bare({}))


def test_rule_value_preserved(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    utxo = _utxo(alice)
    outputs = ledger.decode_outputs(_decoded(_pay(alice, bob)))  # 2 + 8 ADA out of 10
    ledger.check_value_preserved([IN], utxo, outputs, 0)
    with pytest.raises(
        ledger.LedgerRuleError, match="ValueNotConservedUTxO: consumed 10000000 lovelace, produced 10000001"
    ):
        ledger.check_value_preserved([IN], utxo, outputs, 1)
    token = dataclasses.replace(outputs[0], assets={(b"\x01" * 28, b"tok"): 1})
    with pytest.raises(ledger.LedgerRuleError, match="native assets differ"):
        ledger.check_value_preserved([IN], utxo, [token, outputs[1]], 0)


def test_rules_run_in_a_fixed_order(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    # Unknown input, forged signature and an unbalanced value at once: the input rule comes first.
    env = make_tx(
        alice, ["33" * 32 + "#0"], [(bob.address(), 99_000_000)], signing_key=bob.payment_signing_key
    )
    with pytest.raises(ledger.LedgerRuleError, match="BadInputsUTxO"):
        _check(env, _utxo(alice))
    # Forged signature and unbalanced value: witnesses before the balance.
    env = make_tx(alice, [IN], [(bob.address(), 99_000_000)], signing_key=bob.payment_signing_key)
    with pytest.raises(ledger.LedgerRuleError, match="InvalidWitnessesUTXOW"):
        _check(env, _utxo(alice))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("duplicate_input", "BadInputsUTxO: input .* is spent twice"),
        ("no_inputs", "InputSetEmptyUTxO"),
        ("too_big", "MaxTxSizeUTxO"),
        ("value_too_big", "OutputTooBigUTxO"),
    ],
)
def test_validate_tx_applies_the_other_rules(
    case: str, reason: str, alice: keys.PartyKeys, bob: keys.PartyKeys
) -> None:
    # Prepare
    utxo, params = _utxo(alice), PARAMS
    pay = [(bob.address(), 2_000_000), (alice.address(), 8_000_000)]
    if case == "duplicate_input":
        env = make_tx(alice, [IN, IN], pay)
    elif case == "no_inputs":
        env = make_tx(alice, [], pay)
    elif case == "too_big":
        env = make_tx(alice, [IN], pay)
        params = dataclasses.replace(PARAMS, max_tx_size=len(env["cborHex"]) // 2 - 1)
    else:
        env = make_tx(alice, [IN], pay)
        # The rule allows maxValueSize + 160 bytes per output; -160 leaves room for none.
        params = dataclasses.replace(PARAMS, max_value_size=-ledger.MIN_UTXO_OVERHEAD)

    # Execute / Assert
    with pytest.raises(ledger.LedgerRuleError, match=reason):
        ledger.validate_tx(env["cborHex"], utxo, params, NET, env["txId"])


def test_rule_metadata_limits(alice: keys.PartyKeys, bob: keys.PartyKeys) -> None:
    # pycardano refuses to build such metadata, so the tx is raw CBOR: a peer need not use it.
    def tx(meta: object) -> ledger.DecodedTx:
        aux = cbor2.dumps(cbor2.CBORTag(259, {0: {1991: meta}}))
        return dataclasses.replace(_bare({}), aux_bytes=aux)

    ledger.check_metadata_limits(_decoded(_pay(alice, bob)))
    ledger.check_metadata_limits(tx({"uri": ["x" * 64, "y" * 10], "sha": b"\x01" * 64}))
    for bad in ({"uri": "x" * 65}, {"b": [b"\x01" * 65]}, {"k" * 65: 1}):
        with pytest.raises(
            ledger.LedgerRuleError, match="InvalidMetadata: label 1991 holds a text or bytes longer"
        ):
            ledger.check_metadata_limits(tx(bad))
