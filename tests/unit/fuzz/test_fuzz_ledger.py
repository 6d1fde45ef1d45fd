"""The ledger rules: any transaction, however malformed, is valid or a LedgerRuleError; never a crash.

Bodies are a real payment (one input of the UTxO, two outputs, signed) with fields replaced,
added or removed at random, every field holding any CBOR type; and raw bytes. Run against the
same rules the devnet applies to every NewTx.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2
import pycardano
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hydrafed.hydra import keys, ledger
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS
from tests.unit.fuzz.strategies import PROFILE, cbor_values, mutated

pytestmark = pytest.mark.unit

PARAMS = ledger.LedgerParams.from_json(DEFAULT_PROTOCOL_PARAMETERS)
ALICE, BOB = keys.generate_party_keys("alice"), keys.generate_party_keys("bob")
TX_IN = b"\x11" * 32
UTXO = {f"{TX_IN.hex()}#0": pycardano.TransactionOutput(ALICE.address(), 10_000_000)}
ALICE_RAW, BOB_RAW = bytes(ALICE.address().to_primitive()), bytes(BOB.address().to_primitive())


def _tx(body: dict[Any, Any], witnesses: Any = None, aux: Any = None, sign: bool = True) -> str:
    body_cbor = cbor2.dumps(body)
    ws = dict(witnesses) if isinstance(witnesses, dict) else {}
    if sign:
        digest = hashlib.blake2b(body_cbor, digest_size=32).digest()
        ws[0] = [[bytes(ALICE.payment_verification_key.payload), ALICE.payment_signing_key.sign(digest)]]
    parts = [body_cbor, cbor2.dumps(ws if witnesses is None or isinstance(witnesses, dict) else witnesses)]
    return (b"\x84" + b"".join(parts) + b"\xf5" + cbor2.dumps(aux)).hex()


def _payment() -> dict[Any, Any]:
    return {0: [[TX_IN, 0]], 1: [[BOB_RAW, 2_000_000], [ALICE_RAW, 8_000_000]], 2: 0}


def _validate(cbor_hex: str) -> None:
    try:
        valid = ledger.validate_tx(cbor_hex, UTXO, PARAMS, pycardano.Network.TESTNET)
    except ledger.LedgerRuleError as exc:
        assert len(str(exc)) < 4096  # reasons stay small whatever the tx declares
        return
    assert set(valid.spent) <= set(UTXO)


def test_the_unmutated_payment_is_valid() -> None:
    ledger.validate_tx(_tx(_payment()), UTXO, PARAMS, pycardano.Network.TESTNET)


@PROFILE
@given(
    st.dictionaries(st.integers(0, 24), cbor_values(20), max_size=4),
    st.lists(st.integers(0, 24), max_size=3),
    st.booleans(),
)
def test_payment_with_fields_replaced_by_any_type(
    replaced: dict[int, Any], removed: list[int], sign: bool
) -> None:
    body = _payment()
    for field in removed:
        body.pop(field, None)
    body.update(replaced)
    _validate(_tx(body, sign=sign))


@pytest.mark.parametrize(
    "address",
    [b"\x00", b"\x60" + bytes(27), b"\x60" + bytes(29), b"\x00" + bytes(55), b"\x40" + bytes(29), bytes(58)],
    ids=["header-only", "enterprise-short", "enterprise-long", "base-short", "pointer-short", "base-long"],
)
def test_an_output_address_of_the_wrong_size_is_a_decoder_failure(address: bytes) -> None:
    body = _payment()
    body[1][0][0] = address

    with pytest.raises(ledger.LedgerRuleError, match="DecoderFailure: output 0 address"):
        ledger.validate_tx(_tx(body), UTXO, PARAMS, pycardano.Network.TESTNET)


@PROFILE
@given(st.integers(0, 1), st.integers(0, 1), cbor_values(12))
@example(0, 0, b"\x00")  # a header byte alone: pycardano asserted on the hash's size
def test_payment_with_an_output_part_of_any_type(output: int, part: int, value: Any) -> None:
    body = _payment()
    body[1][output][part] = value
    _validate(_tx(body))


@PROFILE
@given(cbor_values(20), cbor_values(20))
def test_any_witness_set_and_auxiliary_data(witnesses: Any, aux: Any) -> None:
    _validate(_tx(_payment(), witnesses=witnesses, aux=aux, sign=isinstance(witnesses, dict)))


@PROFILE
@given(mutated(bytes.fromhex(_tx(_payment()))))
def test_mutated_bytes_of_a_valid_payment(data: bytes) -> None:
    _validate(data.hex())


@PROFILE
@given(st.text(max_size=200))
def test_any_cbor_hex_text(text: str) -> None:
    _validate(text)
