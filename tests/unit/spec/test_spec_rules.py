"""pydantic refuses the same manifests the API server refuses, with the same field named."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from hydrafed import spec
from tests.conftest import REPO_ROOT
from tests.fixtures.kube import load_yaml_documents
from tests.integration.k8s import cases, samples

pytestmark = pytest.mark.unit

MODELS: dict[str, type[pydantic.BaseModel]] = {"Federation": spec.FederationSpec, "Party": spec.PartySpec}


@pytest.mark.parametrize("case", [c for c in cases.INVALID if not c.api_only], ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(case: cases.Invalid) -> None:
    # Execute
    with pytest.raises(pydantic.ValidationError) as caught:
        MODELS[case.manifest["kind"]].model_validate(case.manifest["spec"])

    # Assert
    text = str(caught.value)
    for needle in (case.needle, *case.extra_needles):
        assert needle in text, text


def test_there_are_at_least_ten_distinct_invalid_cases() -> None:
    assert len({c.id for c in cases.INVALID}) == len(cases.INVALID) >= 10


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_specs(path: Any) -> None:
    documents = load_yaml_documents(path)
    assert documents
    for manifest in documents:
        assert manifest["apiVersion"] == f"{spec.API_GROUP}/{spec.API_VERSION}"
        MODELS[manifest["kind"]].model_validate(manifest["spec"])


def test_examples_have_exactly_one_local_party_per_federation() -> None:
    parties = [d for d in load_yaml_documents(REPO_ROOT / "examples" / "party.yaml") if d["kind"] == "Party"]
    assert [p["metadata"]["name"] for p in parties if p["spec"].get("local")] == ["alice"]


@pytest.mark.parametrize(
    "status", [samples.FEDERATION_STATUS, samples.PARTY_STATUS], ids=["federation", "party"]
)
def test_status_samples_set_every_field(status: pydantic.BaseModel) -> None:
    # A new status field needs a sample value, so the round-trip test on the API server covers it.
    assert samples.unset_fields(status) == []


@pytest.mark.parametrize(
    "status", [samples.FEDERATION_STATUS, samples.PARTY_STATUS], ids=["federation", "party"]
)
def test_status_wire_form_reads_back_equal(status: pydantic.BaseModel) -> None:
    # Execute
    wire = spec.to_wire(status)

    # Assert
    assert type(status).model_validate(wire) == status
    assert "observedGeneration" in wire and "observed_generation" not in wire


def test_status_reading_ignores_fields_it_does_not_know() -> None:
    # A newer operator may write more; an older reader must not fail on it.
    status = spec.FederationStatus.model_validate({"phase": "Funding", "futureField": 1})
    assert status.phase == spec.FederationPhase.FUNDING


def test_remote_party_needs_the_exchanged_facts() -> None:
    with pytest.raises(pydantic.ValidationError, match="hydraVkey, cardanoVkey, peerAddress"):
        spec.PartySpec(federation="digits", bucket="bob-digits")


def test_local_party_needs_no_remote_facts() -> None:
    party = spec.PartySpec(federation="digits", bucket="alice-digits", local=True, gpus=2)
    assert party.gpus == 2
