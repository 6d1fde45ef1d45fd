"""The spec models: any manifest is valid or a ValidationError naming the field; strict as the API server.

The API server refuses ``"yes"`` for a boolean, ``"5"`` or ``5.5`` for an integer and port 99999
(the CRD schema is generated from these models); the models refuse the same, so the CLI and the
worker config see the same errors a ``kubectl apply`` does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydrafed import spec
from tests.unit.fuzz.strategies import PROFILE, json_values

pytestmark = pytest.mark.unit

FEDERATION: dict[str, Any] = {
    "training": {"model": "mlp", "dataset": "digits", "rounds": 3, "learningRate": 0.1, "lora": {"rank": 4}},
    "roundPolicy": {"timeoutSeconds": 60},
    "head": {"depositLovelace": 100_000_000, "announceLovelace": 1_000_000},
    "storage": {"backend": "s3", "endpoint": "http://seaweed:8333", "pathStyle": True},
    "close": False,
}
PARTY: dict[str, Any] = {
    "federation": "fed",
    "local": False,
    "hydraVkey": "ab" * 32,
    "cardanoVkey": "cd" * 32,
    "peerAddress": "bob.example.org:5001",
    "bucket": "bob-updates",
}
MODELS: list[tuple[type[pydantic.BaseModel], dict[str, Any]]] = [
    (spec.FederationSpec, FEDERATION),
    (spec.PartySpec, PARTY),
]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _paths(v, (*prefix, k))] or [prefix]
    return [prefix]


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    return {**doc, path[0]: _replace(doc[path[0]], path[1:], value)}


def _validate(model: type[pydantic.BaseModel], doc: Any) -> None:
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as exc:
        line = spec.describe_validation_error(exc)
        assert line.startswith("spec")


@pytest.mark.parametrize(("model", "doc"), MODELS)
def test_the_unmutated_manifests_are_valid(model: type[pydantic.BaseModel], doc: dict[str, Any]) -> None:
    model.model_validate(doc)


@PROFILE
@given(st.sampled_from(MODELS), st.data())
def test_one_field_of_any_type(
    case: tuple[type[pydantic.BaseModel], dict[str, Any]], data: st.DataObject
) -> None:
    model, doc = case
    path = data.draw(st.sampled_from(_paths(doc)))
    _validate(model, _replace(doc, path, data.draw(json_values(12))))


@PROFILE
@given(st.sampled_from([spec.FederationSpec, spec.PartySpec, spec.WorkerConfig]), json_values())
def test_any_document(model: type[pydantic.BaseModel], doc: Any) -> None:
    with contextlib.suppress(pydantic.ValidationError):
        model.model_validate(doc)


@pytest.mark.parametrize(
    ("model", "path", "value", "field"),
    [
        (spec.FederationSpec, ("close",), "yes", "spec.close"),
        (spec.FederationSpec, ("storage", "pathStyle"), "true", "spec.storage.pathStyle"),
        (spec.FederationSpec, ("training", "rounds"), "5", "spec.training.rounds"),
        (spec.FederationSpec, ("training", "rounds"), 5.5, "spec.training.rounds"),
        (spec.FederationSpec, ("training", "rounds"), True, "spec.training.rounds"),
        (spec.FederationSpec, ("training", "learningRate"), "0.1", "spec.training.learningRate"),
        (spec.FederationSpec, ("storage", "endpoint"), "http://seaweed:99999", "spec.storage.endpoint"),
        (spec.PartySpec, ("peerAddress",), "bob.example.org:99999", "spec.peerAddress"),
        (spec.PartySpec, ("peerAddress",), "bob.example.org:0", "spec.peerAddress"),
        (spec.PartySpec, ("local",), "no", "spec.local"),
    ],
)
def test_strict_where_the_api_server_is(
    model: type[pydantic.BaseModel], path: tuple[str, ...], value: Any, field: str
) -> None:
    doc = FEDERATION if model is spec.FederationSpec else PARTY
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(_replace(doc, path, value))
    assert spec.describe_validation_error(caught.value).startswith(f"{field}:")


def test_a_local_party_node_url_port_is_bounded() -> None:
    local = {"federation": "fed", "local": True, "bucket": "alice-updates"}
    spec.PartySpec.model_validate({**local, "nodeApiUrl": "ws://[::1]:4001/"})
    with pytest.raises(pydantic.ValidationError, match="nodeApiUrl"):
        spec.PartySpec.model_validate({**local, "nodeApiUrl": "ws://alice-hydra:70000"})
