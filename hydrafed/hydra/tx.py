"""Round announcements: the one Hydra transaction a party sends per round, and its decoding.

An announcement spends the party's UTxO in the head, pays ``lovelace_per_peer`` to each peer
(so every peer sees the tx touch its address), returns the change, and carries metadata under
one label: ``{fed, round, party, uri, sha256, samples, metrics, specHash, startSha256}``.
Cardano metadata strings are limited to 64 bytes, so longer strings become lists of chunks;
metadata has no floats, so metric values travel as decimal strings.

``startSha256`` names the global weights the party's round started from (the previous round's
aggregate, or the initial model in round 1): with it the ledger itself closes the chain of
rounds, so an outsider can re-derive every round and check it (``hydrafed audit``). A tx
without it (written before the field existed) decodes with ``start_sha256 == ""``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cbor2

from hydrafed import errors
from hydrafed.hydra import cbor, primitives
from hydrafed.hydra import keys as keys_mod

if TYPE_CHECKING:  # the L1 code passes pycardano addresses and outputs; the worker never imports it
    import pycardano

log = logging.getLogger(__name__)

DEFAULT_LABEL = 1990
MAX_META_STR = 64
#: At most this many of the party's outputs are consolidated into one announcement.
MAX_INPUTS = 40


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@dataclasses.dataclass(frozen=True)
class Announcement:
    """What a party claims about its update for one round."""

    fed: str
    round: int
    party: str
    uri: str
    sha256: str
    samples: int
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    spec_hash: str = ""
    start_sha256: str = ""
    """``state_sha256`` of the global weights this round started from; "" when not announced."""

    def __post_init__(self) -> None:
        if self.round < 0:
            raise errors.ConfigError(f"announcement.round: {self.round} must be >= 0")
        if self.samples < 0:
            raise errors.ConfigError(f"announcement.samples: {self.samples} must be >= 0")
        if not _is_sha256(self.sha256):
            raise errors.ConfigError("announcement.sha256: must be 64 lowercase hex characters")
        if self.start_sha256 and not _is_sha256(self.start_sha256):
            raise errors.ConfigError(
                "announcement.start_sha256: must be 64 lowercase hex characters (or empty: not announced)"
            )
        for name, value in self.metrics.items():
            if not math.isfinite(value):
                raise errors.ConfigError(f"announcement.metrics.{name}: {value} is not a finite number")


def split_string(text: str) -> str | list[str]:
    """Split a string into chunks of at most 64 UTF-8 bytes, never inside a character."""
    data = text.encode()
    if len(data) <= MAX_META_STR:
        return text
    chunks: list[str] = []
    current = ""
    for char in text:
        if len((current + char).encode()) > MAX_META_STR:
            chunks.append(current)
            current = ""
        current += char
    chunks.append(current)
    return chunks


def join_string(value: Any) -> str:
    """Inverse of :func:`split_string`; raises ValueError on anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")


def announcement_metadata(a: Announcement) -> dict[str, Any]:
    """The metadata map stored under the label."""
    return {
        "fed": split_string(a.fed),
        "round": a.round,
        "party": split_string(a.party),
        "uri": split_string(a.uri),
        "sha256": a.sha256,
        "samples": a.samples,
        "metrics": {k: repr(float(v)) for k, v in sorted(a.metrics.items())},
        "specHash": split_string(a.spec_hash),
        **({"startSha256": a.start_sha256} if a.start_sha256 else {}),
    }


def _metric_keys_ok(metrics: Mapping[str, float]) -> None:
    for name in metrics:
        if len(name.encode()) > MAX_META_STR:
            raise errors.ConfigError(
                f"announcement.metrics: name {name!r} is longer than 64 bytes; shorten it"
            )


def _address_bytes(addr: str | pycardano.Address) -> bytes:
    """Raw address bytes of bech32 text (``primitives.address_bytes`` caches it) or of a pycardano address."""
    if not isinstance(addr, str):
        return bytes(addr.to_primitive())
    try:
        return primitives.address_bytes(addr)
    except ValueError as exc:
        raise errors.ConfigError(f"peer_addresses: {addr!r} is not a bech32 Cardano address: {exc}") from exc


def _is_pycardano_output(out: Any) -> bool:
    """Whether ``out`` is a pycardano output; with pycardano not loaded, none can exist."""
    module = sys.modules.get("pycardano")
    return module is not None and isinstance(out, module.TransactionOutput)


_NOT_ADA_ONLY = ("datum", "datumhash", "inlineDatum", "inlineDatumRaw", "inlineDatumhash", "referenceScript")


def _lovelace_only(out: Any) -> int | None:
    """The coin of an ADA-only output (pycardano or API JSON); None for anything else."""
    if _is_pycardano_output(out):
        if out.datum is not None or out.datum_hash is not None or out.script is not None:
            return None
        amount = out.amount
        if isinstance(amount, int):
            return amount
        return None if amount.multi_asset else int(amount.coin)  # a pycardano Value
    if isinstance(out, Mapping) and not any(out.get(f) is not None for f in _NOT_ADA_ONLY):
        value = out.get("value")
        if isinstance(value, Mapping) and set(value) == {"lovelace"} and isinstance(value["lovelace"], int):
            return value["lovelace"]
    return None


def select_inputs(utxo: Mapping[str, Any], owner: bytes | pycardano.Address) -> list[tuple[str, int]]:
    """The owner's ADA-only outputs as ``(txin, lovelace)``, largest first, at most MAX_INPUTS.

    ``utxo`` is the API's JSON (``GET /snapshot/utxo``) or pycardano outputs; ``owner`` the raw
    address or a pycardano one. Outputs that carry tokens, datums or scripts are left alone: a
    peer cannot block our announcements by paying us something odd. Spending up to MAX_INPUTS
    consolidates the 1 ADA payments peers send us.
    """
    owner_raw = owner if isinstance(owner, bytes) else bytes(owner.to_primitive())
    owner_text = primitives.address_text(owner_raw)
    owner_part: Any = None  # pycardano's payment part, built for pycardano outputs only
    mine: list[tuple[str, int]] = []
    for key, out in utxo.items():
        if _is_pycardano_output(out):
            if owner_part is None:
                owner_part = sys.modules["pycardano"].Address.from_primitive(owner_raw).payment_part
            if out.address.payment_part != owner_part:
                continue
        elif not (isinstance(out, Mapping) and out.get("address") == owner_text):
            continue
        coin = _lovelace_only(out)
        if coin is not None:
            mine.append((key, coin))
    mine.sort(key=lambda item: (-item[1], item[0]))
    return mine[:MAX_INPUTS]


def build_announcement_tx(
    announcement: Announcement,
    *,
    keys: keys_mod.PartyKeys,
    utxo: Mapping[str, Any],
    peer_addresses: Sequence[str | pycardano.Address],
    lovelace_per_peer: int = 1_000_000,
    protocol_parameters: Mapping[str, Any],
    network: keys_mod.NetworkName = "testnet",
    label: int = DEFAULT_LABEL,
) -> dict[str, str]:
    """Build and sign the announcement; return the text envelope for NewTx / POST /transaction.

    The body, witness set and metadata are encoded with cbor2 (a Conway body: inputs, outputs,
    fee, auxiliary-data hash; outputs in the legacy ``[address, coin]`` form). pycardano's
    type-checked encoder cost most of the ~10 ms per tx, and every party builds one per round.

    Parameters
    ----------
    utxo:
        The head's UTxO (``GET /snapshot/utxo`` JSON or pycardano outputs); the party's own
        ADA-only outputs in it are spent.
    peer_addresses:
        Each peer's payment address; each receives ``lovelace_per_peer``.
    protocol_parameters:
        ``GET /protocol-parameters`` JSON: the fee and min-ADA rules come from it.
    """
    _metric_keys_ok(announcement.metrics)
    return _build_metadata_tx(
        announcement_metadata(announcement),
        keys=keys,
        utxo=utxo,
        peer_addresses=peer_addresses,
        lovelace_per_peer=lovelace_per_peer,
        protocol_parameters=protocol_parameters,
        network=network,
        label=label,
    )


@dataclasses.dataclass(frozen=True)
class Cutoff:
    """A party's claim that a quorum round may end: the first confirmed one fixes its members.

    Metadata ``{fed, round, party, cutoff: 1, specHash}`` under the announcements' label; the tx
    pays no peer, it only spends and returns the sender's change (``hydrafed.rounds`` decides).
    """

    fed: str
    round: int
    party: str
    spec_hash: str = ""

    def __post_init__(self) -> None:
        if self.round < 1:
            raise errors.ConfigError(f"cutoff.round: {self.round} must be >= 1")


def cutoff_metadata(c: Cutoff) -> dict[str, Any]:
    """The metadata map of a cutoff stored under the label."""
    return {
        "fed": split_string(c.fed),
        "round": c.round,
        "party": split_string(c.party),
        "cutoff": 1,
        "specHash": split_string(c.spec_hash),
    }


def build_cutoff_tx(
    cutoff: Cutoff,
    *,
    keys: keys_mod.PartyKeys,
    utxo: Mapping[str, Any],
    protocol_parameters: Mapping[str, Any],
    network: keys_mod.NetworkName = "testnet",
    label: int = DEFAULT_LABEL,
) -> dict[str, str]:
    """Build and sign a round cutoff tx (the party's outputs back to itself, less the fee)."""
    return _build_metadata_tx(
        cutoff_metadata(cutoff),
        keys=keys,
        utxo=utxo,
        peer_addresses=[],
        lovelace_per_peer=0,
        protocol_parameters=protocol_parameters,
        network=network,
        label=label,
    )


def _build_metadata_tx(
    metadata: Mapping[str, Any],
    *,
    keys: keys_mod.PartyKeys,
    utxo: Mapping[str, Any],
    peer_addresses: Sequence[str | pycardano.Address],
    lovelace_per_peer: int,
    protocol_parameters: Mapping[str, Any],
    network: keys_mod.NetworkName,
    label: int,
) -> dict[str, str]:
    """One signed tx: the sender's outputs in, ``lovelace_per_peer`` to each peer, change, metadata."""
    params = primitives.LedgerParams.from_json(protocol_parameters)
    own_raw = keys.address_bytes(network)
    chosen = select_inputs(utxo, own_raw)
    if not chosen:
        raise errors.HeadError(
            f"party {keys.name} has no ADA-only UTxO at {primitives.address_text(own_raw)} in the head; "
            "commit funds first (funding.commit_funds)"
        )
    inputs = [list(primitives.split_txin(key)) for key, _ in chosen]
    total_in = sum(coin for _, coin in chosen)

    outputs: list[list[Any]] = []
    for addr in peer_addresses:
        raw = _address_bytes(addr)
        need = primitives.min_lovelace_ada_only(raw, lovelace_per_peer, params)
        if lovelace_per_peer < need:
            raise errors.ConfigError(
                f"lovelace_per_peer: {lovelace_per_peer} is below the min-ADA of {need} for {addr}; raise it"
            )
        outputs.append([raw, lovelace_per_peer])

    aux_cbor = cbor2.dumps(cbor2.CBORTag(259, {0: {label: dict(metadata)}}))
    aux_hash = hashlib.blake2b(aux_cbor, digest_size=32).digest()
    vkey = keys.payment_vkey
    fee = 0
    for _ in range(3):  # fee depends on size, size barely on fee: converges in two passes
        change = total_in - lovelace_per_peer * len(outputs) - fee
        need = primitives.min_lovelace_ada_only(own_raw, max(change, 0), params)
        if change < need:
            raise errors.HeadError(
                f"party {keys.name} holds {total_in} lovelace in the head but the announcement needs "
                f"{lovelace_per_peer * len(outputs) + fee + need} (peers + fee + min-ADA change); "
                "commit more funds"
            )
        body_cbor = cbor2.dumps({0: inputs, 1: [*outputs, [own_raw, change]], 2: fee, 7: aux_hash})
        body_hash = hashlib.blake2b(body_cbor, digest_size=32).digest()
        signature = keys.sign(body_hash)
        witness_cbor = cbor2.dumps({0: [[vkey, signature]]})
        tx_cbor = b"\x84" + body_cbor + witness_cbor + b"\xf5" + aux_cbor
        needed_fee = primitives.min_fee(len(tx_cbor), params)
        if needed_fee <= fee:
            break
        fee = needed_fee
    return {"type": "Tx ConwayEra", "description": "", "cborHex": tx_cbor.hex(), "txId": body_hash.hex()}


def _metadata_map(aux: Any) -> Mapping[Any, Any] | None:
    """The metadata map of any auxiliary-data shape (Shelley map, Mary array, Alonzo tag 259)."""
    if isinstance(aux, cbor2.CBORTag) and aux.tag == 259 and isinstance(aux.value, Mapping):
        meta = aux.value.get(0)
        return meta if isinstance(meta, Mapping) else None
    if isinstance(aux, list) and aux and isinstance(aux[0], Mapping):
        return aux[0]
    if isinstance(aux, Mapping):
        return aux
    return None


def _spans(envelope: Mapping[str, Any]) -> list[bytes]:
    """The checked top-level items of a confirmed tx (``cbor.tx_item_spans`` of its cborHex)."""
    return cbor.tx_item_spans(bytes.fromhex(str(envelope["cborHex"])))


def _label_value(spans: Sequence[bytes], label: int) -> Any:
    """The value under ``label`` in a tx's metadata, or None if it has none.

    Raises what a malformed tx raises (``_DECODE_ERRORS``); the callers turn that into None.
    """
    if len(spans) < 4:
        return None
    meta = _metadata_map(cbor2.loads(spans[3]))
    if meta is None or label not in meta:
        return None
    return meta[label]


_DECODE_ERRORS = (KeyError, ValueError, TypeError, errors.HydrafedError, cbor2.CBORDecodeError)


def decode_announcement(envelope: Mapping[str, Any], label: int = DEFAULT_LABEL) -> Announcement | None:
    """The announcement in a confirmed tx envelope, or None if the tx carries none.

    Peers' txs are untrusted: malformed metadata gives None and a debug log, never an error.
    """
    parsed = _parse_claim(envelope, label)
    return parsed[0] if parsed is not None and isinstance(parsed[0], Announcement) else None


def decode_cutoff(envelope: Mapping[str, Any], label: int = DEFAULT_LABEL) -> Cutoff | None:
    """The round cutoff in a confirmed tx envelope, or None if the tx carries none (untrusted input)."""
    parsed = _parse_claim(envelope, label)
    return parsed[0] if parsed is not None and isinstance(parsed[0], Cutoff) else None


@dataclasses.dataclass(frozen=True)
class DecodedTx:
    """What the round rules read from a confirmed tx: its claim and who really signed it."""

    claim: Announcement | Cutoff
    signers: frozenset[str]


def decode_confirmed(envelope: Mapping[str, Any], label: int = DEFAULT_LABEL) -> DecodedTx | None:
    """The claim of a confirmed tx and its signers from one walk of its CBOR, or None if no claim.

    Every party reads every peer's tx each round (N^2 per round): one bounded walk instead of
    one for the claim and another for the witnesses.
    """
    parsed = _parse_claim(envelope, label)
    if parsed is None:
        return None
    claim, spans = parsed
    return DecodedTx(claim, frozenset(_signers_from(spans)))


def _parse_claim(envelope: Mapping[str, Any], label: int) -> tuple[Announcement | Cutoff, list[bytes]] | None:
    """The tx's claim with its checked spans, or None (malformed txs and metadata give a debug log)."""
    try:
        spans = _spans(envelope)
    except _DECODE_ERRORS as exc:
        log.debug("tx %s is malformed: %s", envelope.get("txId"), exc)
        return None
    claim = _claim_from(spans, envelope, label)
    return None if claim is None else (claim, spans)


def _claim_from(
    spans: Sequence[bytes], envelope: Mapping[str, Any], label: int
) -> Announcement | Cutoff | None:
    """The cutoff or announcement under ``label``; malformed metadata gives None and a debug log."""
    try:
        m = _label_value(spans, label)
        if m is None:
            return None
        if not isinstance(m, Mapping):
            raise ValueError("label value is not a map")
        if m.get("cutoff") == 1:
            return _cutoff_from(m)
        return _announcement_from(m)
    except _DECODE_ERRORS as exc:
        log.debug("tx %s: label %d metadata is not a claim: %s", envelope.get("txId"), label, exc)
        return None


def _announcement_from(m: Mapping[Any, Any]) -> Announcement:
    metrics_raw = m.get("metrics", {})
    if not isinstance(metrics_raw, Mapping):
        raise ValueError("metrics is not a map")
    rnd, samples = m["round"], m["samples"]
    if not isinstance(rnd, int) or not isinstance(samples, int):
        raise ValueError("round and samples must be integers")
    return Announcement(
        fed=join_string(m["fed"]),
        round=rnd,
        party=join_string(m["party"]),
        uri=join_string(m["uri"]),
        sha256=join_string(m["sha256"]),
        samples=samples,
        metrics={join_string(k): float(join_string(v)) for k, v in metrics_raw.items()},
        spec_hash=join_string(m.get("specHash", "")),
        start_sha256=join_string(m.get("startSha256", "")),
    )


def _cutoff_from(m: Mapping[Any, Any]) -> Cutoff:
    rnd = m["round"]
    if not isinstance(rnd, int):
        raise ValueError("round must be an integer")
    return Cutoff(
        fed=join_string(m["fed"]),
        round=rnd,
        party=join_string(m["party"]),
        spec_hash=join_string(m.get("specHash", "")),
    )


def tx_signers(envelope: Mapping[str, Any]) -> set[str]:
    """Payment key hashes (hex) of the tx's vkey witnesses: who really sent it.

    The ``party`` field of an announcement is a claim; compare it with these hashes. Every party
    reads every peer's tx each round, so the witness set is read with cbor2 rather than
    pycardano's type-checked decoder (milliseconds per tx, N^2 per round).
    """
    try:
        return _signers_from(_spans(envelope))
    except _DECODE_ERRORS:
        return set()


def _signers_from(spans: Sequence[bytes]) -> set[str]:
    try:
        witness_set = cbor2.loads(spans[1])
    except (IndexError, ValueError, cbor2.CBORDecodeError):
        return set()
    vkey_witnesses = witness_set.get(0, []) if isinstance(witness_set, dict) else []
    if isinstance(vkey_witnesses, cbor2.CBORTag) and vkey_witnesses.tag == 258:
        vkey_witnesses = vkey_witnesses.value
    if not isinstance(vkey_witnesses, list):
        return set()
    return {
        hashlib.blake2b(w[0], digest_size=28).hexdigest()
        for w in vkey_witnesses
        if isinstance(w, list) and len(w) == 2 and isinstance(w[0], bytes)
    }
