"""Byte-exact spans of a transaction's CBOR items.

Hashes (tx id, auxiliary-data hash) must be taken over the bytes as they were sent, never
over a re-encoding: pycardano's round trip can change the bytes of foreign transactions.
"""

from __future__ import annotations

import io

import cbor2

from hydrafed import errors


def tx_item_spans(cbor_bytes: bytes) -> list[bytes]:
    """Return the raw bytes of each top-level item of a tx array (body, witnesses, valid, aux)."""
    if not cbor_bytes or cbor_bytes[0] not in (0x83, 0x84):
        raise errors.HeadError("transaction CBOR is not an array of 3 or 4 items")
    count = cbor_bytes[0] - 0x80
    fp = io.BytesIO(cbor_bytes)
    fp.seek(1)
    decoder = cbor2.CBORDecoder(fp)
    spans: list[bytes] = []
    start = 1
    try:
        for _ in range(count):
            decoder.decode()
            end = fp.tell()
            spans.append(cbor_bytes[start:end])
            start = end
    except (cbor2.CBORDecodeError, EOFError, ValueError) as exc:
        raise errors.HeadError(f"transaction CBOR does not decode: {exc}") from exc
    if start != len(cbor_bytes):
        raise errors.HeadError("transaction CBOR has trailing bytes")
    return spans
