"""Transactions that several parties sign under a native script: escrow spends and the NFT mint.

One party builds the body deterministically, every party rebuilds and checks it, each signs
the body hash with its payment key (a :class:`Witness` that can travel over any channel), and
whoever holds enough witnesses assembles the tx: the body exactly as signed, the vkey
witnesses sorted by vkey and the script inline. Bodies are encoded with cbor2, as tx.py does,
so the bytes signed are the bytes sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cbor2
import nacl.exceptions
import nacl.signing
import pycardano

from hydrafed import errors
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import utxo as utxo_mod

#: An output's value: lovelace, or lovelace and ``{policy: {asset name: quantity}}``.
OutputValue = int | tuple[int, Mapping[bytes, Mapping[bytes, int]]]


class BadWitness(errors.HeadError):
    """A witness does not verify over the body it is offered for."""


@dataclasses.dataclass(frozen=True)
class Witness:
    """A vkey witness: the raw 32-byte vkey and its Ed25519 signature over the body hash."""

    vkey: bytes
    signature: bytes

    @property
    def key_hash(self) -> str:
        return hashlib.blake2b(self.vkey, digest_size=28).hexdigest()


@dataclasses.dataclass(frozen=True)
class MultisigTx:
    """A tx before its witnesses: body and metadata bytes, and the native script it needs."""

    body_cbor: bytes
    aux_cbor: bytes | None
    script: pycardano.NativeScript

    @property
    def body_hash(self) -> bytes:
        return hashlib.blake2b(self.body_cbor, digest_size=32).digest()

    @property
    def tx_id(self) -> str:
        return self.body_hash.hex()

    def sign(self, party: keys_mod.PartyKeys) -> Witness:
        """This party's witness (its payment key over the body hash)."""
        return Witness(
            bytes(party.payment_verification_key.payload),
            bytes(party.payment_signing_key.sign(self.body_hash)),
        )

    def envelope(self, witnesses: Iterable[Witness]) -> dict[str, str]:
        """The signed tx (script inline, witnesses sorted by vkey) as a text envelope."""
        unique: dict[bytes, Witness] = {}
        for w in witnesses:
            try:
                nacl.signing.VerifyKey(w.vkey).verify(self.body_hash, w.signature)
            except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
                raise BadWitness(
                    f"witness of key hash {w.key_hash} does not verify over {self.tx_id}"
                ) from exc
            unique[w.vkey] = w
        pairs = [(w.vkey, w.signature) for _, w in sorted(unique.items())]
        raw = assemble(self.body_cbor, pairs, self.script, self.aux_cbor)
        return {"type": "Tx ConwayEra", "description": "", "cborHex": raw.hex(), "txId": self.tx_id}


def assemble(
    body: bytes, witnesses: Sequence[tuple[bytes, bytes]], script: pycardano.NativeScript, aux: bytes | None
) -> bytes:
    """The tx bytes: the body as signed, vkey witnesses and the script inline, the metadata."""
    witness_set = {0: [list(w) for w in witnesses], 1: [cbor2.loads(script.to_cbor())]}
    return b"\x84" + body + cbor2.dumps(witness_set) + b"\xf5" + (aux if aux is not None else b"\xf6")


def sized_tx_bytes(body: bytes, signers: int, script: pycardano.NativeScript, aux: bytes | None) -> int:
    """The size the tx will have with ``signers`` witnesses (for the fee, before anyone signs)."""
    dummy = [(bytes([i % 256]) * 32, b"\0" * 64) for i in range(signers)]
    return len(assemble(body, dummy, script, aux))


def encode_body(
    inputs: Sequence[tuple[str, int]],
    outputs: Sequence[tuple[pycardano.Address, OutputValue]],
    fee: int,
    aux: bytes | None,
    *,
    validity_start: int | None = None,
    ttl: int | None = None,
    mint: Mapping[bytes, Mapping[bytes, int]] | None = None,
) -> bytes:
    """A Conway body: sorted inputs, outputs, fee, ttl, aux-data hash, validity start, mint."""
    refs = sorted(
        [bytes(t.transaction_id.payload), t.index] for t in (utxo_mod.parse_txin(k) for k, _ in inputs)
    )
    outs: list[Any] = []
    for address, value in outputs:
        raw = bytes(address.to_primitive())
        outs.append([raw, value] if isinstance(value, int) else [raw, [value[0], _assets(value[1])]])
    body: dict[int, Any] = {0: refs, 1: outs, 2: fee}
    if ttl is not None:
        body[3] = ttl
    if aux is not None:
        body[7] = hashlib.blake2b(aux, digest_size=32).digest()
    if validity_start is not None:
        body[8] = validity_start
    if mint:
        body[9] = _assets(mint)
    return cbor2.dumps(body)


def _assets(assets: Mapping[bytes, Mapping[bytes, int]]) -> dict[bytes, dict[bytes, int]]:
    return {p: dict(sorted(named.items())) for p, named in sorted(assets.items())}


def aux_data(label: int, meta: Mapping[Any, Any]) -> bytes:
    """Alonzo-form auxiliary data holding ``{label: meta}``."""
    return cbor2.dumps(cbor2.CBORTag(259, {0: {label: dict(meta)}}))
