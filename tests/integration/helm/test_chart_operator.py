"""The operator as the chart runs it: its rendered arguments and the chart ServiceAccount's token.

What it does not prove: key generation and the node children (the Federation stays Pending,
for want of a peer's read grant); docs/operator.md's tests cover those with the same RBAC rules.

kwok does not run containers, so the operator runs here as a local process, but with exactly
the args and POD_NAMESPACE of the installed Deployment and the token of the chart's
ServiceAccount: an RBAC rule the chart lacks shows up as a Forbidden here, not at a user's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hydrafed.ports import free_port
from tests.conftest import REPO_ROOT
from tests.fixtures.cluster import Cluster, write_kubeconfig
from tests.fixtures.kube import KubeClient
from tests.integration.helm.test_chart import CHART, FEDS, PARTIES, helm

pytestmark = pytest.mark.integration
HYDRAFED = REPO_ROOT / ".venv" / "bin" / "hydrafed"


def _healthy(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r,
    ):
        return bool(r.status == 200)
    return False


def _message(kube: KubeClient, namespace: str) -> str:
    return str((kube.get(f"{FEDS.format(ns=namespace)}/digits").get("status") or {}).get("message") or "")


def test_operator_with_the_chart_token_and_args_reconciles_and_releases_a_federation(
    k8s_cluster: Cluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    # Prepare: install, then take the Deployment's args and the chart ServiceAccount's token
    helm(k8s_cluster, "install", "rel", str(CHART), "--namespace", namespace)
    pod_spec = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/rel-operator")["spec"]["template"]
    args: list[str] = pod_spec["spec"]["containers"][0]["args"]
    health, metrics = free_port(), free_port()
    args = [
        f"--health-port={health}" if a.startswith("--health-port")
        else f"--metrics-port={metrics}" if a.startswith("--metrics-port") else a
        for a in args
    ]  # fmt: skip
    token = kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/rel-operator/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, k8s_cluster.server, k8s_cluster.ca_file, token)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "operator.log"
    fed: dict[str, Any] = {
        "apiVersion": "hydrafed.io/v1alpha1",
        "kind": "Federation",
        "metadata": {"name": "digits"},
    }
    party = {
        "apiVersion": "hydrafed.io/v1alpha1",
        "kind": "Party",
        "metadata": {"name": "alice"},
        "spec": {"federation": "digits", "local": True, "bucket": "alice-digits"},
    }
    bob = {
        "apiVersion": "hydrafed.io/v1alpha1",
        "kind": "Party",
        "metadata": {"name": "bob"},
        "spec": {
            "federation": "digits",
            "bucket": "bob-digits",
            "hydraVkey": "ab" * 32,
            "cardanoVkey": "cd" * 32,
            "peerAddress": "hydra.bob.example.org:5001",
        },
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([str(HYDRAFED), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        kube.wait_for("the operator's /healthz", lambda: proc.poll() is None and _healthy(health), timeout=60)

        # Execute
        kube.create(FEDS.format(ns=namespace), fed)
        kube.create(PARTIES.format(ns=namespace), party)
        kube.create(PARTIES.format(ns=namespace), bob)
        phase = kube.wait_for(
            "the operator's verdict on the parties in the Federation status",
            lambda: "Party bob" in (msg := _message(kube, namespace)) and msg,
            timeout=60,
        )
        kube.delete(f"{FEDS.format(ns=namespace)}/digits")
        kube.wait_for(
            "the Federation released by the finalizer",
            lambda: kube.get(FEDS.format(ns=namespace))["items"] == [],
            timeout=90,
        )
        time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text(errors="replace")

    # Assert
    # bob (remote) lacks a read grant: the operator read both Parties, said so in the status
    # (a status patch) and released the Federation on delete (its finalizer): all with the chart's RBAC
    assert "Party bob has no spec.readGrantSecretRef" in phase
    assert "Forbidden" not in text and " 403" not in text, text[-4000:]
