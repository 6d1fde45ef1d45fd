"""The operator as the chart runs it: its rendered arguments and the chart ServiceAccount's token.

kwok does not run containers, so the operator runs here as a local process, and in the built
operator image under podman where that image exists (tests/integration/helm/launch.py), with
exactly the args and POD_NAMESPACE of the installed Deployment and the token of the chart's
ServiceAccount. It generates the local party's key Secret and read grant, builds the node
children and reaches Provisioning (kwok runs no hydra-node, so the node stays unreachable), then
releases the Federation on delete: an RBAC rule the chart lacks shows up as a Forbidden here,
not at a user's.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hydrafed.hydra import keys as keys_mod
from hydrafed.operator import names
from hydrafed.ports import free_port
from hydrafed.storage import LocalStore
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.operator import service_account_kubeconfig
from tests.integration.helm import launch
from tests.integration.helm.test_chart import CHART, FEDS, PARTIES, helm
from tests.integration.operator.manifests import obj, secret

pytestmark = pytest.mark.integration


def _healthy(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r,
    ):
        return bool(r.status == 200)
    return False


def _status(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return dict(kube.get(f"{FEDS.format(ns=namespace)}/digits").get("status") or {})


def _manifests(kube: KubeClient, namespace: str, root: Path) -> None:
    """A Federation on local buckets; alice is this cluster's party, bob a remote one with a grant."""
    LocalStore(root).ensure_bucket("bob-digits")
    grant = LocalStore(root).share("bob-digits", "digits/rounds/")
    kube.create(f"/api/v1/namespaces/{namespace}/secrets", secret("bob-grant", {"grant": grant}))
    bob = keys_mod.generate_party_keys("bob")
    fed_spec = {"head": {"network": "preview"}, "storage": {"backend": "local", "root": str(root)}}
    kube.create(FEDS.format(ns=namespace), obj("Federation", "digits", fed_spec))
    kube.create(
        PARTIES.format(ns=namespace),
        obj("Party", "alice", {"federation": "digits", "local": True, "bucket": "alice-digits"}),
    )
    bob_spec = {
        "federation": "digits",
        "hydraVkey": bob.hydra_vkey_hex,
        "cardanoVkey": bytes(bob.payment_verification_key.payload).hex(),
        "peerAddress": "bob.example.org:5001",
        "bucket": "bob-digits",
        "readGrantSecretRef": {"name": "bob-grant"},
    }
    kube.create(PARTIES.format(ns=namespace), obj("Party", "bob", bob_spec))


@pytest.mark.parametrize("how", ["process", "podman"])
def test_operator_with_the_chart_token_and_args_generates_keys_reconciles_and_releases(
    how: str, k8s_cluster: Cluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    if how == "podman" and (why := launch.podman_missing()):
        pytest.skip(why)
    # Prepare: install, then take the Deployment's args and the chart ServiceAccount's token
    helm(k8s_cluster, "install", "rel", str(CHART), "--namespace", namespace)
    pod_spec = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/rel-operator")["spec"]["template"]
    rendered: list[str] = pod_spec["spec"]["containers"][0]["args"]
    health, metrics = free_port(), free_port()
    args = [
        f"--health-port={health}" if a.startswith("--health-port")
        else f"--metrics-port={metrics}" if a.startswith("--metrics-port") else a
        for a in rendered
    ]  # fmt: skip
    kubeconfig = service_account_kubeconfig(
        k8s_cluster, kube, namespace, "rel-operator", tmp_path / "kubeconfig"
    )
    root = tmp_path / "buckets"
    root.mkdir()
    log = tmp_path / "operator.log"
    name = f"hydrafed-operator-{secrets.token_hex(4)}"
    proc = launch.start_operator(
        how,
        args,
        kubeconfig=kubeconfig,
        ca_file=k8s_cluster.ca_file,
        namespace=namespace,
        storage_root=root,
        log=log,
        name=name,
    )
    core = f"/api/v1/namespaces/{namespace}"
    try:
        kube.wait_for(
            "the operator's /healthz",
            lambda: proc.poll() is None and _healthy(health),
            timeout=120,
            message=lambda: log.read_text(errors="replace")[-3000:],
        )

        # Execute
        _manifests(kube, namespace, root)
        provisioning = kube.wait_for(
            "Provisioning: keys, grant and node children made; kwok runs no hydra-node",
            lambda: (s := _status(kube, namespace)).get("phase") == "Provisioning" and s,
            timeout=90,
            message=lambda: log.read_text(errors="replace")[-3000:],
        )
        key_secret = kube.get(f"{core}/secrets/{names.key_secret('alice')}")
        grant_secret = kube.get(f"{core}/secrets/{names.grant_secret('alice')}")
        statefulsets = kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets")["items"]
        kube.delete(f"{FEDS.format(ns=namespace)}/digits")
        kube.wait_for(
            "the Federation released by the finalizer",
            lambda: kube.get(FEDS.format(ns=namespace))["items"] == [],
            timeout=90,
        )
        time.sleep(1)
    finally:
        launch.stop_operator(how, proc, name)
    text = log.read_text(errors="replace")

    # Assert: the operator ran with the chart's args, as the chart's ServiceAccount
    assert rendered[0] == "operator" and "--worker-image=ghcr.io/hydrafed/worker:0.1.0" in rendered
    assert f"system:serviceaccount:{namespace}:rel-operator" not in text  # no RBAC denial quoted
    assert "Forbidden" not in text and " 403" not in text, text[-4000:]
    # Assert: the key Secret (generated once), the read grant, the node StatefulSet, the status
    assert {"hydra.sk", "payment.sk"} <= set(key_secret["data"]), sorted(key_secret["data"])
    granted = base64.b64decode(next(iter(grant_secret["data"].values()))).decode()
    assert "alice-digits" in granted and "digits/rounds/" in granted
    assert [s["metadata"]["name"] for s in statefulsets] == [names.node("digits", "alice")]
    assert "NodeUnreachable" in str(provisioning["conditions"])
    if how == "podman":
        assert "Traceback" not in text, text[-4000:]
