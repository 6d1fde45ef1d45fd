"""Bounds on a peer's safetensors header, checked before the safetensors library reads the file.

A peer's update is verified against its announced sha256 first, but the peer chose those bytes:
the header (an 8-byte little-endian length, then that many bytes of JSON naming every tensor's
dtype, shape and byte offsets) must not make us allocate or parse more than the model we share
needs. :func:`check_header` reads only the header, refuses a length or a tensor count beyond the
bounds and offsets outside the file, and names what is wrong; only then is the file loaded.
"""

from __future__ import annotations

import json
from typing import Any

from hydrafed import errors

HEADER_BASE_BYTES = 65536
"""Header room for metadata whatever the model: ``header_limit`` adds per-tensor room to it."""

HEADER_BYTES_PER_TENSOR = 512
"""A tensor's entry (name, dtype, shape, offsets) fits in this many header bytes."""


def header_limit(tensors: int) -> int:
    """The largest header an update of ``tensors`` tensors may have."""
    return HEADER_BASE_BYTES + HEADER_BYTES_PER_TENSOR * tensors


def check_header(prefix: bytes, total_size: int, max_tensors: int, whose: str) -> None:
    """Refuse a safetensors header beyond the bounds; ``prefix`` holds at least its first bytes.

    Parameters
    ----------
    prefix
        The file's first ``8 + header_limit(max_tensors)`` bytes (or all of it, if shorter).
    total_size
        The whole file's size: every tensor's offsets must lie inside it.
    max_tensors
        The tensors the model exchanges: a header naming more is refused before it is parsed.
    whose
        Names the update in the error, e.g. "bob's round 3 update".
    """
    bad = f"{whose} is not valid safetensors"
    if len(prefix) < 8 or total_size < 8:
        raise errors.AggregationError(f"{bad}: shorter than its 8-byte header length")
    length = int.from_bytes(prefix[:8], "little")
    limit = header_limit(max_tensors)
    if length > limit:
        raise errors.AggregationError(
            f"{bad}: header length {length} is over the limit {limit} for {max_tensors} tensors"
        )
    if 8 + length > min(len(prefix), total_size):
        raise errors.AggregationError(f"{bad}: header length {length} runs past the file's end")
    try:
        header: Any = json.loads(prefix[8 : 8 + length])
    except (ValueError, RecursionError) as exc:
        raise errors.AggregationError(f"{bad}: header is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(header, dict):
        raise errors.AggregationError(f"{bad}: header is not a JSON object")
    names = [name for name in header if name != "__metadata__"]
    if len(names) > max_tensors:
        raise errors.AggregationError(
            f"{bad}: header names {len(names)} tensors, the model exchanges {max_tensors}"
        )
    data_size = total_size - 8 - length
    for name in names:
        entry = header[name]
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise errors.AggregationError(
                f"{bad}: tensor {name[:64]!r} data_offsets {str(offsets)[:64]} are not inside the file"
            )
