"""cbor.py: any bytes either decode within the limits or raise CBORLimitError; valid CBOR round-trips."""

from __future__ import annotations

import contextlib
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydrafed.hydra import cbor, limits
from tests.unit.fuzz.strategies import PROFILE, cbor_values, mutated

pytestmark = pytest.mark.unit

VALID_TX = bytes.fromhex(
    "84a300d90102818258201111111111111111111111111111111111111111111111111111111111111111000181825839"
    "00" + "aa" * 56 + "1a001e84800200a0f5f6"
)


def _within_limits(value: Any, depth: int = 0) -> bool:
    """Values the walker must accept: depth, plain Cardano tags, integers of at most 64 bytes."""
    if depth > limits.MAX_CBOR_DEPTH:
        return False
    if isinstance(value, bool) or value is None or isinstance(value, float | str | bytes):
        return True
    if isinstance(value, int):  # beyond 64 bits cbor2 writes a bignum of the magnitude's bytes
        magnitude = value if value >= 0 else -1 - value
        return (magnitude.bit_length() + 7) // 8 <= max(8, limits.MAX_BIGNUM_BYTES)
    if isinstance(value, list):
        return all(_within_limits(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_within_limits(k, depth + 1) and _within_limits(v, depth + 1) for k, v in value.items())
    if isinstance(value, cbor2.CBORTag):  # tags without a meaning to cbor2 (258 wants an array, ...)
        return value.tag in {24, 121, 1280} and _within_limits(value.value, depth + 1)
    return False


@PROFILE
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_the_limit_error(data: bytes) -> None:
    with contextlib.suppress(cbor.CBORLimitError):
        cbor.loads(data)
    try:
        spans = cbor.tx_item_spans(data)
    except cbor.CBORLimitError:
        return
    assert b"".join(spans) == data[1:]


@PROFILE
@given(mutated(VALID_TX))
def test_mutated_transactions_decode_or_raise_the_limit_error(data: bytes) -> None:
    try:
        spans = cbor.tx_item_spans(data)
    except cbor.CBORLimitError:
        return
    for span in spans:  # a checked span decodes, or cbor2 refuses a tag's contents: the same error
        with contextlib.suppress(cbor.CBORLimitError):
            cbor.loads(span)


@PROFILE
@given(cbor_values())
def test_encoded_values_within_the_limits_round_trip(value: Any) -> None:
    data = cbor2.dumps(value)
    if not _within_limits(value) or len(data) > limits.MAX_TX_BYTES:
        with contextlib.suppress(cbor.CBORLimitError):
            cbor.loads(data)
        return
    assert cbor2.dumps(cbor.loads(data)) == data


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00", "declares 4294967296 entries"),
        (b"\x5b\x00\x00\x01\x00\x00\x00\x00\x00" + b"a" * 10, "declares 1099511627776 bytes"),
        (b"\x81" * 40 + b"\x00", "deeper than 32"),
        (bytes.fromhex("d81c81d81d00"), "tag 28"),
        (b"\xc2\x59\x0b\xb8" + b"\xff" * 3000, "bignum"),
        (b"\xc1\x63abc", "tag 1"),
        (b"\xff", "break"),
        (b"\x1c", "reserved"),
        (b"\x00" * (limits.MAX_TX_BYTES + 1), "limit"),
    ],
)
def test_each_limit_is_named(data: bytes, words: str) -> None:
    with pytest.raises(cbor.CBORLimitError, match=words):
        cbor.loads(data)
