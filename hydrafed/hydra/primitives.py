"""Cardano's plain data without pycardano: bech32 addresses, key hashes, output references, fees.

Every party process imports the announcement path (keys, tx), and pycardano costs ~1.5 s of
import (its chain backends pull ogmios, blockfrost, requests; typeguard checks every class).
The party needs only bytes: its key hash and address, its peers' addresses, ``"txid#ix"``
references and the fee and min-ADA formulas, so they live here on hashlib and cbor2. The L1
code (devnet, funding, escrow, NFT) keeps pycardano's typed objects; ``tests/unit/hydra/
test_primitives.py`` checks each function here against pycardano's result on the same input.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import cbor2

from hydrafed import errors

#: Bytes of a key or script hash (blake2b-224).
HASH_SIZE = 28
#: Bytes the ledger adds to an output's size for the min-ADA rule (Babbage/Conway).
MIN_UTXO_OVERHEAD = 160
#: The longest bech32 address accepted (pycardano's limit too; a base address is 103-108).
MAX_BECH32_CHARS = 108

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)

#: Shelley header types (CIP-19) by payload length: base 0-3, enterprise 6-7, reward 14-15.
_PAYLOAD_BYTES = {0: 56, 1: 56, 2: 56, 3: 56, 6: 28, 7: 28, 14: 28, 15: 28}
_ENTERPRISE_KEY = 6


def key_hash(vkey: bytes) -> bytes:
    """The blake2b-224 hash of an Ed25519 verification key: the payment credential."""
    return hashlib.blake2b(vkey, digest_size=HASH_SIZE).digest()


def enterprise_address(payment_key_hash: bytes, network_id: int) -> bytes:
    """The raw enterprise address (no stake part) of a payment key hash, as ``address build``."""
    if len(payment_key_hash) != HASH_SIZE:
        raise ValueError(f"a key hash is {HASH_SIZE} bytes, not {len(payment_key_hash)}")
    return bytes([_ENTERPRISE_KEY << 4 | _network_nibble(network_id)]) + payment_key_hash


def _network_nibble(network_id: int) -> int:
    if network_id not in (0, 1):
        raise ValueError(f"network id {network_id} is neither 0 (testnet) nor 1 (mainnet)")
    return network_id


def _hrp(raw: bytes) -> str:
    """CIP-5's prefix for a Shelley address, after checking its header and length."""
    if not raw:
        raise ValueError("an address has at least a header byte")
    kind, network = raw[0] >> 4, raw[0] & 0x0F
    length = _PAYLOAD_BYTES.get(kind)
    if length is None:
        raise ValueError(f"address header type {kind} is not a base, enterprise or reward address")
    if len(raw) != 1 + length:
        raise ValueError(f"an address of header type {kind} has {length} bytes after the header")
    prefix = "stake" if kind >= 14 else "addr"
    return prefix if _network_nibble(network) == 1 else prefix + "_test"


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    for byte in data:
        acc = (acc << 8 | byte) & 0xFFF
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(acc >> bits & 31)
    if bits:
        out.append(acc << (5 - bits) & 31)
    return out


def _from_5bit(groups: list[int]) -> bytes:
    acc = bits = 0
    out = bytearray()
    for group in groups:
        acc = (acc << 5 | group) & 0x1FFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("bech32 data has non-zero padding")
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def address_text(raw: bytes) -> str:
    """The bech32 text of a raw Shelley address (cached: a head has few addresses)."""
    hrp = _hrp(raw)
    data = _to_5bit(raw)
    check = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    return hrp + "1" + "".join(_CHARSET[d] for d in data + [check >> 5 * (5 - i) & 31 for i in range(6)])


@functools.lru_cache(maxsize=4096)
def address_bytes(text: str) -> bytes:
    """The raw bytes of a bech32 Shelley address; ValueError names what is wrong.

    Stricter than pycardano: the checksum must be bech32's (not bech32m) and the prefix must
    agree with the header's type and network.
    """
    if len(text) > MAX_BECH32_CHARS:
        raise ValueError(f"longer than {MAX_BECH32_CHARS} characters")
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("no '1' separator followed by a 6-character checksum")
    hrp = text[:pos]
    data = [_CHARSET.find(c) for c in text[pos + 1 :]]
    if -1 in data:
        raise ValueError("a character outside bech32's alphabet")
    if _polymod([*_hrp_expand(hrp), *data]) != 1:
        raise ValueError("bad bech32 checksum")
    raw = _from_5bit(data[:-6])
    if _hrp(raw) != hrp:
        raise ValueError(f"prefix {hrp!r} does not match the address header (expected {_hrp(raw)!r})")
    return raw


def split_txin(key: str) -> tuple[bytes, int]:
    """``"txid#ix"`` (the API's UTxO key) to (32-byte tx id, index), with an error naming the key."""
    tx_id, sep, ix = key.partition("#")
    if not sep or len(tx_id) != 64 or not ix.isdigit():
        raise errors.ConfigError(f"UTxO key {key!r}: expected '<64 hex txid>#<index>'")
    try:
        return bytes.fromhex(tx_id), int(ix)
    except ValueError as exc:
        raise errors.ConfigError(f"UTxO key {key!r}: txid is not hex") from exc


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


def min_lovelace_ada_only(address: bytes, coin: int, params: LedgerParams) -> int:
    """Min-ADA of an ADA-only output in the legacy ``[address, coin]`` encoding."""
    return (MIN_UTXO_OVERHEAD + len(cbor2.dumps([address, coin]))) * params.utxo_cost_per_byte
