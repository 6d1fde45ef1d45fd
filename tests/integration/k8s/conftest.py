"""Fixtures of the Kubernetes tests: the session control plane, installed CRDs, a namespace each."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator

import pytest

from hydrafed import crds
from tests.conftest import REPO_ROOT
from tests.fixtures.cluster import Cluster, k8s_cluster
from tests.fixtures.kube import KubeClient, load_yaml_documents

__all__ = ["crds_installed", "k8s_cluster", "kube", "namespace"]


@pytest.fixture(scope="session")
def kube(k8s_cluster: Cluster) -> KubeClient:
    """An admin client of the session cluster."""
    return k8s_cluster.client()


@pytest.fixture(scope="session")
def crds_installed(kube: KubeClient) -> list[str]:
    """The committed crds/*.yaml applied and Established; returns the CRD names."""
    names = []
    for kind in crds.KINDS:
        (crd,) = load_yaml_documents(REPO_ROOT / "crds" / crds.file_name(kind))
        kube.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd)
        names.append(crd["metadata"]["name"])
    for name in names:
        kube.wait_for(f"CRD {name} Established", functools.partial(_established, kube, name), timeout=60)
    return names


def _established(kube: KubeClient, name: str) -> bool:
    obj = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture
def namespace(kube: KubeClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the namespace controller empties it)."""
    name = f"t-{secrets.token_hex(4)}"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")
