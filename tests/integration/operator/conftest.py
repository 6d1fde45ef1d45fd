"""Operator tests: the real control plane, a devnet standing in for the parties' hydra-nodes."""

from __future__ import annotations

from tests.fixtures.cluster import k8s_cluster
from tests.integration.k8s.conftest import crds_installed, kube, namespace

__all__ = ["crds_installed", "k8s_cluster", "kube", "namespace"]
