"""Fixtures of the Helm chart tests: the session control plane, an admin client, a namespace each."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.fixtures.cluster import Cluster, k8s_cluster
from tests.fixtures.kube import KubeClient

__all__ = ["k8s_cluster", "kube", "namespace"]


@pytest.fixture(scope="session")
def kube(k8s_cluster: Cluster) -> KubeClient:
    """An admin client of the session cluster."""
    return k8s_cluster.client()


@pytest.fixture
def namespace(kube: KubeClient) -> Iterator[str]:
    """A fresh namespace for one release, deleted afterwards."""
    name = f"h-{secrets.token_hex(4)}"
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(f"/api/v1/namespaces/{name}")
