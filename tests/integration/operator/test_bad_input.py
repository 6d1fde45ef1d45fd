"""Bad input, one mistake at a time: each gets a condition and an Event that name the object, the
field and the fix; the operator keeps running; fixing the spec recovers without manual cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hydrafed.hydra import keys as keys_mod
from hydrafed.ports import free_port
from hydrafed.storage import LocalStore
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.operator import operator_kubeconfig, running_operator
from tests.integration.operator.manifests import API, obj, secret

pytestmark = pytest.mark.integration


def test_each_mistake_is_named_and_fixing_it_recovers(
    k8s_cluster: Cluster, kube: KubeClient, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    # Prepare
    kubeconfig = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / "kubeconfig")
    feds, parties, core = (f"{API}/namespaces/{namespace}/{p}" for p in ("federations", "parties", "secrets"))
    core = f"/api/v1/namespaces/{namespace}"
    dead_node = f"http://127.0.0.1:{free_port()}"
    root = tmp_path / "buckets"
    bob_keys = keys_mod.generate_party_keys("bob")
    bob_facts = {
        "federation": "mnist",
        "hydraVkey": bob_keys.hydra_vkey_hex,
        "cardanoVkey": bytes(bob_keys.payment_verification_key.payload).hex(),
        "peerAddress": "bob.example.org:5001",
        "bucket": "bob-mnist",
    }

    def condition(kind: str, name: str, type_: str) -> dict[str, Any] | None:
        status = kube.get(f"{API}/namespaces/{namespace}/{kind}/{name}").get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def wait_reason(kind: str, name: str, type_: str, reason: str) -> dict[str, Any]:
        return kube.wait_for(
            f"{kind}/{name} {type_} {reason}",
            lambda: (c := condition(kind, name, type_)) is not None and c["reason"] == reason and c,
            timeout=30,
            message=lambda: f"{condition(kind, name, type_)}\n{op.log(3000)}",
        )

    with running_operator(kubeconfig, [namespace], tmp_path) as op:
        # A Party naming no Federation
        kube.create(parties, obj("Party", "dave", {**bob_facts, "federation": "nope", "bucket": "dave-x"}))
        orphan = wait_reason("parties", "dave", "FederationFound", "FederationNotFound")

        # Two local Parties
        kube.create(feds, obj("Federation", "mnist", {"storage": {"backend": "local", "root": str(root)}}))
        local = {
            "federation": "mnist",
            "local": True,
            "keySecretRef": {"name": "alice-own"},
            "nodeApiUrl": dead_node,
        }
        kube.create(parties, obj("Party", "alice", {**local, "bucket": "alice-mnist"}))
        kube.create(
            parties, obj("Party", "bob", {"federation": "mnist", "local": True, "bucket": "bob-mnist"})
        )
        two_local = wait_reason("federations", "mnist", "PartiesReady", "TwoLocalParties")

        # Fixed: bob is remote, but without the read grant it exported
        kube.delete(f"{parties}/bob")
        kube.wait_for(
            "bob gone", lambda: not [p for p in kube.get(parties)["items"] if p["metadata"]["name"] == "bob"]
        )
        kube.create(parties, obj("Party", "bob", bob_facts))
        no_grant = wait_reason("federations", "mnist", "PartiesReady", "MissingReadGrant")

        # Fixed: the grant is referenced, but alice's own key Secret does not exist
        kube.merge_patch(f"{parties}/bob", {"spec": {"readGrantSecretRef": {"name": "bob-grant"}}})
        no_keys = wait_reason("federations", "mnist", "PartiesReady", "KeySecretNotFound")

        # A malformed key Secret
        kube.create(f"{core}/secrets", secret("alice-own", {"hydra.sk": "not a key", "payment.sk": "{}"}))
        bad_keys = wait_reason("federations", "mnist", "PartiesReady", "KeySecretInvalid")

        # Fixed keys; the grant Secret itself is still missing
        with_keys = keys_mod.generate_party_keys("alice")
        key_dir = tmp_path / "alice-keys"
        keys_mod.save_party_keys(with_keys, key_dir)
        files = {f: (key_dir / f).read_text() for f in ("hydra.sk", "payment.sk")}
        kube.merge_patch(f"{core}/secrets/alice-own", {"data": secret("x", files)["data"]})
        no_grant_secret = wait_reason("federations", "mnist", "PartiesReady", "ReadGrantNotFound")

        # Fixed grant: everything the cluster holds is right; the node does not answer
        LocalStore(root).ensure_bucket("bob-mnist")
        grant = LocalStore(root).share("bob-mnist", "mnist/rounds/")
        kube.create(f"{core}/secrets", secret("bob-grant", {"grant": grant}))
        ready = wait_reason("federations", "mnist", "PartiesReady", "PartiesReady")
        unreachable = wait_reason("federations", "mnist", "Degraded", "NodeUnreachable")
        status = kube.get(f"{feds}/mnist")["status"]
        events = {e["reason"]: e["message"] for e in kube.get(f"{core}/events")["items"]}
        alive = op.process is not None and op.process.poll() is None
        log = op.log(20000)

    # Assert: every message names the object, the field and the fix
    assert "nope" in orphan["message"] and "spec.federation" in orphan["message"]
    assert "alice, bob" in two_local["message"] and "local: false" in two_local["message"]
    assert "bob" in no_grant["message"] and "spec.readGrantSecretRef" in no_grant["message"]
    assert "alice-own" in no_keys["message"] and "spec.keySecretRef" in no_keys["message"]
    assert "alice-own" in bad_keys["message"] and "hydra.sk" in bad_keys["message"]
    assert "bob-grant" in no_grant_secret["message"] and "party export" in no_grant_secret["message"]
    assert ready["status"] == "True" and unreachable["status"] == "True"
    assert dead_node in unreachable["message"] and "spec.nodeApiUrl" in unreachable["message"]
    assert status["phase"] == "Provisioning"
    assert "FederationNotFound" in events and "Pending" in events
    # Assert: no crash loop, and no key material in what the operator logged or wrote
    assert alive and "Traceback" not in log, log
    secret_hex = with_keys.payment_signing_key.to_cbor_hex()[4:]
    assert secret_hex not in log and secret_hex not in str(status) and secret_hex not in str(events)


def test_a_deposit_too_small_for_the_announcements_is_refused_in_status(
    k8s_cluster: Cluster, kube: KubeClient, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    kubeconfig = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / "kubeconfig")
    head = {"depositLovelace": 1_500_000, "announceLovelace": 1_000_000}
    kube.create(f"{API}/namespaces/{namespace}/federations", obj("Federation", "mnist", {"head": head}))
    for name in ("alice", "bob"):
        keys = keys_mod.generate_party_keys(name)
        body = {"federation": "mnist", "bucket": f"{name}-mnist"}
        if name == "alice":
            body |= {"local": True, "nodeApiUrl": "http://127.0.0.1:1"}
        else:
            body |= {
                "hydraVkey": keys.hydra_vkey_hex,
                "cardanoVkey": bytes(keys.payment_verification_key.payload).hex(),
                "peerAddress": "bob.example.org:5001",
                "readGrantSecretRef": {"name": "bob-grant"},
            }
        kube.create(f"{API}/namespaces/{namespace}/parties", obj("Party", name, body))
    with running_operator(kubeconfig, [namespace], tmp_path):
        status = kube.wait_for(
            "DepositTooSmall",
            lambda: (
                (s := kube.get(f"{API}/namespaces/{namespace}/federations/mnist").get("status") or {})
                and any(c["reason"] == "DepositTooSmall" for c in s.get("conditions", []))
                and s
            ),
            timeout=30,
        )
    assert status["phase"] == "Pending"
    assert "depositLovelace >= 2000000" in status["message"]
