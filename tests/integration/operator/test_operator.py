"""One organisation's operator against the real API server and a devnet node: keys, children,
head opening and funding, the worker Job, status, metrics, and deletion closing the head.

The devnet stands in for the hydra-nodes (alice's node is brought by spec.nodeApiUrl); the test
plays bob's organisation by hand (its Party facts, its read grant, its deposit).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hydrafed import spec
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import funding
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.ports import free_base_port
from hydrafed.storage import LocalStore
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.operator import operator_kubeconfig, running_operator
from tests.fixtures.prometheus import Prometheus, check_metrics, prometheus
from tests.integration.operator.manifests import API, secret

pytestmark = pytest.mark.integration
__all__ = ["prometheus"]


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    net = Devnet(
        parties=["alice", "bob"],
        api_port=free_base_port(2),
        state_dir=tmp_path / "devnet",
        contestation_period=2.0,
        deposit_activation=0.05,
    )
    with DevnetThread(net):
        yield net


def _vkey_hex(path: Path) -> str:
    return str(json.loads(path.read_text())["cborHex"])[4:]


def _federation_status(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return dict(kube.get(f"{API}/namespaces/{namespace}/federations/mnist").get("status") or {})


def _setup(kube: KubeClient, namespace: str, devnet: Devnet, tmp_path: Path) -> Path:
    """alice's own keys, bob's facts and grant, the Federation and both Parties; returns the buckets root."""
    root = tmp_path / "buckets"
    alice_dir, bob_dir = devnet.keys_dir("alice"), devnet.keys_dir("bob")
    files = {f: (alice_dir / f).read_text() for f in ("hydra.sk", "hydra.vk", "payment.sk", "payment.vk")}
    kube.create(f"/api/v1/namespaces/{namespace}/secrets", secret("alice-own-keys", files))
    bob_store = LocalStore(root)
    bob_store.ensure_bucket("bob-mnist")
    grant = bob_store.share("bob-mnist", "mnist/rounds/")
    kube.create(f"/api/v1/namespaces/{namespace}/secrets", secret("bob-read-grant", {"grant": grant}))
    kube.create(
        f"{API}/namespaces/{namespace}/federations",
        {
            "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
            "kind": "Federation",
            "metadata": {"name": "mnist"},
            "spec": {
                "training": {"rounds": 2, "sampleLimit": 400},
                "head": {"network": "devnet", "contestationPeriodSeconds": 2, "depositLovelace": 50_000_000},
                "storage": {"backend": "local", "root": str(root)},
            },
        },
    )
    for name, party_spec in (
        (
            "alice",
            {
                "local": True,
                "bucket": "alice-mnist",
                "keySecretRef": {"name": "alice-own-keys"},
                "nodeApiUrl": devnet.urls[0],
                "peerAddress": "alice.example.org:5001",
            },
        ),
        (
            "bob",
            {
                "hydraVkey": _vkey_hex(bob_dir / "hydra.vk"),
                "cardanoVkey": _vkey_hex(bob_dir / "payment.vk"),
                "peerAddress": "bob.example.org:5001",
                "bucket": "bob-mnist",
                "readGrantSecretRef": {"name": "bob-read-grant", "key": "grant"},
            },
        ),
    ):
        kube.create(
            f"{API}/namespaces/{namespace}/parties",
            {
                "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
                "kind": "Party",
                "metadata": {"name": name},
                "spec": {"federation": "mnist", **party_spec},
            },
        )
    return root


async def _deposit_as_bob(devnet: Devnet) -> None:
    bob = keys_mod.load_party_keys(devnet.keys_dir("bob"), "bob")
    async with client_mod.HydraClient(devnet.urls[1], snapshot_utxo=False) as client:
        await funding.commit_funds(client, bob, 50_000_000)


async def test_operator_opens_funds_runs_and_closes_the_head(
    prometheus: Callable[..., Prometheus],
    k8s_cluster: Cluster,
    kube: KubeClient,
    crds_installed: list[str],
    namespace: str,
    devnet: Devnet,
    tmp_path: Path,
) -> None:
    # Prepare
    kubeconfig = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / "operator.kubeconfig")
    _setup(kube, namespace, devnet, tmp_path)
    ns = f"/api/v1/namespaces/{namespace}"
    alice_vkey = _vkey_hex(devnet.keys_dir("alice") / "hydra.vk")

    with running_operator(kubeconfig, [namespace], tmp_path, "--worker-image", "hydrafed-worker:test") as op:
        # Execute / Assert: alice (first in sorted order) opens the head and deposits; bob has not
        funding_status = kube.wait_for(
            "the Federation waiting for bob's deposit",
            lambda: (
                (s := _federation_status(kube, namespace)).get("phase") == "Funding"
                and "bob" in s["message"]
                and s
            ),
            timeout=60,
        )
        party = kube.get(f"{API}/namespaces/{namespace}/parties/alice")
        grant = kube.get(f"{ns}/secrets/alice-read-grant")

        await _deposit_as_bob(devnet)
        training = kube.wait_for(
            "Training",
            lambda: (s := _federation_status(kube, namespace)).get("phase") == "Training" and s,
            timeout=60,
        )
        job = kube.wait_for(
            "the worker Job",
            lambda: kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"],
            timeout=30,
        )[0]
        config = json.loads(kube.get(f"{ns}/configmaps/mnist-alice-worker")["data"]["config.json"])
        metrics_text = op.metrics()
        server = prometheus([f"127.0.0.1:{op.metrics_port}"])
        scraped = server.wait_for_series(
            f'hydrafed_federation_phase{{phase="Training",namespace="{namespace}"}} == 1'
        )
        head_open = server.query(f'hydrafed_head_state{{state="Open",namespace="{namespace}"}}')

        # Execute: delete the Federation: the finalizer closes the head and fans out
        kube.delete(f"{API}/namespaces/{namespace}/federations/mnist")
        kube.wait_for(
            "the Federation gone",
            lambda: (
                not any(
                    f["metadata"]["name"] == "mnist"
                    for f in kube.get(f"{API}/namespaces/{namespace}/federations")["items"]
                )
            ),
            timeout=60,
        )
        events = [e["reason"] for e in kube.get(f"{ns}/events")["items"]]
        log = op.log()

    # Assert: keys respected, the grant derived, head opened and funded by alice
    assert party["status"]["hydraVkey"] == alice_vkey, log
    assert party["status"]["keySecretName"] == "alice-own-keys"
    assert json.loads(base64.b64decode(grant["data"]["grant"]))["bucket"] == "alice-mnist"
    assert funding_status["headId"] and funding_status["partiesReady"] == "2/2"
    conditions = {c["type"]: c["status"] for c in training["conditions"]}
    assert conditions["PartiesReady"] == "True" and conditions["HeadOpen"] == "True"
    assert training["currentRound"] == 1 and training["completedRounds"] == 0
    # Assert: the worker Job runs the production entrypoint with the config the operator wrote
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["hydrafed", "worker"] and container["image"] == "hydrafed-worker:test"
    assert [m["name"] for m in config["members"]] == ["alice", "bob"]
    assert config["apiUrl"] == devnet.urls[0] and config["party"] == "alice"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Federation"
    assert (
        f'hydrafed_federation_phase{{federation="mnist",namespace="{namespace}",phase="Training"}} 1.0'
        in metrics_text
    )
    # Assert: a real Prometheus scrapes the operator; promtool finds nothing to lint
    assert scraped and [s["value"][1] for s in head_open] == ["1"], head_open
    promtool = check_metrics(metrics_text)
    assert promtool.ok, promtool.problems
    # Assert: deleting closed the head and returned the funds to L1
    head = devnet.head
    assert head is not None and head.status == "Idle"
    assert {"Closing", "HeadFinalized"} <= set(events), events
    assert "Traceback" not in log, log


async def test_spec_close_closes_the_head_and_keeps_the_record(
    k8s_cluster: Cluster,
    kube: KubeClient,
    crds_installed: list[str],
    namespace: str,
    devnet: Devnet,
    tmp_path: Path,
) -> None:
    # Prepare: a head that is open and funded
    kubeconfig = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / "operator.kubeconfig")
    _setup(kube, namespace, devnet, tmp_path)
    path = f"{API}/namespaces/{namespace}/federations/mnist"
    with running_operator(kubeconfig, [namespace], tmp_path) as op:
        kube.wait_for(
            "Funding", lambda: _federation_status(kube, namespace).get("phase") == "Funding", timeout=60
        )
        await _deposit_as_bob(devnet)
        kube.wait_for(
            "Training", lambda: _federation_status(kube, namespace).get("phase") == "Training", timeout=60
        )

        # Execute: any party may close: set spec.close
        kube.merge_patch(path, {"spec": {"close": True}})
        closed = kube.wait_for(
            "Closed",
            lambda: (s := _federation_status(kube, namespace)).get("phase") == "Closed" and s,
            timeout=60,
            message=op.log,
        )
        kube.delete(path)  # a closed head lets the record go at once
        kube.wait_for(
            "the record deleted", lambda: not kube.get(f"{API}/namespaces/{namespace}/federations")["items"]
        )

    # Assert
    assert devnet.head is not None and devnet.head.status == "Idle"
    assert closed["headState"] == "Final" and "finalized" in closed["message"]
