"""Three organisations, three operators, one head: the product end to end on the real control plane.

Each organisation is a namespace with its own `hydrafed operator` process, authenticated with a
ServiceAccount token bound to the least-privilege ClusterRole. Each applies its Federation and
its own Party; the remote Parties come from the others' `hydrafed party export`. Stand-ins, for
what cannot run here: the devnet plays the three hydra-nodes (holding the keys the operators
generated, as the node StatefulSet would mount them; spec.nodeApiUrl points each operator at its
node), and the pod runner plays the kubelet, running each worker pod the operators created as a
local `hydrafed worker` process. Mid-training one operator is restarted and one worker pod is
killed: status stays right, nothing is duplicated or announced twice, the new pod resumes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hydrafed import spec
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import tx as tx_mod
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.ports import free_base_port
from tests.fixtures import secrets_scan
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.operator import HYDRAFED, OperatorProcess, operator_kubeconfig
from tests.fixtures.pod_runner import PodRunner
from tests.integration.operator.conftest import crds_installed, k8s_cluster, kube

__all__ = ["crds_installed", "k8s_cluster", "kube"]

pytestmark = pytest.mark.e2e

API = f"/apis/{spec.API_GROUP}/{spec.API_VERSION}"
ORGS = {"org-alice": "alice", "org-bob": "bob", "org-carol": "carol"}
ROUNDS = 4
FEDERATION_SPEC = {
    "training": {
        "rounds": ROUNDS,
        "sampleLimit": 1500,
        "localEpochs": 1,
        "momentum": 0.0,
        "learningRate": 0.3,
    },
    "head": {"network": "devnet", "contestationPeriodSeconds": 2, "depositLovelace": 50_000_000},
}


def _status(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return dict(kube.get(f"{API}/namespaces/{namespace}/federations/mnist").get("status") or {})


def _wait_phase(kube: KubeClient, phase: str, timeout: float, detail: Any) -> None:
    kube.wait_for(
        f"every Federation {phase}",
        lambda: all(_status(kube, ns).get("phase") == phase for ns in ORGS),
        timeout=timeout,
        message=lambda: "\n".join(f"{ns}: {_status(kube, ns).get('message')}" for ns in ORGS) + detail(),
    )


def _seed_devnet(kube: KubeClient, state_dir: Path) -> dict[str, keys_mod.PartyKeys]:
    """The devnet's node keys are the ones each operator generated (read from the key Secrets)."""
    loaded = {}
    for namespace, name in ORGS.items():
        secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}-keys")
        target = state_dir / "parties" / name
        target.mkdir(parents=True)
        for file, value in secret["data"].items():
            (target / file).write_bytes(base64.b64decode(value))
        loaded[name] = keys_mod.load_party_keys(target, name)
    (state_dir / "devnet.json").write_text(json.dumps({"parties": [{"name": n} for n in sorted(loaded)]}))
    return loaded


def _announcements(devnet: Devnet) -> list[tx_mod.Announcement]:
    """Every announcement the head confirmed, from the first node's event log."""
    head = devnet.head
    assert head is not None
    found = []
    for msg in head.nodes[0].history:
        if msg.get("tag") == "SnapshotConfirmed":
            for envelope in msg["snapshot"]["confirmed"]:
                announcement = tx_mod.decode_announcement(envelope)
                if announcement is not None:
                    found.append(announcement)
    return found


@pytest.fixture
def buckets(tmp_path: Path) -> Path:
    return tmp_path / "buckets"


@pytest.fixture
def operators(
    k8s_cluster: Cluster, kube: KubeClient, crds_installed: list[str], tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    from hydrafed.ports import free_port

    running: dict[str, OperatorProcess] = {}
    try:
        for namespace in ORGS:
            kube.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
            config = operator_kubeconfig(k8s_cluster, kube, namespace, tmp_path / f"{namespace}.kubeconfig")
            running[namespace] = OperatorProcess(
                (namespace,),
                config,
                tmp_path / f"operator-{namespace}.log",
                free_port(),
                free_port(),
                ("--worker-image", "hydrafed-worker:e2e"),
            ).start()
        yield running
    finally:
        for op in running.values():
            op.stop()
        for namespace in ORGS:
            kube.delete(f"/api/v1/namespaces/{namespace}")


def test_three_organisations_train_and_close_one_head(
    k8s_cluster: Cluster,
    kube: KubeClient,
    operators: dict[str, OperatorProcess],
    buckets: Path,
    tmp_path: Path,
) -> None:
    ports = free_base_port(3)
    urls = {name: f"http://127.0.0.1:{ports + i}" for i, name in enumerate(sorted(ORGS.values()))}

    def logs() -> str:
        return "\n".join(f"--- {ns}\n{op.log(3000)}" for ns, op in operators.items())

    # Prepare: each organisation applies its Federation and its own Party (keys are generated)
    for namespace, name in ORGS.items():
        fed = {**FEDERATION_SPEC, "storage": {"backend": "local", "root": str(buckets)}}
        kube.create(
            f"{API}/namespaces/{namespace}/federations",
            {
                "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
                "kind": "Federation",
                "metadata": {"name": "mnist"},
                "spec": fed,
            },
        )
        kube.create(
            f"{API}/namespaces/{namespace}/parties",
            {
                "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
                "kind": "Party",
                "metadata": {"name": name},
                "spec": {
                    "federation": "mnist",
                    "local": True,
                    "bucket": f"{name}-mnist",
                    "nodeApiUrl": urls[name],
                    "peerAddress": f"{name}.example.org:5001",
                },
            },
        )
    for namespace, name in ORGS.items():
        kube.wait_for(
            f"{name}'s keys and read grant",
            lambda ns=namespace, n=name: (
                kube.get(f"{API}/namespaces/{ns}/parties/{n}").get("status", {}).get("hydraVkey")
                and any(
                    s["metadata"]["name"] == f"{n}-read-grant"
                    for s in kube.get(f"/api/v1/namespaces/{ns}/secrets")["items"]
                )
            ),
            timeout=60,
            message=logs,
        )

    # Prepare: the organisations exchange `hydrafed party export` and apply each other's Parties
    admin_env = {**os.environ, "KUBECONFIG": str(k8s_cluster.kubeconfig)}
    for namespace, name in ORGS.items():
        exported = subprocess.run(
            [str(HYDRAFED), "party", "export", name, "--namespace", namespace],
            env=admin_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for other in ORGS:
            if other == namespace:
                continue
            for doc in yaml.safe_load_all(exported):
                doc["metadata"]["namespace"] = other
                plural = "secrets" if doc["kind"] == "Secret" else "parties"
                prefix = "/api/v1" if doc["kind"] == "Secret" else API
                kube.create(f"{prefix}/namespaces/{other}/{plural}", doc)

    # Prepare: the devnet stands in for the three hydra-nodes, with the operators' keys
    cache = Path(os.environ.get("HYDRAFED_CACHE", Path.home() / ".cache" / "hydrafed"))
    net = Devnet(
        parties=sorted(ORGS.values()),
        api_port=ports,
        state_dir=tmp_path / "devnet",
        contestation_period=2.0,
        deposit_activation=0.05,
    )
    party_keys = _seed_devnet(kube, tmp_path / "devnet")
    with (
        DevnetThread(net),
        # alice's worker pod stays pending (no kubelet runs it) until carol's has been killed
        PodRunner(
            k8s_cluster,
            ["org-bob", "org-carol"],
            extra_env={"HYDRAFED_CACHE": str(cache)},
            workdir=tmp_path / "pods",
        ) as pods,
    ):
        assert net.head is not None
        for name, k in party_keys.items():
            net.head.fund_l1(k.address(), 100_000_000, name)

        try:

            def detail() -> str:
                return "\n" + pods.describe()[-6000:] + "\n" + logs()

            # Execute: the heads open, the parties fund; bob and carol announce round 1, which
            # waits for alice. A round takes tens of milliseconds, so only a round that cannot
            # complete yet makes the kill below certain to land mid-training.
            _wait_phase(kube, "Training", 120, detail)
            kube.wait_for(
                "round 1 waiting for alice only",
                lambda: _status(kube, "org-bob").get("message") == f"round 1 of {ROUNDS}: waiting for alice",
                timeout=300,
                message=detail,
            )
            # ... kill carol's worker pod (the Job's next pod resumes from the ledger), restart
            # bob's operator, and let alice's pod start
            (carol_pod,) = kube.get("/api/v1/namespaces/org-carol/pods")["items"]
            kube.delete(f"/api/v1/namespaces/org-carol/pods/{carol_pod['metadata']['name']}")
            bob = operators["org-bob"]
            bob.stop()
            bob.start()
            pods.watch("org-alice")
            _wait_phase(kube, "Completed", 600, detail)
            completed = {ns: _status(kube, ns) for ns in ORGS}
            table = k8s_cluster.kubectl("get", "federations", "-n", "org-bob").stdout
            jobs = {ns: kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"] for ns in ORGS}
            for namespace in ORGS:
                pods.wait_for_runs(namespace, 2 if namespace == "org-carol" else 1, finished=True)
            finals = {ns: pods.runs(ns)[-1].log() for ns in ORGS}
            written = {
                f"{ns} worker run {i}": r.log().encode() for ns in ORGS for i, r in enumerate(pods.runs(ns))
            }
            written |= {f"{ns} status": json.dumps(status).encode() for ns, status in completed.items()}
            written |= {
                f"{ns} Parties": json.dumps(kube.get(f"{API}/namespaces/{ns}/parties")["items"]).encode()
                for ns in ORGS
            }
            grants = {
                base64.b64decode(value): f"{s['metadata']['name']} in {ns}"
                for ns in ORGS
                for s in kube.get(f"/api/v1/namespaces/{ns}/secrets")["items"]
                if s["metadata"]["name"].endswith("-read-grant")
                for value in s.get("data", {}).values()
            }
            key_files = {  # where the keys are meant to be: the scan must find them there
                ns: b"".join(
                    base64.b64decode(v)
                    for v in kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}-keys")["data"].values()
                )
                for ns, name in ORGS.items()
            }
            attempts = {ns: len(pods.runs(ns)) for ns in ORGS}
            announcements = _announcements(net)

            # Execute: every organisation deletes its Federation: the head closes and fans out
            for namespace in ORGS:
                kube.delete(f"{API}/namespaces/{namespace}/federations/mnist")
            kube.wait_for(
                "every Federation gone",
                lambda: not any(kube.get(f"{API}/namespaces/{ns}/federations")["items"] for ns in ORGS),
                timeout=120,
                message=detail,
            )
            head_state = net.head.status
            events = {ns: kube.get(f"/api/v1/namespaces/{ns}/events")["items"] for ns in ORGS}
            reasons = {ns: [e["reason"] for e in items] for ns, items in events.items()}
            written |= {f"{ns} Events": json.dumps(items).encode() for ns, items in events.items()}

        finally:
            for op in operators.values():  # before the devnet goes: no client left on it
                op.stop()
    # Assert: every organisation saw every round of the same head complete
    for namespace, status in completed.items():
        assert status["completedRounds"] == ROUNDS and status["partiesReady"] == "3/3", (namespace, status)
        assert [r["announced"] for r in status["rounds"]] == [sorted(ORGS.values())] * ROUNDS or all(
            sorted(r["announced"]) == sorted(ORGS.values()) for r in status["rounds"]
        )
        assert {p["name"]: p["lastAnnouncedRound"] for p in status["parties"]} == dict.fromkeys(
            ORGS.values(), ROUNDS
        )
    assert len({s["headId"] for s in completed.values()}) == 1
    assert "Completed" in table and "mnist" in table
    # Assert: one worker Job each (the restart duplicated nothing), one announcement per party and round
    assert {ns: len(items) for ns, items in jobs.items()} == dict.fromkeys(ORGS, 1)
    assert attempts == {"org-alice": 1, "org-bob": 1, "org-carol": 2}, attempts
    counted = Counter((a.party, a.round) for a in announcements)
    assert set(counted.values()) == {1} and len(counted) == 3 * ROUNDS, counted
    # Assert: identical final weights everywhere (each worker logs its final global sha256)
    digests = {ns: _final_sha256(log) for ns, log in finals.items()}
    assert len(set(digests.values())) == 1 and None not in digests.values(), digests
    # Assert: no signing key or read grant in any log, Event or status (tests/fixtures/secrets_scan.py)
    written |= {f"{ns} operator log": op.log(10**9).encode() for ns, op in operators.items()}
    needles = secrets_scan.signing_keys(party_keys) | {g: f"read grant {w}" for g, w in grants.items() if g}
    assert len(needles) > 6 * 8 and grants
    assert secrets_scan.leaks(needles, written) == []
    assert all(secrets_scan.leaks(needles, {ns: blob}) for ns, blob in key_files.items())
    # Assert: deleting closed the head
    assert head_state == "Idle"
    assert all("HeadFinalized" in r for r in reasons.values()), reasons


def _final_sha256(log: str) -> str | None:
    for line in reversed(log.splitlines()):
        if "final" in line and "sha256" in line:
            return line.rsplit(" ", 1)[-1].strip()
    return None
