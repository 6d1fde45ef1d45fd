"""The generated CRDs on a real kube-apiserver: install, examples, defaults, validation, status."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel

from hydrafed import spec
from tests.conftest import REPO_ROOT
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import ApiError, KubeClient, load_yaml_documents, object_path
from tests.integration.k8s import cases, samples

pytestmark = pytest.mark.integration

GROUP_PATH = f"/apis/{spec.API_GROUP}/{spec.API_VERSION}"
MODELS: dict[str, type[BaseModel]] = {"Federation": spec.FederationSpec, "Party": spec.PartySpec}


def _collection(namespace: str, plural: str) -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/{plural}"


def _create(kube: KubeClient, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    plural = {"Federation": "federations", "Party": "parties"}[manifest["kind"]]
    return kube.create(_collection(namespace, plural), manifest)


def test_crds_are_established_with_names_and_status_subresource(
    kube: KubeClient, crds_installed: list[str]
) -> None:
    # Execute
    resources = kube.get(GROUP_PATH)["resources"]

    # Assert
    by_name = {r["name"]: r for r in resources}
    assert set(crds_installed) == {"federations.hydrafed.io", "parties.hydrafed.io"}
    assert by_name["federations"]["shortNames"] == ["fed", "feds"]
    assert by_name["parties"]["shortNames"] == ["pty"]
    assert by_name["federations"]["namespaced"] and by_name["parties"]["namespaced"]
    assert {"federations/status", "parties/status"} <= set(by_name)
    assert "hydrafed" in by_name["federations"]["categories"]


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_applies(
    kube: KubeClient, crds_installed: list[str], namespace: str, path: Any
) -> None:
    # Prepare
    documents = load_yaml_documents(path)
    assert documents, f"{path} has no documents"

    for manifest in documents:
        # Execute
        created = kube.apply(object_path(manifest, namespace=namespace), manifest)

        # Assert: the server kept what the example says (nothing pruned) and pydantic agrees
        model = MODELS[manifest["kind"]]
        assert _contains(created["spec"], manifest["spec"]), (
            f"{path}: {manifest['metadata']['name']} lost fields"
        )
        model.model_validate(created["spec"])


def _contains(big: Any, small: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    return bool(big == small)


@pytest.mark.parametrize(
    ("manifest", "model"),
    [
        (cases.federation({}), spec.FederationSpec()),
        (
            cases.federation({"training": {"lora": {}}}),
            spec.FederationSpec(training=spec.TrainingSpec(lora=spec.LoraSpec())),
        ),
        (cases.party(cases.REMOTE_PARTY), spec.PartySpec.model_validate(cases.REMOTE_PARTY)),
    ],
    ids=["federation-empty", "federation-lora-defaults", "party-remote"],
)
def test_server_defaults_equal_model_defaults(
    kube: KubeClient, crds_installed: list[str], namespace: str, manifest: dict[str, Any], model: BaseModel
) -> None:
    # Execute
    created = _create(kube, namespace, manifest)

    # Assert: the API server fills in exactly what pydantic fills in
    assert created["spec"] == spec.to_wire(model)


@pytest.mark.parametrize("case", cases.INVALID, ids=lambda c: c.id)
def test_invalid_manifest_is_rejected_naming_the_field(
    kube: KubeClient, crds_installed: list[str], namespace: str, case: cases.Invalid
) -> None:
    # Prepare
    manifest = copy.deepcopy(case.manifest)
    if case.update is not None:
        created = _create(kube, namespace, manifest)
        path = object_path(created, namespace=namespace)

    # Execute
    with pytest.raises(ApiError) as caught:
        if case.update is None:
            _create(kube, namespace, manifest)
        else:
            kube.merge_patch(path, case.update)

    # Assert
    error = caught.value
    assert error.code in (400, 422), error
    assert case.path in error.message, error.message
    for needle in (case.needle, *case.extra_needles):
        assert needle in error.message, error.message


@pytest.mark.parametrize(
    ("manifest", "status", "plural"),
    [
        (cases.federation({}), samples.FEDERATION_STATUS, "federations"),
        (cases.party(cases.LOCAL_PARTY, name="alice"), samples.PARTY_STATUS, "parties"),
    ],
    ids=["federation", "party"],
)
def test_status_patch_round_trips_every_field(
    kube: KubeClient,
    crds_installed: list[str],
    namespace: str,
    manifest: dict[str, Any],
    status: BaseModel,
    plural: str,
) -> None:
    # Prepare
    created = _create(kube, namespace, manifest)
    path = f"{_collection(namespace, plural)}/{created['metadata']['name']}"
    sent = spec.to_wire(status)

    # Execute: a merge patch of the status subresource, as kopf sends it
    kube.merge_patch(f"{path}/status", {"status": sent})
    got = kube.get(path)

    # Assert: nothing pruned, nothing changed, and the model reads it back equal
    assert got["status"] == sent
    assert type(status).model_validate(got["status"]) == status
    assert got["spec"] == created["spec"]


def test_status_is_only_written_through_the_subresource(
    kube: KubeClient, crds_installed: list[str], namespace: str
) -> None:
    # Prepare
    created = _create(kube, namespace, cases.federation({}))
    path = object_path(created, namespace=namespace)

    # Execute: a status in a patch of the main resource is ignored
    kube.merge_patch(path, {"status": {"phase": "Failed"}, "spec": {"roundPolicy": {"timeoutSeconds": 60}}})
    got = kube.get(path)

    # Assert
    assert "status" not in got or "phase" not in got["status"]
    assert got["spec"]["roundPolicy"]["timeoutSeconds"] == 60
    assert got["metadata"]["generation"] == 2


def test_printer_columns_show_phase_round_parties_age(
    kube: KubeClient, crds_installed: list[str], namespace: str
) -> None:
    # Prepare
    created = _create(kube, namespace, cases.federation({}))
    path = object_path(created, namespace=namespace)
    kube.merge_patch(f"{path}/status", {"status": spec.to_wire(samples.FEDERATION_STATUS)})

    # Execute: what kubectl get asks for
    table = kube.request(
        "GET", _collection(namespace, "federations"), params={"includeObject": "None"}, accept=TABLE
    )

    # Assert
    columns = [c["name"] for c in table["columnDefinitions"]]
    normal = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) == 0]
    assert normal == ["Name", "Phase", "Round", "Parties", "Age"]
    assert {"Head", "Snapshot", "Network"} <= set(columns)
    row = table["rows"][0]["cells"]
    assert row[:4] == ["digits", "Training", 3, "3/3"]


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def test_kubectl_explains_fields_and_prints_wide_columns(
    k8s_cluster: Cluster, crds_installed: list[str], namespace: str
) -> None:
    # Prepare
    k8s_cluster.kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples" / "federation.yaml"))

    # Execute
    explained = k8s_cluster.kubectl("explain", "federation.spec.training.rounds")
    listed = k8s_cluster.kubectl("get", "fed", "-n", namespace, "-o", "wide")

    # Assert: descriptions reach users; short name and wide columns work
    assert "Number of federated rounds." in explained.stdout
    header = listed.stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "PHASE", "ROUND", "PARTIES", "AGE"]
    assert {"NETWORK", "HEAD", "SNAPSHOT"} <= set(header)
