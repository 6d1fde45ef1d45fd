"""The ledger rules the devnet applies to every NewTx, through pycardano.

These are the Conway rules that matter for payments, native-script escrows and native-policy
mints in a head: inputs exist and are unspent, the current slot lies in the validity interval,
every required vkey witness is present and valid over the body hash, exactly the needed native
scripts are provided and each one holds (cardano-ledger's ``evalTimelock``), value is conserved
counting the mint, the fee covers the minimum, each output holds min-ADA, the auxiliary-data
hash matches, the network id is right and the tx fits ``maxTxSize``. Plutus is refused. Reasons
mimic the names of cardano-ledger's predicate failures so logs read like hydra-node's.

As in cardano-ledger's UTXO/UTXOW rules, each rule is its own ``check_*`` function, so each
can be tested alone; :func:`validate_tx` decodes the tx once and runs them in a fixed order.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor, native_script
from hydrafed.hydra import utxo as utxo_mod

# The fee and min-ADA formulas live with the pycardano-free primitives (the worker builds its
# txs with them); the rules' callers keep reading them here.
from hydrafed.hydra.primitives import MIN_UTXO_OVERHEAD as MIN_UTXO_OVERHEAD
from hydrafed.hydra.primitives import LedgerParams as LedgerParams
from hydrafed.hydra.primitives import min_fee as min_fee
from hydrafed.hydra.primitives import min_lovelace_ada_only as min_lovelace_ada_only


class LedgerRuleError(errors.HeadError):
    """A transaction broke a ledger rule; ``str(exc)`` is the TxInvalid reason."""


def min_lovelace(output: pycardano.TransactionOutput, params: LedgerParams) -> int:
    """Min-ADA of an output: ``(160 + size of its CBOR) * utxoCostPerByte``."""
    simple = isinstance(output.amount, int) and output.datum is None and output.datum_hash is None
    if simple and output.script is None and not output.post_alonzo:
        return min_lovelace_ada_only(bytes(output.address.to_primitive()), int(output.amount), params)
    return (MIN_UTXO_OVERHEAD + len(output.to_cbor())) * params.utxo_cost_per_byte


@dataclasses.dataclass(frozen=True)
class ValidatedTx:
    """A tx that passed every rule: what it spends and what it creates."""

    tx_id: str
    cbor_hex: str
    spent: tuple[str, ...]
    produced: dict[str, pycardano.TransactionOutput]
    #: The tx's mint field (negative quantities burn); empty for most txs.
    minted: dict[tuple[bytes, bytes], int] = dataclasses.field(default_factory=dict)

    def envelope(self) -> dict[str, str]:
        """The text envelope the node emits for this tx."""
        return {"type": "Tx ConwayEra", "description": "", "cborHex": self.cbor_hex, "txId": self.tx_id}


AssetKey = tuple[bytes, bytes]


def _add_amount(coin: int, assets: dict[AssetKey, int], amount: pycardano.Value | int) -> int:
    """Add a pycardano amount into (coin, assets); returns the new coin."""
    if isinstance(amount, int):
        return coin + amount
    base: int = amount.coin
    for policy, named in amount.multi_asset.items():
        for name, q in named.items():
            key = (bytes(policy.payload), bytes(name.payload))
            assets[key] = assets.get(key, 0) + q
    return coin + base


def _raw_amount(value: Any, ix: int = 0) -> tuple[int, dict[AssetKey, int]]:
    """A value from the CBOR: ``coin`` or ``[coin, {policy: {name: q}}]``, typed and bounded.

    As Conway's decoder: coin and quantities are positive 64-bit integers, policies 28 bytes,
    names at most 32 bytes; anything else is a ``DecoderFailure`` naming the output.
    """
    if _is_word(value):
        return value, {}
    if not (
        isinstance(value, list) and len(value) == 2 and _is_word(value[0]) and isinstance(value[1], dict)
    ):
        raise LedgerRuleError(
            f"DecoderFailure: output {ix} value is neither a coin nor [coin, multiasset] of 64-bit integers"
        )
    assets: dict[AssetKey, int] = {}
    for policy, named in value[1].items():
        if not (isinstance(policy, bytes) and len(policy) == 28 and isinstance(named, dict)):
            raise LedgerRuleError(
                f"DecoderFailure: output {ix} multiasset is not {{28-byte policy: {{name: q}}}}"
            )
        for name, q in named.items():
            if not (isinstance(name, bytes) and len(name) <= 32 and _is_word(q) and q > 0):
                raise LedgerRuleError(
                    f"DecoderFailure: output {ix} asset of policy {policy.hex()}: name must be at most "
                    "32 bytes and quantity a positive 64-bit integer"
                )
            assets[(policy, name)] = q
    return value[0], assets


def _is_word(value: Any) -> bool:
    """A CBOR unsigned 64-bit integer (``bool`` is an ``int`` to Python, not to CBOR)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _to_amount(coin: int, assets: dict[AssetKey, int]) -> pycardano.Value | int:
    if not assets:
        return coin
    multi: dict[bytes, dict[bytes, int]] = {}
    for (policy, name), q in assets.items():
        multi.setdefault(policy, {})[name] = q
    return pycardano.Value(coin, pycardano.MultiAsset.from_primitive(multi))


def _set_items(value: Any, what: str = "a set field") -> list[Any]:
    """Conway sets are arrays, optionally under tag 258."""
    if isinstance(value, cbor2.CBORTag) and value.tag == 258:
        value = value.value
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise LedgerRuleError(f"DecoderFailure: {what} is not a set (array)")


_SHELLEY_ADDRESS_BYTES = {0: 57, 1: 57, 2: 57, 3: 57, 6: 29, 7: 29}
"""Header type (the high nibble) -> size: a header byte and one or two 28-byte hashes. Types 4
and 5 (pointer addresses) are a hash and a pointer of at least 3 bytes."""


@functools.lru_cache(maxsize=4096)
def _address(raw: bytes) -> pycardano.Address:
    """The Shelley address in ``raw``; ValueError if its size does not fit its header type
    (pycardano checks the sizes with ``assert``, which is not a decoder's refusal)."""
    kind = raw[0] >> 4
    expected = _SHELLEY_ADDRESS_BYTES.get(kind)
    if (expected is not None and len(raw) != expected) or (expected is None and len(raw) < 32):
        raise ValueError(f"{len(raw)} bytes do not make an address of header type {kind}")
    try:
        return pycardano.Address.from_primitive(raw)
    except AssertionError as exc:  # a pointer's or a hash's size, as pycardano checks it
        raise ValueError(str(exc)) from None


#: Body fields a tx in the devnet may not use (certificates, withdrawals, script data,
#: collateral, reference inputs, votes, proposals, donations).
_UNSUPPORTED_FIELDS = {
    4: "certificates", 5: "withdrawals", 11: "script_data_hash", 13: "collateral",
    16: "collateral_return", 17: "total_collateral", 18: "reference_inputs",
    19: "voting_procedures", 20: "proposal_procedures", 22: "donation",
}  # fmt: skip

#: Witness-set fields of Plutus and bootstrap witnesses, which the devnet does not evaluate.
_UNSUPPORTED_WITNESSES = {
    2: "bootstrap witnesses", 3: "Plutus V1 scripts", 4: "datums", 5: "redeemers",
    6: "Plutus V2 scripts", 7: "Plutus V3 scripts",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DecodedTx:
    """A tx read field by field from its CBOR: what the rules look at."""

    raw: bytes
    body: dict[Any, Any]
    witness_set: dict[Any, Any]
    #: The auxiliary data's bytes as sent; ``b"\\xf6"`` (CBOR null) when there is none.
    aux_bytes: bytes
    body_hash: bytes
    #: The witness set's bytes as sent: native scripts are hashed over them.
    witness_raw: bytes = b"\xa0"

    @property
    def tx_id(self) -> str:
        """The tx id is the blake2b-256 hash of the body bytes as sent."""
        return self.body_hash.hex()


@dataclasses.dataclass(frozen=True)
class DecodedOutput:
    """One output of the body, decoded once for the output rules."""

    ix: int
    address: pycardano.Address
    #: The network nibble of the address header (0 testnet, 1 mainnet).
    network_id: int
    coin: int
    assets: dict[AssetKey, int]
    #: Size of the output's CBOR (re-encoded canonically), the min-ADA rule's measure.
    size: int


def decode_tx(cbor_hex: str) -> DecodedTx:
    """Split a tx into body, witness set and auxiliary data (``DecoderFailure`` if it cannot).

    cbor2 rather than pycardano's ``Transaction.from_cbor``: the rules need only a few fields,
    and pycardano's type-checked decoding cost milliseconds per tx.
    """
    try:
        raw = bytes.fromhex(cbor_hex)
    except ValueError as exc:
        raise LedgerRuleError("DecoderFailure: cborHex is not hex") from exc
    try:
        spans = cbor.tx_item_spans(raw)
        body = cbor2.loads(spans[0])
        witness_set = cbor2.loads(spans[1])
    except (errors.HeadError, cbor2.CBORDecodeError, ValueError) as exc:
        raise LedgerRuleError(f"DecoderFailure: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(witness_set, dict):
        raise LedgerRuleError("DecoderFailure: body and witness set must be maps")
    aux_bytes = spans[3] if len(spans) == 4 else b"\xf6"
    return DecodedTx(raw, body, witness_set, aux_bytes, _blake2b256(spans[0]), spans[1])


def decode_inputs(tx: DecodedTx) -> list[str]:
    """The body's inputs as ``txid#ix`` keys, in order (duplicates kept for the rule to see)."""
    keys: list[str] = []
    for txin in _set_items(tx.body.get(0, []), "inputs (body field 0)"):
        if not (
            isinstance(txin, list)
            and len(txin) == 2
            and isinstance(txin[0], bytes)
            and isinstance(txin[1], int)
        ):
            raise LedgerRuleError("DecoderFailure: an input is not [txid, index]")
        keys.append(utxo_mod.txin_key(txin[0].hex(), txin[1]))
    return keys


def decode_outputs(tx: DecodedTx) -> list[DecodedOutput]:
    """The body's outputs; a datum, script or malformed output is ``UnsupportedTxField``."""
    raw_outputs = tx.body.get(1, [])
    if not isinstance(raw_outputs, list):
        raise LedgerRuleError("DecoderFailure: outputs are not an array")
    outputs: list[DecodedOutput] = []
    for ix, raw_out in enumerate(raw_outputs):
        if isinstance(raw_out, dict):
            if any(k in raw_out for k in (2, 3)):
                raise LedgerRuleError(f"UnsupportedTxField: output {ix} carries a datum or a script")
            addr_raw, value = raw_out.get(0), raw_out.get(1)
        elif isinstance(raw_out, list) and len(raw_out) == 2:
            addr_raw, value = raw_out
        else:
            raise LedgerRuleError(f"UnsupportedTxField: output {ix} carries a datum hash or is malformed")
        if not isinstance(addr_raw, bytes) or not addr_raw or addr_raw[0] >> 4 > 7:
            raise LedgerRuleError(f"DecoderFailure: output {ix} address is not a Shelley address")
        try:
            address = _address(addr_raw)
        except (pycardano.DecodingException, ValueError, TypeError) as exc:
            raise LedgerRuleError(f"DecoderFailure: output {ix} address: {exc}") from exc
        coin, assets = _raw_amount(value, ix)
        outputs.append(
            DecodedOutput(ix, address, addr_raw[0] & 0x0F, coin, assets, len(cbor2.dumps(raw_out)))
        )
    return outputs


#: A validity interval: (invalid_before, invalid_hereafter) slots, None where unbounded.
Interval = tuple[int | None, int | None]


def _opt_slot(tx: DecodedTx, field: int, name: str) -> int | None:
    value = tx.body.get(field)
    if value is None:
        return None
    if not _is_word(value):
        raise LedgerRuleError(f"DecoderFailure: {name} is not a slot number")
    slot: int = value
    return slot


def decode_validity_interval(tx: DecodedTx) -> Interval:
    """The body's validity interval: ``validity_start`` (field 8) and ``ttl`` (field 3)."""
    return _opt_slot(tx, 8, "validity_interval_start"), _opt_slot(tx, 3, "ttl")


def decode_mint(tx: DecodedTx) -> dict[AssetKey, int]:
    """The body's mint (field 9): ``{policy: {name: quantity}}``, burns negative.

    Conway's decoder refuses zero quantities and an empty policy map; names are at most 32
    bytes and policy ids are 28-byte script hashes, so no ADA can be minted.
    """
    raw = tx.body.get(9)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LedgerRuleError("DecoderFailure: mint is not a map")
    minted: dict[AssetKey, int] = {}
    for policy, named in raw.items():
        if not isinstance(policy, bytes) or len(policy) != 28:
            raise LedgerRuleError("DecoderFailure: a mint policy id is not a 28-byte script hash")
        if not isinstance(named, dict) or not named:
            raise LedgerRuleError(f"DecoderFailure: mint of policy {policy.hex()} names no asset")
        for name, q in named.items():
            if not isinstance(name, bytes) or len(name) > 32:
                raise LedgerRuleError(
                    f"DecoderFailure: an asset name of policy {policy.hex()} is over 32 bytes"
                )
            if not isinstance(q, int) or isinstance(q, bool) or q == 0 or not -(2**63) <= q < 2**63:
                raise LedgerRuleError(
                    f"DecoderFailure: mint quantity {q!r} of {policy.hex()}.{name.hex()} must be a "
                    "non-zero 64-bit integer"
                )
            minted[(policy, name)] = q
    return minted


def decode_native_scripts(tx: DecodedTx) -> dict[bytes, native_script.NativeScript]:
    """The native scripts of the witness set, keyed by their hash over the bytes as sent."""
    try:
        return native_script.witness_scripts(tx.witness_raw)
    except errors.HeadError as exc:
        raise LedgerRuleError(f"DecoderFailure: {exc}") from exc


def decode_required_signers(tx: DecodedTx) -> list[bytes]:
    """Body field 14: key hashes that must sign, each exactly 28 bytes (never an integer to expand)."""
    signers = _set_items(tx.body.get(14, []), "required signers (body field 14)")
    for i, signer in enumerate(signers):
        if not (isinstance(signer, bytes) and len(signer) == 28):
            raise LedgerRuleError(
                f"DecoderFailure: required signer {i} (body field 14) is not a 28-byte key hash"
            )
    return signers


def decode_fee(tx: DecodedTx) -> int:
    """The body's fee field (``DecoderFailure`` if missing or negative)."""
    fee = tx.body.get(2)
    if not isinstance(fee, int) or fee < 0:
        raise LedgerRuleError("DecoderFailure: fee is missing or negative")
    return fee


# -- The rules, one per predicate failure, in the order validate_tx applies them. --


def check_tx_id(tx: DecodedTx, claimed_tx_id: str | None) -> None:
    """TxIdMismatch: the envelope's ``txId`` must be the hash of the body actually sent."""
    if claimed_tx_id is not None and claimed_tx_id != tx.tx_id:
        raise LedgerRuleError(
            f"TxIdMismatch: envelope txId {claimed_tx_id} but the body hashes to {tx.tx_id}"
        )


def check_max_tx_size(tx: DecodedTx, params: LedgerParams) -> None:
    """MaxTxSizeUTxO: the whole tx (body, witnesses, metadata) fits ``maxTxSize``."""
    if len(tx.raw) > params.max_tx_size:
        raise LedgerRuleError(f"MaxTxSizeUTxO: tx is {len(tx.raw)} bytes, limit {params.max_tx_size}")


def check_supported_fields(tx: DecodedTx) -> None:
    """UnsupportedTxField: the devnet ledger checks payments only, so it refuses the rest."""
    for field, name in _UNSUPPORTED_FIELDS.items():
        if tx.body.get(field):
            raise LedgerRuleError(f"UnsupportedTxField: {name} is not supported by the devnet ledger")


def check_supported_witnesses(tx: DecodedTx) -> None:
    """UnsupportedTxField: the devnet evaluates native scripts only, not Plutus or Byron."""
    for field, name in _UNSUPPORTED_WITNESSES.items():
        if tx.witness_set.get(field):
            raise LedgerRuleError(f"UnsupportedTxField: {name} are not supported by the devnet ledger")


def check_validity_interval(interval: Interval, current_slot: int) -> None:
    """OutsideValidityIntervalUTxO: ``invalid_before <= current slot < invalid_hereafter``."""
    lo, hi = interval
    if (lo is not None and current_slot < lo) or (hi is not None and current_slot >= hi):
        raise LedgerRuleError(
            f"OutsideValidityIntervalUTxO: validity interval [{lo}, {hi}), current slot {current_slot}"
        )


def needed_scripts(
    inputs: list[str], utxo: Mapping[str, pycardano.TransactionOutput], minted: Mapping[AssetKey, int]
) -> set[bytes]:
    """The scripts a tx must run: each script-locked input's credential and each minted policy."""
    needed: set[bytes] = set()
    for key in inputs:
        payment = utxo[key].address.payment_part
        if isinstance(payment, pycardano.ScriptHash):
            needed.add(bytes(payment.payload))
    needed.update(policy for policy, _ in minted)
    return needed


def check_script_witnesses(needed: set[bytes], provided: Mapping[bytes, object]) -> None:
    """MissingScriptWitnessesUTXOW / ExtraneousScriptWitnessesUTXOW: exactly the needed scripts.

    As in Babbage's ``validateMissingScripts``: every needed script is in the witness set (the
    devnet has no reference scripts) and the witness set holds no script nobody needs.
    """
    missing = needed - set(provided)
    if missing:
        raise LedgerRuleError(
            "MissingScriptWitnessesUTXOW: no script witness for "
            + ", ".join(sorted(m.hex() for m in missing))
        )
    extra = set(provided) - needed
    if extra:
        raise LedgerRuleError(
            "ExtraneousScriptWitnessesUTXOW: the witness set holds script(s) no input or policy needs: "
            + ", ".join(sorted(e.hex() for e in extra))
        )


def check_native_scripts(
    scripts: Mapping[bytes, native_script.NativeScript], signed_by: set[bytes], interval: Interval
) -> None:
    """ScriptWitnessNotValidatingUTXOW: every native script in the witness set holds.

    Evaluated against the verified vkey witnesses and the tx's validity interval, as
    cardano-ledger's ``validateFailedNativeScripts`` does.
    """
    lo, hi = interval
    failed = [h for h, script in scripts.items() if not native_script.evaluate(script, signed_by, lo, hi)]
    if failed:
        raise LedgerRuleError(
            "ScriptWitnessNotValidatingUTXOW: native script(s) "
            + ", ".join(sorted(f.hex() for f in failed))
            + " do not hold for the signatures and the validity interval given"
        )


def check_inputs_not_empty(inputs: list[str]) -> None:
    """InputSetEmptyUTxO: a tx spends at least one input (which is what makes its id unique)."""
    if not inputs:
        raise LedgerRuleError("InputSetEmptyUTxO: a transaction must spend at least one input")


def check_no_duplicate_inputs(inputs: list[str]) -> None:
    """BadInputsUTxO: an input listed twice would be counted twice in the value balance."""
    seen: set[str] = set()
    for key in inputs:
        if key in seen:
            raise LedgerRuleError(f"BadInputsUTxO: input {key} is spent twice")
        seen.add(key)


def check_inputs_exist(inputs: list[str], utxo: Mapping[str, pycardano.TransactionOutput]) -> None:
    """BadInputsUTxO: every input is in the UTxO, i.e. exists and is still unspent."""
    for key in inputs:
        if key not in utxo:
            raise LedgerRuleError(f"BadInputsUTxO: input {key} is not in the UTxO (unknown or already spent)")


def check_witness_signatures(tx: DecodedTx) -> set[bytes]:
    """InvalidWitnessesUTXOW: every vkey witness verifies over the body hash.

    Returns the key hashes that signed, for :func:`check_required_signers`.
    """
    signed_by: set[bytes] = set()
    for witness in _set_items(tx.witness_set.get(0, []), "vkey witnesses (witness field 0)"):
        if not (
            isinstance(witness, list) and len(witness) == 2 and all(isinstance(w, bytes) for w in witness)
        ):
            raise LedgerRuleError("DecoderFailure: a vkey witness is not [vkey, signature]")
        vk_bytes, signature = witness
        try:
            nacl.signing.VerifyKey(vk_bytes).verify(tx.body_hash, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
            raise LedgerRuleError(
                f"InvalidWitnessesUTXOW: the signature of vkey {vk_bytes.hex()} "
                "does not verify over the body hash"
            ) from exc
        signed_by.add(hashlib.blake2b(vk_bytes, digest_size=28).digest())
    return signed_by


def check_required_signers(
    tx: DecodedTx,
    inputs: list[str],
    utxo: Mapping[str, pycardano.TransactionOutput],
    signed_by: set[bytes],
) -> None:
    """MissingVKeyWitnessesUTXOW: the owner of every key-locked input and every required signer signed.

    Script-locked inputs need their script instead (:func:`check_script_witnesses`).
    """
    required: set[bytes] = set()
    for key in inputs:
        payment = utxo[key].address.payment_part
        if isinstance(payment, pycardano.VerificationKeyHash):
            required.add(bytes(payment.payload))
    required.update(decode_required_signers(tx))
    missing = required - signed_by
    if missing:
        raise LedgerRuleError(
            "MissingVKeyWitnessesUTXOW: no valid witness for key hash(es) "
            + ", ".join(sorted(m.hex() for m in missing))
        )


def _metadatum_ok(value: Any, depth: int = 0) -> bool:
    """Shelley's ``validMetadatum``: every text and bytes at most 64 bytes, at any depth."""
    if depth > 64:
        return False
    if isinstance(value, str):
        return len(value.encode()) <= 64
    if isinstance(value, bytes):
        return len(value) <= 64
    if isinstance(value, list):
        return all(_metadatum_ok(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_metadatum_ok(k, depth + 1) and _metadatum_ok(v, depth + 1) for k, v in value.items())
    return True


def check_metadata_limits(tx: DecodedTx) -> None:
    """InvalidMetadata: no text or bytes in the metadata is longer than 64 bytes."""
    if tx.aux_bytes == b"\xf6":
        return
    try:
        aux = cbor2.loads(tx.aux_bytes)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise LedgerRuleError(f"DecoderFailure: auxiliary data: {exc}") from exc
    if isinstance(aux, cbor2.CBORTag) and aux.tag == 259 and isinstance(aux.value, dict):
        metadata = aux.value.get(0, {})
    elif isinstance(aux, list) and aux:
        metadata = aux[0]
    else:
        metadata = aux
    if not isinstance(metadata, dict):
        raise LedgerRuleError("DecoderFailure: auxiliary data holds no metadata map")
    for label, value in metadata.items():
        if not _metadatum_ok(value):
            raise LedgerRuleError(
                f"InvalidMetadata: label {label} holds a text or bytes longer than 64 bytes; "
                "split it into a list of chunks"
            )


def check_metadata_hash(tx: DecodedTx) -> None:
    """The body's auxiliary-data hash and the metadata sent agree (both absent, or equal)."""
    declared_raw = tx.body.get(7)
    if declared_raw is not None and not (isinstance(declared_raw, bytes) and len(declared_raw) == 32):
        raise LedgerRuleError("DecoderFailure: the auxiliary data hash (body field 7) is not 32 bytes")
    declared = declared_raw.hex() if isinstance(declared_raw, bytes) else None
    if tx.aux_bytes == b"\xf6":
        if declared is not None:
            raise LedgerRuleError(
                "MissingTxMetadata: the body declares an auxiliary data hash but no metadata is attached"
            )
        return
    actual = _blake2b256(tx.aux_bytes).hex()
    if declared is None:
        raise LedgerRuleError(
            f"MissingTxBodyMetadataHash: metadata is attached but the body has no hash ({actual})"
        )
    if declared != actual:
        raise LedgerRuleError(
            f"ConflictingMetadataHash: body declares {declared}, the metadata hashes to {actual}"
        )


def check_body_network_id(tx: DecodedTx, network: pycardano.Network) -> None:
    """WrongNetworkInTxBody: a body that names a network id names the head's."""
    if tx.body.get(15) is not None and tx.body[15] != network.value:
        raise LedgerRuleError(f"WrongNetworkInTxBody: body network id {tx.body[15]}, head is {network.name}")


def check_output_networks(outputs: list[DecodedOutput], network: pycardano.Network) -> None:
    """WrongNetwork: every output pays an address of the head's network."""
    for out in outputs:
        if out.network_id != network.value:
            raise LedgerRuleError(f"WrongNetwork: output {out.ix} address is not a {network.name} address")


def check_min_ada(outputs: list[DecodedOutput], params: LedgerParams) -> None:
    """BabbageOutputTooSmallUTxO: each output holds ``(160 + its CBOR size) * utxoCostPerByte``."""
    for out in outputs:
        need = (MIN_UTXO_OVERHEAD + out.size) * params.utxo_cost_per_byte
        if out.coin < need:
            raise LedgerRuleError(
                f"BabbageOutputTooSmallUTxO: output {out.ix} holds {out.coin} lovelace, min-ADA is {need}"
            )


def check_output_size(outputs: list[DecodedOutput], params: LedgerParams) -> None:
    """OutputTooBigUTxO: no output's value exceeds ``maxValueSize``."""
    for out in outputs:
        if out.size > params.max_value_size + MIN_UTXO_OVERHEAD:
            raise LedgerRuleError(f"OutputTooBigUTxO: output {out.ix} value exceeds maxValueSize")


def check_fee(tx: DecodedTx, fee: int, params: LedgerParams) -> None:
    """FeeTooSmallUTxO: the fee covers ``txFeeFixed + txFeePerByte * size``."""
    fee_needed = min_fee(len(tx.raw), params)
    if fee < fee_needed:
        raise LedgerRuleError(f"FeeTooSmallUTxO: fee {fee} lovelace, minimum {fee_needed}")


def check_value_preserved(
    inputs: list[str],
    utxo: Mapping[str, pycardano.TransactionOutput],
    outputs: list[DecodedOutput],
    fee: int,
    minted: Mapping[AssetKey, int] | None = None,
) -> None:
    """ValueNotConservedUTxO: consumed + mint = produced + fee, in lovelace and every native asset."""
    in_coin, in_assets = 0, dict[AssetKey, int]()
    for key in inputs:
        in_coin = _add_amount(in_coin, in_assets, utxo[key].amount)
    for k, q in (minted or {}).items():
        in_assets[k] = in_assets.get(k, 0) + q
    out_coin, out_assets = 0, dict[AssetKey, int]()
    for out in outputs:
        out_coin += out.coin
        for k, q in out.assets.items():
            out_assets[k] = out_assets.get(k, 0) + q
    nonzero_in = {k: q for k, q in in_assets.items() if q}
    nonzero_out = {k: q for k, q in out_assets.items() if q}
    if in_coin != out_coin + fee or nonzero_in != nonzero_out:
        raise LedgerRuleError(
            f"ValueNotConservedUTxO: consumed {in_coin} lovelace, produced {out_coin + fee} (outputs + fee)"
            + ("" if nonzero_in == nonzero_out else "; native assets differ")
        )


def validate_tx(
    cbor_hex: str,
    utxo: Mapping[str, pycardano.TransactionOutput],
    params: LedgerParams,
    network: pycardano.Network,
    claimed_tx_id: str | None = None,
    *,
    current_slot: int = 0,
) -> ValidatedTx:
    """Check one transaction against the UTxO; raise :class:`LedgerRuleError` with the reason.

    ``current_slot`` is the ledger's "now" (the head's: the slot of the last L1 block its
    nodes saw), against which the validity interval is checked.

    The rules run in a fixed order, so a tx that breaks several always reports the same one:
    envelope (id, size, fields), inputs, validity interval, witnesses, scripts, metadata,
    network, outputs, fee, balance.
    """
    tx = decode_tx(cbor_hex)
    check_tx_id(tx, claimed_tx_id)
    check_max_tx_size(tx, params)
    check_supported_fields(tx)
    check_supported_witnesses(tx)
    inputs = decode_inputs(tx)
    check_no_duplicate_inputs(inputs)
    check_inputs_exist(inputs, utxo)
    check_inputs_not_empty(inputs)
    interval = decode_validity_interval(tx)
    check_validity_interval(interval, current_slot)
    minted = decode_mint(tx)
    signed_by = check_witness_signatures(tx)
    scripts = decode_native_scripts(tx)
    check_script_witnesses(needed_scripts(inputs, utxo, minted), scripts)
    check_native_scripts(scripts, signed_by, interval)
    check_required_signers(tx, inputs, utxo, signed_by)
    check_metadata_hash(tx)
    check_metadata_limits(tx)
    check_body_network_id(tx, network)
    outputs = decode_outputs(tx)
    check_output_networks(outputs, network)
    check_min_ada(outputs, params)
    check_output_size(outputs, params)
    fee = decode_fee(tx)
    check_fee(tx, fee, params)
    check_value_preserved(inputs, utxo, outputs, fee, minted)
    produced = {
        utxo_mod.txin_key(tx.tx_id, out.ix): pycardano.TransactionOutput(
            out.address, _to_amount(out.coin, out.assets)
        )
        for out in outputs
    }
    return ValidatedTx(
        tx_id=tx.tx_id, cbor_hex=cbor_hex, spent=tuple(inputs), produced=produced, minted=minted
    )


def _blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def apply_tx(utxo: dict[str, pycardano.TransactionOutput], tx: ValidatedTx) -> None:
    """Spend the tx's inputs and add its outputs (after :func:`validate_tx`)."""
    for key in tx.spent:
        del utxo[key]
    utxo.update(tx.produced)
