"""Round announcements: the one Hydra transaction a party sends per round, and its decoding.

An announcement spends the party's UTxO in the head, pays ``lovelace_per_peer`` to each peer
(so every peer sees the tx touch its address), returns the change, and carries metadata under
one label: ``{fed, round, party, uri, sha256, samples, metrics, specHash}``. Cardano metadata
strings are limited to 64 bytes, so longer strings become lists of chunks; metadata has no
floats, so metric values travel as decimal strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cbor2
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor, ledger
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import utxo as utxo_mod

log = logging.getLogger(__name__)

DEFAULT_LABEL = 1990
MAX_META_STR = 64
#: At most this many of the party's outputs are consolidated into one announcement.
MAX_INPUTS = 40


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

    def __post_init__(self) -> None:
        if self.round < 0:
            raise errors.ConfigError(f"announcement.round: {self.round} must be >= 0")
        if self.samples < 0:
            raise errors.ConfigError(f"announcement.samples: {self.samples} must be >= 0")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise errors.ConfigError("announcement.sha256: must be 64 lowercase hex characters")
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
    }


def _metric_keys_ok(metrics: Mapping[str, float]) -> None:
    for name in metrics:
        if len(name.encode()) > MAX_META_STR:
            raise errors.ConfigError(
                f"announcement.metrics: name {name!r} is longer than 64 bytes; shorten it"
            )


def _to_address(addr: str | pycardano.Address) -> pycardano.Address:
    if isinstance(addr, pycardano.Address):
        return addr
    try:
        return pycardano.Address.from_primitive(addr)
    except (pycardano.DecodingException, ValueError, TypeError) as exc:
        raise errors.ConfigError(f"peer_addresses: {addr!r} is not a bech32 Cardano address") from exc


def select_inputs(
    utxo: Mapping[str, pycardano.TransactionOutput], owner: pycardano.Address
) -> list[tuple[str, pycardano.TransactionOutput]]:
    """The owner's ADA-only outputs, largest first, at most MAX_INPUTS (consolidating dust)."""
    mine = [
        (key, out)
        for key, out in utxo.items()
        if out.address.payment_part == owner.payment_part
        and isinstance(out.amount, int | pycardano.Value)
        and (isinstance(out.amount, int) or not out.amount.multi_asset)
    ]

    def coin(item: tuple[str, pycardano.TransactionOutput]) -> int:
        amount = item[1].amount
        return amount if isinstance(amount, int) else amount.coin

    mine.sort(key=lambda item: (-coin(item), item[0]))
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
    params = ledger.LedgerParams.from_json(protocol_parameters)
    own = keys.address(network)
    own_text = str(own)
    parsed = {  # parse only the party's own outputs: bech32 decoding every entry is the slow part
        k: (v if isinstance(v, pycardano.TransactionOutput) else utxo_mod.txout_from_json(v))
        for k, v in utxo.items()
        if isinstance(v, pycardano.TransactionOutput)
        or (isinstance(v, Mapping) and v.get("address") == own_text)
    }
    chosen = select_inputs(parsed, own)
    if not chosen:
        raise errors.HeadError(
            f"party {keys.name} has no ADA-only UTxO at {own} in the head; "
            "commit funds first (funding.commit_funds)"
        )
    inputs = [utxo_mod.parse_txin(k) for k, _ in chosen]
    total_in = sum(out.amount if isinstance(out.amount, int) else out.amount.coin for _, out in chosen)

    outputs: list[pycardano.TransactionOutput] = []
    for addr in peer_addresses:
        out = pycardano.TransactionOutput(_to_address(addr), lovelace_per_peer)
        need = ledger.min_lovelace(out, params)
        if lovelace_per_peer < need:
            raise errors.ConfigError(
                f"lovelace_per_peer: {lovelace_per_peer} is below the min-ADA of {need} for {addr}; raise it"
            )
        outputs.append(out)

    aux = pycardano.AuxiliaryData(
        pycardano.AlonzoMetadata(metadata=pycardano.Metadata({label: announcement_metadata(announcement)}))
    )
    aux_cbor = aux.to_cbor()
    aux_hash = pycardano.AuxiliaryDataHash(hashlib.blake2b(aux_cbor, digest_size=32).digest())
    fee = 0
    for _ in range(3):  # fee depends on size, size barely on fee: converges in two passes
        change = total_in - lovelace_per_peer * len(outputs) - fee
        change_out = pycardano.TransactionOutput(own, max(change, 0))
        need = ledger.min_lovelace(change_out, params)
        if change < need:
            raise errors.HeadError(
                f"party {keys.name} holds {total_in} lovelace in the head but the announcement needs "
                f"{lovelace_per_peer * len(outputs) + fee + need} (peers + fee + min-ADA change); "
                "commit more funds"
            )
        body = pycardano.TransactionBody(
            inputs=inputs, outputs=[*outputs, change_out], fee=fee, auxiliary_data_hash=aux_hash
        )
        # Serialise each part once and assemble the tx array by hand: pycardano's encoder
        # type-checks every field, and re-encoding the body for the id and the size doubled the cost.
        body_cbor = body.to_cbor()
        body_hash = hashlib.blake2b(body_cbor, digest_size=32).digest()
        signature = keys.payment_signing_key.sign(body_hash)
        witness_cbor = cbor2.dumps({0: [[bytes(keys.payment_verification_key.payload), signature]]})
        tx_cbor = b"\x84" + body_cbor + witness_cbor + b"\xf5" + aux_cbor
        needed_fee = ledger.min_fee(len(tx_cbor), params)
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


def decode_announcement(envelope: Mapping[str, Any], label: int = DEFAULT_LABEL) -> Announcement | None:
    """The announcement in a confirmed tx envelope, or None if the tx carries none.

    Peers' txs are untrusted: malformed metadata gives None and a debug log, never an error.
    """
    try:
        spans = cbor.tx_item_spans(bytes.fromhex(str(envelope["cborHex"])))
        if len(spans) < 4:
            return None
        meta = _metadata_map(cbor2.loads(spans[3]))
        if meta is None or label not in meta:
            return None
        m = meta[label]
        if not isinstance(m, Mapping):
            raise ValueError("label value is not a map")
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
        )
    except (KeyError, ValueError, TypeError, errors.HydrafedError, cbor2.CBORDecodeError) as exc:
        log.debug("tx %s: label %d metadata is not an announcement: %s", envelope.get("txId"), label, exc)
        return None


def tx_signers(envelope: Mapping[str, Any]) -> set[str]:
    """Payment key hashes (hex) of the tx's vkey witnesses: who really sent it.

    The ``party`` field of an announcement is a claim; compare it with these hashes.
    """
    try:
        tx = pycardano.Transaction.from_cbor(str(envelope["cborHex"]))
    except (KeyError, ValueError, pycardano.DecodingException, pycardano.DeserializeException):
        return set()
    return {bytes(w.vkey.hash().payload).hex() for w in tx.transaction_witness_set.vkey_witnesses or []}
