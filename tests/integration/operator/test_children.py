"""The node children of a party that runs its own hydra-node in the cluster: built, owned,
labelled, recreated when deleted, changed when the spec changes, never duplicated."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hydrafed.hydra import keys as keys_mod
from hydrafed.storage import LocalStore
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.operator import operator_kubeconfig, running_operator
from tests.integration.operator.manifests import API, obj

pytestmark = pytest.mark.integration


def test_node_children_are_built_owned_recreated_and_updated(
    k8s_cluster: Cluster, kube: KubeClient, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    # Prepare: a preview-network Federation whose local party runs its node in the cluster
    kubeconfig = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / "kubeconfig")
    root = tmp_path / "buckets"
    LocalStore(root).ensure_bucket("bob-mnist")
    grant = base64.b64encode(LocalStore(root).share("bob-mnist", "mnist/rounds/").encode()).decode()
    core, apps = f"/api/v1/namespaces/{namespace}", f"/apis/apps/v1/namespaces/{namespace}"
    kube.create(
        f"{core}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bob-grant"}, "data": {"grant": grant}},
    )
    bob = keys_mod.generate_party_keys("bob")
    kube.create(
        f"{API}/namespaces/{namespace}/federations",
        obj(
            "Federation",
            "mnist",
            {"head": {"network": "preview"}, "storage": {"backend": "local", "root": str(root)}},
        ),
    )
    kube.create(
        f"{API}/namespaces/{namespace}/parties",
        obj("Party", "alice", {"federation": "mnist", "local": True, "bucket": "alice-mnist"}),
    )
    kube.create(
        f"{API}/namespaces/{namespace}/parties",
        obj(
            "Party",
            "bob",
            {
                "federation": "mnist",
                "hydraVkey": bob.hydra_vkey_hex,
                "cardanoVkey": bytes(bob.payment_verification_key.payload).hex(),
                "peerAddress": "bob.example.org:5001",
                "bucket": "bob-mnist",
                "readGrantSecretRef": {"name": "bob-grant"},
            },
        ),
    )
    stem = "mnist-alice-hydra"

    with running_operator(kubeconfig, [namespace], tmp_path) as op:
        # Execute / Assert: the StatefulSet, Services, NetworkPolicy and ConfigMap exist
        sts = kube.wait_for(
            "the node StatefulSet",
            lambda: kube.get(f"{apps}/statefulsets")["items"],
            timeout=30,
            message=op.log,
        )
        services = kube.wait_for(
            "two Services", lambda: len(s := kube.get(f"{core}/services")["items"]) == 2 and s
        )
        policy = kube.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{stem}")
        config = kube.get(f"{core}/configmaps/{stem}")
        provisioning = kube.wait_for(
            "Provisioning: the in-cluster node does not answer (kwok runs no container)",
            lambda: (
                (s := kube.get(f"{API}/namespaces/{namespace}/federations/mnist").get("status", {})).get(
                    "phase"
                )
                == "Provisioning"
                and s
            ),
            timeout=30,
        )

        # Execute: a deleted child comes back; a spec change reaches the child
        kube.delete(f"{core}/configmaps/{stem}")
        recreated = kube.wait_for(
            "the ConfigMap recreated",
            lambda: kube.get(f"{core}/configmaps")["items"] and kube.get(f"{core}/configmaps/{stem}"),
            timeout=30,
        )
        kube.merge_patch(
            f"{API}/namespaces/{namespace}/parties/alice", {"spec": {"peerServiceType": "NodePort"}}
        )
        node_port = kube.wait_for(
            "the peer Service turned NodePort",
            lambda: kube.get(f"{core}/services/{stem}-peer")["spec"]["type"] == "NodePort",
            timeout=30,
        )
        counts = {
            kind: len(kube.get(f"{prefix}/{kind}")["items"])
            for prefix, kind in ((apps, "statefulsets"), (core, "services"))
        }

    # Assert: hydra-node 2.x flags, one --peer and one pair of vkeys per remote party
    (statefulset,) = sts
    containers = {c["name"]: c for c in statefulset["spec"]["template"]["spec"]["containers"]}
    args = containers["hydra-node"]["args"]
    assert "--peer=bob.example.org:5001" in args and "--testnet-magic=2" in args
    assert "--hydra-verification-key=/etc/hydra/bob.hydra.vk" in args
    assert "--cardano-verification-key=/etc/hydra/bob.cardano.vk" in args
    assert "--contestation-period=60s" in args and "--persistence-dir=/var/lib/hydra" in args
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "persistence"
    assert set(config["data"]) == {"protocol-parameters.json", "bob.hydra.vk", "bob.cardano.vk"}
    # Assert: the API port stays inside the cluster, and only operator and worker may reach it
    types = {s["metadata"]["name"]: s["spec"]["type"] for s in services}
    assert types == {f"{stem}-peer": "ClusterIP", f"{stem}-api": "ClusterIP"}
    api_rule = policy["spec"]["ingress"][1]
    assert {p["port"] for p in api_rule["ports"]} == {4001, 6001} and len(api_rule["from"]) == 2
    # Assert: owned by the Federation, labelled, recreated, updated, never duplicated
    assert statefulset["metadata"]["ownerReferences"][0]["kind"] == "Federation"
    assert statefulset["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hydrafed-operator"
    assert recreated["metadata"]["uid"] != config["metadata"]["uid"] and node_port
    assert counts == {"statefulsets": 1, "services": 2}
    assert "NodeUnreachable" in str(provisioning["conditions"])
