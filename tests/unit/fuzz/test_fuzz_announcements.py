"""Announcements in peers' txs: any metadata decodes to an Announcement or None, signers to a set."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydrafed.hydra import tx
from tests.unit.fuzz.strategies import PROFILE, cbor_values, json_values, mutated

pytestmark = pytest.mark.unit

GOOD = {
    "fed": "fed", "round": 1, "party": "alice", "uri": "s3://alice/fed/rounds/1/alice.safetensors",
    "sha256": "ab" * 32, "samples": 10, "metrics": {"loss": "0.5"}, "specHash": "cd" * 32,
}  # fmt: skip


def _envelope(aux: Any, witnesses: Any = None) -> dict[str, str]:
    body = cbor2.dumps({0: [], 1: [], 2: 0})
    return {"cborHex": (b"\x84" + body + cbor2.dumps(witnesses or {}) + b"\xf5" + cbor2.dumps(aux)).hex()}


def _check(envelope: Any) -> None:
    decoded = tx.decode_announcement(envelope)
    assert decoded is None or isinstance(decoded, tx.Announcement)
    assert isinstance(tx.tx_signers(envelope), set)


def test_the_unmutated_announcement_decodes() -> None:
    assert tx.decode_announcement(_envelope(cbor2.CBORTag(259, {0: {1990: GOOD}}))) is not None


@PROFILE
@given(st.sampled_from(sorted(GOOD)), cbor_values(16))
def test_one_field_of_any_type(field: str, value: Any) -> None:
    _check(_envelope(cbor2.CBORTag(259, {0: {1990: {**GOOD, field: value}}})))


@PROFILE
@given(cbor_values(30), cbor_values(10))
def test_any_auxiliary_data_and_witnesses(aux: Any, witnesses: Any) -> None:
    _check(_envelope(aux, witnesses))


@PROFILE
@given(mutated(bytes.fromhex(_envelope(cbor2.CBORTag(259, {0: {1990: GOOD}}))["cborHex"])))
def test_mutated_bytes_of_an_announcement(data: bytes) -> None:
    _check({"cborHex": data.hex(), "txId": "00" * 32})


@PROFILE
@given(json_values())
def test_any_envelope_json(envelope: Any) -> None:
    if isinstance(envelope, dict):
        _check(envelope)
