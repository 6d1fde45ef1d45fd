"""The devnet's WebSocket input path: any frame text is answered, never raised, never persisted.

``Head.handle_text`` is what a node runs for every frame a client sends. Frames are any text,
any JSON, and NewTx inputs whose transaction is any JSON or any CBOR; the head is open with an
empty UTxO, so nothing can be valid. Every answer must be JSON, and the persisted history must
not grow.
"""

from __future__ import annotations

import json
from typing import Any

import cbor2
import pycardano
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydrafed.hydra import keys
from hydrafed.hydra.devnet import emulated_head
from tests.unit.fuzz.strategies import PROFILE, cbor_values, json_values

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> emulated_head.Head:
    parties = tuple(keys.generate_party_keys(n) for n in ("alice", "bob"))
    config = emulated_head.HeadConfig(
        parties=parties,
        network=pycardano.Network.TESTNET,
        contestation_period=1.0,
        deposit_activation=0.0,
        deposit_period=1.0,
        protocol_parameters=dict(emulated_head.DEFAULT_PROTOCOL_PARAMETERS),
    )
    opened = emulated_head.Head(config, tmp_path_factory.mktemp("devnet"))
    opened.open_logs()
    opened.init()
    return opened


def _frames(head: emulated_head.Head) -> list[Any]:
    received: list[Any] = []
    head.nodes[0].sinks.add(lambda frame: received.append(json.loads(frame.text)))
    return received


def _send(head: emulated_head.Head, text: str) -> None:
    received = _frames(head)
    persisted = [len(n.history) for n in head.nodes]
    try:
        head.handle_text(0, text)
    finally:
        head.nodes[0].sinks.clear()
    assert [len(n.history) for n in head.nodes] == persisted
    for msg in received:
        assert msg["tag"] in ("InvalidInput", "CommandFailed", "TxInvalid"), msg["tag"]
        assert len(json.dumps(msg)) < 300_000


@PROFILE
@given(st.text(max_size=300))
def test_any_text(head: emulated_head.Head, text: str) -> None:
    _send(head, text)


@PROFILE
@given(json_values())
def test_any_json(head: emulated_head.Head, data: Any) -> None:
    _send(head, json.dumps(data))


@PROFILE
@given(st.one_of(json_values(20), st.builds(lambda v: {"cborHex": cbor2.dumps(v).hex()}, cbor_values(20))))
def test_any_new_tx(head: emulated_head.Head, transaction: Any) -> None:
    _send(head, json.dumps({"tag": "NewTx", "transaction": transaction}))


def test_the_head_is_open(head: emulated_head.Head) -> None:
    assert head.status == "Open"
