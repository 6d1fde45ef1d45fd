"""Bounded decoding of transactions' CBOR, and the byte-exact spans of their items.

Hashes (tx id, auxiliary-data hash) must be taken over the bytes as they were sent, never
over a re-encoding: pycardano's round trip can change the bytes of foreign transactions.

Peers' transactions are untrusted, so before cbor2 turns bytes into objects :func:`check_item`
walks the item's headers and refuses what a Conway transaction never holds: more than
``limits.MAX_TX_BYTES``, nesting deeper than ``limits.MAX_CBOR_DEPTH``, tags outside
``limits.ALLOWED_CBOR_TAGS`` (no value sharing, so no cycles), bignums over
``limits.MAX_BIGNUM_BYTES`` (their decimal form would exceed Python's 4300-digit limit) and
lengths longer than the bytes left. Decoding then allocates at most in proportion to the input.
"""

from __future__ import annotations

from typing import Any

import cbor2

from hydrafed import errors
from hydrafed.hydra import limits

_ARG_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}


class CBORLimitError(errors.HeadError):
    """CBOR that is malformed or exceeds a limit; the message names the byte offset."""


def item_header(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """(major type, position after the header, argument or None for indefinite length)."""
    if pos >= len(data):
        raise CBORLimitError(f"CBOR ends early at byte {pos}")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, pos + 1, info
    if info == 31:
        if major in (0, 1, 6):
            raise CBORLimitError(f"CBOR byte {pos}: indefinite length on major type {major}")
        return major, pos + 1, None
    width = _ARG_BYTES.get(info)
    if width is None:
        raise CBORLimitError(f"CBOR byte {pos}: reserved additional information {info}")
    end = pos + 1 + width
    if end > len(data):
        raise CBORLimitError(f"CBOR ends early at byte {pos}")
    return major, end, int.from_bytes(data[pos + 1 : end], "big")


def check_item(data: bytes, pos: int = 0, depth: int = 0) -> int:
    """Walk one CBOR item at ``pos`` within the limits; return the offset just after it."""
    if depth > limits.MAX_CBOR_DEPTH:
        raise CBORLimitError(f"CBOR nests deeper than {limits.MAX_CBOR_DEPTH} at byte {pos}")
    start = pos
    major, pos, arg = item_header(data, pos)
    if major in (0, 1):
        return pos
    if major in (2, 3):
        if arg is None:  # indefinite: definite chunks of the same type up to a break
            while True:
                if pos >= len(data):
                    raise CBORLimitError(f"CBOR string at byte {start} has no break")
                if data[pos] == 0xFF:
                    return pos + 1
                chunk_major, pos, length = item_header(data, pos)
                if chunk_major != major or length is None:
                    raise CBORLimitError(f"CBOR string at byte {start}: a chunk is not a definite string")
                pos = _skip(data, pos, length, start)
        return _skip(data, pos, arg, start)
    if major in (4, 5):
        per_entry = 1 if major == 4 else 2
        if arg is None:
            while True:
                if pos >= len(data):
                    raise CBORLimitError(f"CBOR container at byte {start} has no break")
                if data[pos] == 0xFF:
                    return pos + 1
                for _ in range(per_entry):
                    pos = check_item(data, pos, depth + 1)
        if arg * per_entry > len(data) - pos:
            raise CBORLimitError(
                f"CBOR container at byte {start} declares {arg} entries, more than its bytes"
            )
        for _ in range(arg * per_entry):
            pos = check_item(data, pos, depth + 1)
        return pos
    if major == 6:
        assert arg is not None
        if arg not in limits.ALLOWED_CBOR_TAGS:
            raise CBORLimitError(f"CBOR tag {arg} at byte {start} is not used by Cardano transactions")
        if arg in (2, 3):
            inner_major, inner_pos, length = item_header(data, pos)
            if inner_major != 2 or length is None:
                raise CBORLimitError(f"CBOR bignum at byte {start} is not a definite byte string")
            if length > limits.MAX_BIGNUM_BYTES:
                raise CBORLimitError(
                    f"CBOR bignum at byte {start} has {length} bytes, limit {limits.MAX_BIGNUM_BYTES}"
                )
            return _skip(data, inner_pos, length, start)
        return check_item(data, pos, depth + 1)
    # major 7: simple values and floats; a break outside an indefinite container is malformed
    if data[start] == 0xFF:
        raise CBORLimitError(f"CBOR byte {start}: break outside an indefinite-length item")
    return pos


def _skip(data: bytes, pos: int, length: int | None, start: int) -> int:
    assert length is not None
    if length > len(data) - pos:
        raise CBORLimitError(f"CBOR string at byte {start} declares {length} bytes, more than are left")
    return pos + length


def loads(data: bytes) -> Any:
    """Decode one complete CBOR item within the limits (:class:`CBORLimitError` otherwise)."""
    if len(data) > limits.MAX_TX_BYTES:
        raise CBORLimitError(f"CBOR is {len(data)} bytes, limit {limits.MAX_TX_BYTES}")
    end = check_item(data)
    if end != len(data):
        raise CBORLimitError(f"CBOR has trailing bytes after byte {end}")
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, EOFError, RecursionError) as exc:
        raise CBORLimitError(f"CBOR does not decode: {exc}") from exc


def tx_item_spans(cbor_bytes: bytes) -> list[bytes]:
    """Return the raw bytes of each top-level item of a tx array (body, witnesses, valid, aux).

    Every item is checked against the limits, so each span can be given to :func:`loads` or
    cbor2 without risk.
    """
    if len(cbor_bytes) > limits.MAX_TX_BYTES:
        raise CBORLimitError(
            f"transaction CBOR is {len(cbor_bytes)} bytes, limit {limits.MAX_TX_BYTES}; nothing decoded"
        )
    if not cbor_bytes or cbor_bytes[0] not in (0x83, 0x84):
        raise CBORLimitError("transaction CBOR is not an array of 3 or 4 items")
    count = cbor_bytes[0] - 0x80
    spans: list[bytes] = []
    start = 1
    for _ in range(count):
        end = check_item(cbor_bytes, start, 1)
        spans.append(cbor_bytes[start:end])
        start = end
    if start != len(cbor_bytes):
        raise CBORLimitError("transaction CBOR has trailing bytes")
    return spans
