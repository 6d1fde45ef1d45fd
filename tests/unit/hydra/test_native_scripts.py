"""Native scripts in the devnet ledger: evalTimelock, validity intervals, script witnesses, mint."""

from __future__ import annotations

from collections.abc import Sequence

import cbor2
import pycardano
import pytest

from hydrafed.hydra import keys, ledger, native_script
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS

pytestmark = pytest.mark.unit

PARAMS = ledger.LedgerParams.from_json(DEFAULT_PROTOCOL_PARAMETERS)
NET = pycardano.Network.TESTNET
IN = "22" * 32 + "#1"
FEE_IN = "44" * 32 + "#0"


@pytest.fixture(scope="module")
def trio() -> tuple[keys.PartyKeys, keys.PartyKeys, keys.PartyKeys]:
    return keys.generate_party_keys("a"), keys.generate_party_keys("b"), keys.generate_party_keys("c")


def _kh(k: keys.PartyKeys) -> bytes:
    return bytes(k.payment_verification_key.hash().payload)


def _pk(k: keys.PartyKeys) -> pycardano.ScriptPubkey:
    return pycardano.ScriptPubkey(k.payment_verification_key.hash())


# -- evalTimelock, one constructor at a time --------------------------------------------------


def test_pubkey_needs_a_verified_signer(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, _ = trio
    assert native_script.evaluate(_pk(a), {_kh(a)}, None, None)
    assert not native_script.evaluate(_pk(a), {_kh(b)}, None, None)


def test_all_any_and_empty_lists(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, _ = trio
    both = pycardano.ScriptAll([_pk(a), _pk(b)])
    either = pycardano.ScriptAny([_pk(a), _pk(b)])
    assert native_script.evaluate(both, {_kh(a), _kh(b)}, None, None)
    assert not native_script.evaluate(both, {_kh(a)}, None, None)
    assert native_script.evaluate(either, {_kh(b)}, None, None)
    assert not native_script.evaluate(either, set(), None, None)
    # As in the ledger: all [] holds, any [] does not.
    assert native_script.evaluate(pycardano.ScriptAll([]), set(), None, None)
    assert not native_script.evaluate(pycardano.ScriptAny([]), set(), None, None)


def test_n_of_k(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, c = trio
    two_of_three = pycardano.ScriptNofK(2, [_pk(a), _pk(b), _pk(c)])
    assert native_script.evaluate(two_of_three, {_kh(a), _kh(c)}, None, None)
    assert not native_script.evaluate(two_of_three, {_kh(b)}, None, None)
    assert not native_script.evaluate(
        pycardano.ScriptNofK(4, [_pk(a), _pk(b), _pk(c)]), {_kh(a), _kh(b), _kh(c)}, None, None
    )
    # n <= 0 holds whatever the signers, as cardano-ledger's evalTimelock does.
    assert native_script.evaluate(pycardano.ScriptNofK(0, [_pk(a)]), set(), None, None)
    assert native_script.evaluate(pycardano.ScriptNofK(-1, [_pk(a)]), set(), None, None)


@pytest.mark.parametrize(
    ("lo", "hi", "before_100", "hereafter_100"),
    [
        (None, None, False, False),  # unbounded: no time lock can hold
        (100, None, True, False),
        (99, None, False, False),
        (None, 100, False, True),  # ttl 100: the tx is invalid from slot 100 on
        (None, 101, False, False),
        (100, 100, True, True),
    ],
)
def test_time_locks_read_the_tx_interval(
    lo: int | None, hi: int | None, before_100: bool, hereafter_100: bool
) -> None:
    assert native_script.evaluate(pycardano.InvalidBefore(100), set(), lo, hi) is before_100
    assert native_script.evaluate(pycardano.InvalidHereAfter(100), set(), lo, hi) is hereafter_100


def test_decoding_and_hashing_follow_the_bytes_sent(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, _ = trio
    script = pycardano.ScriptAny(
        [pycardano.ScriptNofK(1, [_pk(b)]), pycardano.ScriptAll([_pk(a), pycardano.InvalidBefore(7)])]
    )
    ws = pycardano.TransactionWitnessSet(native_scripts=[script]).to_cbor()
    ((h, decoded),) = native_script.witness_scripts(ws).items()
    assert h == bytes(script.hash().payload)
    assert decoded.to_cbor() == script.to_cbor()
    # The same script as an indefinite-length array has other bytes, hence another hash.
    indefinite = b"\xa1\x01\x9f" + script.to_cbor() + b"\xff"
    assert list(native_script.witness_scripts(indefinite)) == [h]
    raw = cbor2.dumps([0, _kh(a)])
    alt = b"\x9f\x00\x58\x1c" + _kh(a) + b"\xff"  # [0, keyhash], indefinite
    spans = native_script.witness_script_spans(b"\xa1\x01\x82" + raw + alt)
    assert spans == [raw, alt]
    assert native_script.script_hash(alt) != native_script.script_hash(raw)
    for bad in ([9, 1], [0, b"short"], [3, 1], [4, -1], "x"):
        with pytest.raises(native_script.ScriptDecodeError):
            native_script.from_primitive(bad)


# -- The ledger rules, on txs built with pycardano ---------------------------------------------


def _escrow(
    owner: keys.PartyKeys, others: Sequence[keys.PartyKeys], m: int, refund: int
) -> pycardano.ScriptAny:
    return pycardano.ScriptAny(
        [
            pycardano.ScriptNofK(m, [_pk(o) for o in others]),
            pycardano.ScriptAll([_pk(owner), pycardano.InvalidBefore(refund)]),
        ]
    )


def _script_addr(script: pycardano.NativeScript) -> pycardano.Address:
    return pycardano.Address(payment_part=script.hash(), network=NET)


def _tx(
    inputs: Sequence[str],
    outputs: Sequence[tuple[pycardano.Address, int | pycardano.Value]],
    signers: Sequence[keys.PartyKeys],
    scripts: Sequence[pycardano.NativeScript] = (),
    *,
    lo: int | None = None,
    hi: int | None = None,
    mint: dict[bytes, dict[bytes, int]] | None = None,
) -> str:
    body = pycardano.TransactionBody(
        inputs=[
            pycardano.TransactionInput.from_primitive([bytes.fromhex(k[:64]), int(k[65:])]) for k in inputs
        ],
        outputs=[pycardano.TransactionOutput(a, v) for a, v in outputs],
        fee=0,
        validity_start=lo,
        ttl=hi,
        mint=pycardano.MultiAsset.from_primitive(mint) if mint else None,
    )
    witnesses = [
        pycardano.VerificationKeyWitness(s.payment_verification_key, s.payment_signing_key.sign(body.hash()))
        for s in signers
    ]
    ws = pycardano.TransactionWitnessSet(
        vkey_witnesses=witnesses or None, native_scripts=list(scripts) or None
    )
    return pycardano.Transaction(body, ws).to_cbor_hex()


def _validate(
    cbor_hex: str, utxo: dict[str, pycardano.TransactionOutput], slot: int = 0
) -> ledger.ValidatedTx:
    return ledger.validate_tx(cbor_hex, utxo, PARAMS, NET, current_slot=slot)


def test_rule_validity_interval() -> None:
    ledger.check_validity_interval((None, None), 5)
    ledger.check_validity_interval((5, 6), 5)
    with pytest.raises(
        ledger.LedgerRuleError,
        match=r"OutsideValidityIntervalUTxO: validity interval \[6, None\), current slot 5",
    ):
        ledger.check_validity_interval((6, None), 5)
    with pytest.raises(ledger.LedgerRuleError, match="OutsideValidityIntervalUTxO"):
        ledger.check_validity_interval((None, 5), 5)


def test_a_timed_payment_is_checked_against_the_current_slot(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, _ = trio
    utxo = {IN: pycardano.TransactionOutput(a.address(), 10_000_000)}
    tx = _tx([IN], [(b.address(), 10_000_000)], [a], lo=100, hi=200)
    for slot in (99, 200):
        with pytest.raises(ledger.LedgerRuleError, match="OutsideValidityIntervalUTxO"):
            _validate(tx, utxo, slot)
    assert _validate(tx, utxo, 150).spent == (IN,)


def test_escrow_spend_by_m_of_the_others(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, c = trio
    script = _escrow(a, [b, c], 2, refund=1000)
    utxo = {IN: pycardano.TransactionOutput(_script_addr(script), 10_000_000)}
    pay = [(b.address(), 5_000_000), (c.address(), 5_000_000)]
    assert _validate(_tx([IN], pay, [b, c], [script]), utxo).spent == (IN,)
    with pytest.raises(
        ledger.LedgerRuleError,
        match=f"ScriptWitnessNotValidatingUTXOW: native script.*{script.hash().payload.hex()}",
    ):
        _validate(_tx([IN], pay, [b], [script]), utxo)
    # The owner alone cannot take it back before the refund slot, nor with an interval that
    # starts before it, even when the clock has passed it.
    back = [(a.address(), 10_000_000)]
    with pytest.raises(ledger.LedgerRuleError, match="ScriptWitnessNotValidatingUTXOW"):
        _validate(_tx([IN], back, [a], [script]), utxo, slot=2000)
    with pytest.raises(ledger.LedgerRuleError, match="ScriptWitnessNotValidatingUTXOW"):
        _validate(_tx([IN], back, [a], [script], lo=999), utxo, slot=2000)
    with pytest.raises(ledger.LedgerRuleError, match="OutsideValidityIntervalUTxO"):
        _validate(_tx([IN], back, [a], [script], lo=1000), utxo, slot=999)
    assert _validate(_tx([IN], back, [a], [script], lo=1000), utxo, slot=1000).spent == (IN,)


def test_script_witnesses_must_be_exactly_the_needed_ones(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, c = trio
    script = _escrow(a, [b, c], 1, refund=1000)
    other = _escrow(b, [a, c], 1, refund=1000)
    utxo = {IN: pycardano.TransactionOutput(_script_addr(script), 10_000_000)}
    pay = [(b.address(), 10_000_000)]
    with pytest.raises(
        ledger.LedgerRuleError, match=f"MissingScriptWitnessesUTXOW: .*{script.hash().payload.hex()}"
    ):
        _validate(_tx([IN], pay, [b]), utxo)
    with pytest.raises(
        ledger.LedgerRuleError, match=f"MissingScriptWitnessesUTXOW: .*{script.hash().payload.hex()}"
    ):
        _validate(_tx([IN], pay, [b], [other]), utxo)
    with pytest.raises(
        ledger.LedgerRuleError, match=f"ExtraneousScriptWitnessesUTXOW: .*{other.hash().payload.hex()}"
    ):
        _validate(_tx([IN], pay, [b], [script, other]), utxo)
    # A key-locked payment carrying a script nobody needs is refused too.
    plain = {IN: pycardano.TransactionOutput(a.address(), 10_000_000)}
    with pytest.raises(ledger.LedgerRuleError, match="ExtraneousScriptWitnessesUTXOW"):
        _validate(_tx([IN], pay, [a], [script]), plain)


def test_minting_under_a_native_policy(trio: Sequence[keys.PartyKeys]) -> None:
    a, b, _ = trio
    policy = pycardano.ScriptAll([pycardano.ScriptNofK(2, [_pk(a), _pk(b)]), pycardano.InvalidHereAfter(500)])
    pid = bytes(policy.hash().payload)
    utxo = {IN: pycardano.TransactionOutput(a.address(), 10_000_000)}
    token = pycardano.Value(10_000_000, pycardano.MultiAsset.from_primitive({pid: {b"\x01" * 32: 1}}))
    out = [(a.address(), token)]
    valid = _validate(_tx([IN], out, [a, b], [policy], hi=400, mint={pid: {b"\x01" * 32: 1}}), utxo, slot=10)
    assert valid.minted == {(pid, b"\x01" * 32): 1}
    assert valid.produced[valid.tx_id + "#0"].amount == token
    # No ttl, or a ttl past the policy deadline: the policy does not hold.
    for hi in (None, 501):
        with pytest.raises(ledger.LedgerRuleError, match="ScriptWitnessNotValidatingUTXOW"):
            _validate(_tx([IN], out, [a, b], [policy], hi=hi, mint={pid: {b"\x01" * 32: 1}}), utxo, slot=10)
    with pytest.raises(ledger.LedgerRuleError, match="ScriptWitnessNotValidatingUTXOW"):
        _validate(_tx([IN], out, [a], [policy], hi=400, mint={pid: {b"\x01" * 32: 1}}), utxo, slot=10)
    # Minted tokens must land in an output: value conservation counts the mint.
    with pytest.raises(ledger.LedgerRuleError, match=r"ValueNotConservedUTxO.*native assets differ"):
        _validate(
            _tx([IN], [(a.address(), 10_000_000)], [a, b], [policy], hi=400, mint={pid: {b"x": 1}}),
            utxo,
            slot=10,
        )


def test_rule_decode_mint() -> None:
    pid = b"\x05" * 28

    def bare(mint: object) -> ledger.DecodedTx:
        return ledger.DecodedTx(
            raw=b"", body={9: mint}, witness_set={}, aux_bytes=b"\xf6", body_hash=b"\0" * 32
        )

    assert ledger.decode_mint(bare({pid: {b"t": -3}})) == {(pid, b"t"): -3}
    for bad, why in [
        ({pid: {b"t": 0}}, "non-zero"),
        ({b"\x05": {b"t": 1}}, "28-byte"),
        ({pid: {}}, "names no asset"),
        ({pid: {b"n" * 33: 1}}, "over 32 bytes"),
    ]:
        with pytest.raises(ledger.LedgerRuleError, match=f"DecoderFailure: .*{why}"):
            ledger.decode_mint(bare(bad))


def test_plutus_witnesses_are_refused() -> None:
    tx = ledger.DecodedTx(
        raw=b"", body={}, witness_set={5: [[0, 0, 0, [1, 1]]]}, aux_bytes=b"\xf6", body_hash=b"\0" * 32
    )
    with pytest.raises(ledger.LedgerRuleError, match="UnsupportedTxField: redeemers"):
        ledger.check_supported_witnesses(tx)
