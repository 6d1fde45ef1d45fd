"""Peers' safetensors headers: any bytes are accepted within the bounds or refused naming why."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

from hydrafed import errors
from hydrafed.worker import safetensors_header as sh
from tests.unit.fuzz.strategies import PROFILE, json_values, mutated

pytestmark = pytest.mark.unit

TENSORS = 3
VALID = safetensors.numpy.save({f"w{i}": np.ones((4, 3), dtype=np.float32) for i in range(TENSORS)})


def _file(header: dict[str, Any], payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def _check(data: bytes) -> None:
    try:
        sh.check_header(data[: 8 + sh.header_limit(TENSORS)], len(data), TENSORS, "bob's round 1 update")
    except errors.AggregationError as exc:
        assert str(exc).startswith("bob's round 1 update is not valid safetensors")
        return
    try:  # the header passed: safetensors itself may still refuse the file, never crash
        safetensors.numpy.load(data)
    except Exception as exc:  # safetensors' own error types, as load_peer_update catches
        assert not isinstance(exc, MemoryError | RecursionError)


def test_a_real_file_passes() -> None:
    sh.check_header(VALID, len(VALID), TENSORS, "x")


@PROFILE
@given(mutated(VALID))
def test_mutated_files(data: bytes) -> None:
    _check(data)


@PROFILE
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@PROFILE
@given(json_values(30), st.integers(0, 2**64 - 1), st.binary(max_size=64))
def test_any_header_json_and_declared_length(header: Any, declared: int, payload: bytes) -> None:
    text = json.dumps(header).encode()
    _check(struct.pack("<Q", len(text)) + text + payload)
    _check(struct.pack("<Q", declared) + text + payload)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (struct.pack("<Q", 2**40) + b"{}", "over the limit"),
        (struct.pack("<Q", 100) + b"{}", "past the file's end"),
        (struct.pack("<Q", 4) + b"[1] ", "not a JSON object"),
        (_file({f"t{i}": {"data_offsets": [0, 0]} for i in range(TENSORS + 1)}), "names 4 tensors"),
        (_file({"t": {"data_offsets": [0, 99]}}), "data_offsets"),
        (_file({"t": {"data_offsets": [5, 1]}}, b"x" * 8), "data_offsets"),
        (_file({"t": {"data_offsets": "all"}}), "data_offsets"),
    ],
)
def test_each_bound_is_named(data: bytes, words: str) -> None:
    with pytest.raises(errors.AggregationError, match=words):
        sh.check_header(data, len(data), TENSORS, "bob's round 1 update")
