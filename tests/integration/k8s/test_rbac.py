"""RBAC and service-account tokens work as in a real cluster: what the operator's Role must grant."""

from __future__ import annotations

import dataclasses

import pytest

from hydrafed import spec
from tests.fixtures.kube import ApiError, KubeClient
from tests.integration.k8s import cases

pytestmark = pytest.mark.integration


def _service_account_client(kube: KubeClient, namespace: str, name: str) -> KubeClient:
    kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    token = kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request)
    return dataclasses.replace(kube, token=token["status"]["token"])


def test_status_patch_needs_the_status_subresource_grant(
    kube: KubeClient, crds_installed: list[str], namespace: str
) -> None:
    # Prepare: an account that may read federations and patch only their status
    kube.create(
        f"/apis/{spec.API_GROUP}/{spec.API_VERSION}/namespaces/{namespace}/federations", cases.federation({})
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    operator = _service_account_client(kube, namespace, "operator")
    path = f"/apis/{spec.API_GROUP}/{spec.API_VERSION}/namespaces/{namespace}/federations"
    with pytest.raises(ApiError) as before:
        operator.get(path)
    kube.create(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "status-writer"},
            "rules": [
                {
                    "apiGroups": [spec.API_GROUP],
                    "resources": ["federations"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [spec.API_GROUP], "resources": ["federations/status"], "verbs": ["patch"]},
            ],
        },
    )
    kube.create(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "status-writer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}],
        },
    )

    # Execute
    listed = operator.wait_for("the RoleBinding to take effect", lambda: operator.get(path)["items"])
    operator.merge_patch(f"{path}/digits/status", {"status": {"phase": "Provisioning"}})
    with pytest.raises(ApiError) as spec_patch:
        operator.merge_patch(f"{path}/digits", {"spec": {"roundPolicy": {"timeoutSeconds": 5}}})

    # Assert
    assert before.value.code == 403
    assert [f["metadata"]["name"] for f in listed] == ["digits"]
    assert kube.get(f"{path}/digits")["status"]["phase"] == "Provisioning"
    assert spec_patch.value.code == 403
