"""The ledger rules the devnet applies to every NewTx, through pycardano.

These are the Conway rules that matter for payment transactions in a head: inputs exist and
are unspent, every required vkey witness is present and valid over the body hash, value is
conserved, the fee covers the minimum, each output holds min-ADA, the auxiliary-data hash
matches, the network id is right and the tx fits ``maxTxSize``. Reasons mimic the names of
cardano-ledger's predicate failures so logs read like hydra-node's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor
from hydrafed.hydra import utxo as utxo_mod

#: Bytes the ledger adds to an output's size for the min-ADA rule (Babbage/Conway).
MIN_UTXO_OVERHEAD = 160


class LedgerRuleError(errors.HeadError):
    """A transaction broke a ledger rule; ``str(exc)`` is the TxInvalid reason."""


@dataclasses.dataclass(frozen=True)
class LedgerParams:
    """The protocol parameters the rules read (cardano-cli JSON keys)."""

    tx_fee_fixed: int = 0
    tx_fee_per_byte: int = 0
    utxo_cost_per_byte: int = 4310
    max_tx_size: int = 16384
    max_value_size: int = 5000

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerParams:
        """Read ``GET /protocol-parameters`` output; missing keys keep the head defaults."""
        try:
            return cls(
                tx_fee_fixed=int(data.get("txFeeFixed", 0)),
                tx_fee_per_byte=int(data.get("txFeePerByte", 0)),
                utxo_cost_per_byte=int(data.get("utxoCostPerByte", 4310)),
                max_tx_size=int(data.get("maxTxSize", 16384)),
                max_value_size=int(data.get("maxValueSize", 5000)),
            )
        except (TypeError, ValueError) as exc:
            raise errors.ConfigError(
                f"protocol parameters: a fee or size field is not an integer: {exc}"
            ) from exc


def min_fee(tx_size: int, params: LedgerParams) -> int:
    """Linear fee: ``txFeeFixed + txFeePerByte * size``."""
    return params.tx_fee_fixed + params.tx_fee_per_byte * tx_size


def min_lovelace(output: pycardano.TransactionOutput, params: LedgerParams) -> int:
    """Min-ADA of an output: ``(160 + size of its CBOR) * utxoCostPerByte``."""
    return (MIN_UTXO_OVERHEAD + len(output.to_cbor())) * params.utxo_cost_per_byte


@dataclasses.dataclass(frozen=True)
class ValidatedTx:
    """A tx that passed every rule: what it spends and what it creates."""

    tx_id: str
    cbor_hex: str
    spent: tuple[str, ...]
    produced: dict[str, pycardano.TransactionOutput]

    def envelope(self) -> dict[str, str]:
        """The text envelope the node emits for this tx."""
        return {"type": "Tx ConwayEra", "description": "", "cborHex": self.cbor_hex, "txId": self.tx_id}


def _value_key(amount: pycardano.Value | int) -> tuple[int, frozenset[tuple[bytes, bytes, int]]]:
    """Comparable form of an amount, ignoring zero quantities."""
    if isinstance(amount, int):
        return amount, frozenset()
    assets = frozenset(
        (bytes(policy.payload), bytes(name.payload), q)
        for policy, named in amount.multi_asset.items()
        for name, q in named.items()
        if q != 0
    )
    return amount.coin, assets


def _sum(amounts: list[pycardano.Value | int]) -> pycardano.Value:
    total = pycardano.Value(0)
    for amount in amounts:
        total = total + (pycardano.Value(amount) if isinstance(amount, int) else amount)
    return total


def validate_tx(
    cbor_hex: str,
    utxo: Mapping[str, pycardano.TransactionOutput],
    params: LedgerParams,
    network: pycardano.Network,
    claimed_tx_id: str | None = None,
) -> ValidatedTx:
    """Check one transaction against the UTxO; raise :class:`LedgerRuleError` with the reason."""
    try:
        raw = bytes.fromhex(cbor_hex)
    except ValueError as exc:
        raise LedgerRuleError("DecoderFailure: cborHex is not hex") from exc
    try:
        spans = cbor.tx_item_spans(raw)
        tx = pycardano.Transaction.from_cbor(raw)
    except (errors.HeadError, pycardano.DecodingException, pycardano.DeserializeException, ValueError) as exc:
        raise LedgerRuleError(f"DecoderFailure: {exc}") from exc
    body = tx.transaction_body
    body_hash = _blake2b256(spans[0])
    tx_id = body_hash.hex()
    if claimed_tx_id is not None and claimed_tx_id != tx_id:
        raise LedgerRuleError(f"TxIdMismatch: envelope txId {claimed_tx_id} but the body hashes to {tx_id}")

    if len(raw) > params.max_tx_size:
        raise LedgerRuleError(f"MaxTxSizeUTxO: tx is {len(raw)} bytes, limit {params.max_tx_size}")

    # Inputs exist, are unspent and are not repeated.
    spent: list[str] = []
    for txin in body.inputs:
        key = utxo_mod.txin_key(bytes(txin.transaction_id.payload).hex(), txin.index)
        if key in spent:
            raise LedgerRuleError(f"BadInputsUTxO: input {key} is spent twice")
        if key not in utxo:
            raise LedgerRuleError(f"BadInputsUTxO: input {key} is not in the UTxO (unknown or already spent)")
        spent.append(key)
    if not spent:
        raise LedgerRuleError("InputSetEmptyUTxO: a transaction must spend at least one input")
    for field in ("mint", "certificates", "withdraws", "collateral", "reference_inputs"):
        if getattr(body, field, None):
            raise LedgerRuleError(f"UnsupportedTxField: {field} is not supported by the devnet ledger")

    # Witnesses: every signature valid over the body hash; every required key present.
    witnesses = tx.transaction_witness_set.vkey_witnesses or []
    signed_by: set[bytes] = set()
    for witness in witnesses:
        vk_bytes = bytes(witness.vkey.payload)
        try:
            nacl.signing.VerifyKey(vk_bytes).verify(body_hash, bytes(witness.signature))
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise LedgerRuleError(
                f"InvalidWitnessesUTXOW: the signature of vkey {vk_bytes.hex()} "
                "does not verify over the body hash"
            ) from exc
        signed_by.add(bytes(witness.vkey.hash().payload))
    required: set[bytes] = set()
    for key in spent:
        payment = utxo[key].address.payment_part
        if not isinstance(payment, pycardano.VerificationKeyHash):
            raise LedgerRuleError(f"ScriptWitnessNotValidatingUTXOW: input {key} is locked by a script")
        required.add(bytes(payment.payload))
    for signer in body.required_signers or []:
        required.add(bytes(signer.payload))
    missing = required - signed_by
    if missing:
        raise LedgerRuleError(
            "MissingVKeyWitnessesUTXOW: no valid witness for key hash(es) "
            + ", ".join(sorted(m.hex() for m in missing))
        )

    # Auxiliary data hash matches the bytes sent.
    aux_span = spans[3] if len(spans) == 4 else b"\xf6"
    declared = bytes(body.auxiliary_data_hash.payload).hex() if body.auxiliary_data_hash else None
    if aux_span == b"\xf6":
        if declared is not None:
            raise LedgerRuleError(
                "MissingTxMetadata: the body declares an auxiliary data hash but no metadata is attached"
            )
    else:
        actual = _blake2b256(aux_span).hex()
        if declared is None:
            raise LedgerRuleError(
                f"MissingTxBodyMetadataHash: metadata is attached but the body has no hash ({actual})"
            )
        if declared != actual:
            raise LedgerRuleError(
                f"ConflictingMetadataHash: body declares {declared}, the metadata hashes to {actual}"
            )

    # Network id of the body and of every output.
    if body.network_id is not None and body.network_id != network.value:
        raise LedgerRuleError(
            f"WrongNetworkInTxBody: body network id {body.network_id}, head is {network.name}"
        )
    for ix, out in enumerate(body.outputs):
        if out.address.network != network:
            raise LedgerRuleError(
                f"WrongNetwork: output {ix} address {out.address} is not a {network.name} address"
            )

    # Min-ADA per output, over each output's CBOR size (taken with cbor2: pycardano's encoder
    # type-checks every field and would dominate the cost of validation).
    raw_outputs = cbor2.loads(spans[0]).get(1, [])
    for ix, (out, raw_out) in enumerate(zip(body.outputs, raw_outputs, strict=True)):
        size = len(cbor2.dumps(raw_out))
        need = (MIN_UTXO_OVERHEAD + size) * params.utxo_cost_per_byte
        have = out.amount if isinstance(out.amount, int) else out.amount.coin
        if have < need:
            raise LedgerRuleError(
                f"BabbageOutputTooSmallUTxO: output {ix} holds {have} lovelace, min-ADA is {need}"
            )
        if size > params.max_value_size + MIN_UTXO_OVERHEAD:
            raise LedgerRuleError(f"OutputTooBigUTxO: output {ix} value exceeds maxValueSize")

    # Fee and value conservation.
    fee_needed = min_fee(len(raw), params)
    if body.fee < fee_needed:
        raise LedgerRuleError(f"FeeTooSmallUTxO: fee {body.fee} lovelace, minimum {fee_needed}")
    consumed = _sum([utxo[key].amount for key in spent])
    produced_total = _sum([out.amount for out in body.outputs] + [body.fee])
    if _value_key(consumed) != _value_key(produced_total):
        raise LedgerRuleError(
            f"ValueNotConservedUTxO: consumed {utxo_mod.value_to_json(consumed)}, "
            f"produced {utxo_mod.value_to_json(produced_total)} (outputs + fee)"
        )
    produced = {utxo_mod.txin_key(tx_id, ix): out for ix, out in enumerate(body.outputs)}
    return ValidatedTx(tx_id=tx_id, cbor_hex=cbor_hex, spent=tuple(spent), produced=produced)


def _blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def apply_tx(utxo: dict[str, pycardano.TransactionOutput], tx: ValidatedTx) -> None:
    """Spend the tx's inputs and add its outputs (after :func:`validate_tx`)."""
    for key in tx.spent:
        del utxo[key]
    utxo.update(tx.produced)
