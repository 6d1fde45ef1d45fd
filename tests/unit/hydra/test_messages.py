"""API models: every golden sample of hydra-node parses; unknown tags survive; versions are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.hydra import client, messages

pytestmark = pytest.mark.unit


def _samples(reference: Path, kind: str) -> list[tuple[str, dict[str, object]]]:
    found: list[tuple[str, dict[str, object]]] = []
    for path in sorted((reference / "golden" / kind).glob("*.json")):
        found.extend((path.stem, s) for s in json.loads(path.read_text())["samples"])
    return found


def test_every_golden_server_output_parses_to_its_model(hydra_reference: Path) -> None:
    samples = _samples(hydra_reference, "ServerOutput")
    assert len(samples) >= 30
    for stem, sample in samples:
        out = messages.parse_output(sample)
        assert type(out).__name__ == stem, f"{stem} parsed as {type(out).__name__}"
        assert out.to_json()["tag"] == stem


def test_every_golden_client_input_parses_and_round_trips(hydra_reference: Path) -> None:
    for stem, sample in _samples(hydra_reference, "ClientInput"):
        parsed = messages.parse_input(sample)
        assert type(parsed).__name__ == stem
        assert parsed.to_json() == {k: v for k, v in sample.items() if v is not None}


def test_unknown_tag_is_kept_raw() -> None:
    out = messages.parse_output({"tag": "SomethingNew", "seq": 7, "payload": {"x": 1}})
    assert isinstance(out, messages.RawOutput)
    assert out.seq == 7 and out.to_json()["payload"] == {"x": 1}
    broken = messages.parse_output({"tag": "TxValid", "seq": 1})  # missing fields: kept raw too
    assert isinstance(broken, messages.RawOutput)


def test_bad_client_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown tag"):
        messages.parse_input({"tag": "Commit"})
    with pytest.raises(ValueError):
        messages.parse_input({"tag": "NewTx", "transaction": "84a4..."})  # must be an object


def test_greetings_repr_never_shows_env() -> None:
    greetings = messages.parse_output(
        {
            "tag": "Greetings",
            "me": {"vkey": "ab" * 32},
            "headStatus": "Idle",
            "hydraNodeVersion": "2.1.0",
            "env": {"signingKey": "SECRET-SIGNING-KEY"},
        }
    )
    assert "SECRET" not in repr(greetings) and "SECRET" not in str(greetings)


@pytest.mark.parametrize("version", ["1.3.0-abc", "0.22.4", "unknown"])
def test_old_nodes_are_refused(version: str) -> None:
    with pytest.raises(errors.HeadError, match=r"needs hydra-node 2\.x"):
        client.check_version(version)


def test_new_nodes_are_accepted() -> None:
    client.check_version("2.3.0-ca8d19b")
    client.check_version("3.0.0")
