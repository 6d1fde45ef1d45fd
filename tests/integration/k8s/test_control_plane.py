"""The test control plane is a real one: versions, scheduling, kwok pods, Jobs, StatefulSets, GC."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import BIN_DIR, BINARIES, Cluster, ControlPlane, StartupError
from tests.fixtures.kube import KubeClient

pytestmark = pytest.mark.integration


def _versions(cluster: Cluster) -> dict[str, str]:
    lines = (cluster.bin_dir / "versions.txt").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines)


def _pod(name: str, **resources: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/never-pulled:1"}
    if resources:
        container["resources"] = {"limits": resources}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def test_versions_are_stamped_truthfully(k8s_cluster: Cluster, kube: KubeClient) -> None:
    # Prepare
    versions = _versions(k8s_cluster)

    # Execute
    server = kube.get("/version")
    helm = subprocess.run(
        [str(k8s_cluster.bin_dir / "helm"), "version", "--short"], capture_output=True, text=True, check=True
    )
    kwok = subprocess.run(
        [str(k8s_cluster.bin_dir / "kwok"), "--version"], capture_output=True, text=True, check=True
    )
    etcd = subprocess.run(
        [str(k8s_cluster.bin_dir / "etcd"), "--version"], capture_output=True, text=True, check=True
    )

    client = json.loads(k8s_cluster.kubectl("version", "--client", "-o", "json").stdout)

    # Assert
    assert server["gitVersion"] == versions["kubernetes"]
    assert client["clientVersion"]["gitVersion"] == versions["kubernetes"]
    assert server["major"] == "1" and server["minor"] == versions["kubernetes"].split(".")[1]
    assert helm.stdout.startswith(versions["helm"])
    assert f"kwok version {versions['kwok']}" in kwok.stdout
    assert f"etcd Version: {versions['etcd'].removeprefix('v')}" in etcd.stdout


def test_kwok_nodes_are_ready_and_one_has_gpus(k8s_cluster: Cluster, kube: KubeClient) -> None:
    # Execute
    nodes = {n["metadata"]["name"]: n for n in kube.get("/api/v1/nodes")["items"]}

    # Assert
    assert set(nodes) == {n.name for n in k8s_cluster.nodes}
    gpu_nodes = [name for name, n in nodes.items() if "nvidia.com/gpu" in n["status"]["allocatable"]]
    assert gpu_nodes == ["kwok-gpu-0"]


def test_gpu_pod_is_scheduled_on_the_gpu_node_and_runs(kube: KubeClient, namespace: str) -> None:
    # Execute
    kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod("trainer", **{"nvidia.com/gpu": "1"}))
    pod = kube.wait_for(
        "the GPU pod Running",
        lambda: _if(kube.get(f"/api/v1/namespaces/{namespace}/pods/trainer"), phase="Running"),
    )

    # Assert
    assert pod["spec"]["nodeName"] == "kwok-gpu-0"


def test_pod_asking_for_more_gpus_than_exist_stays_pending(kube: KubeClient, namespace: str) -> None:
    # Execute
    kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod("greedy", **{"nvidia.com/gpu": "64"}))
    pod = kube.wait_for(
        "the scheduler to report Unschedulable",
        lambda: _unschedulable(kube.get(f"/api/v1/namespaces/{namespace}/pods/greedy")),
    )

    # Assert
    assert "nodeName" not in pod["spec"]


def test_job_completes_and_its_pods_are_garbage_collected(kube: KubeClient, namespace: str) -> None:
    # Prepare
    template = _pod("unused")["spec"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "round-1"},
        "spec": {"backoffLimit": 0, "template": {"spec": {**template, "restartPolicy": "Never"}}},
    }
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    # Execute: the Job controller makes a pod, kwok completes it, the Job succeeds
    kube.create(jobs, job)
    done = kube.wait_for("the Job to succeed", lambda: _if(kube.get(f"{jobs}/round-1"), succeeded=1))
    selector = "batch.kubernetes.io/job-name=round-1"
    pods_before = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"]
    kube.request("DELETE", f"{jobs}/round-1", {"propagationPolicy": "Background"})
    kube.wait_for(
        "the garbage collector to delete the Job's pods",
        lambda: not kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"] or None,
    )

    # Assert
    assert done["status"]["succeeded"] == 1
    assert len(pods_before) == 1
    assert pods_before[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"


def test_statefulset_pod_runs(kube: KubeClient, namespace: str) -> None:
    # Prepare
    labels = {"app": "hydra-node"}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "hydra"},
        "spec": {
            "replicas": 1,
            "serviceName": "hydra",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod("unused")["spec"]},
        },
    }

    # Execute
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/statefulsets", sts)
    ready = kube.wait_for(
        "the StatefulSet ready",
        lambda: _if(kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/hydra"), readyReplicas=1),
    )

    # Assert
    pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/hydra-0")
    assert pod["status"]["phase"] == "Running"
    assert ready["status"]["readyReplicas"] == 1


def test_new_namespace_gets_its_default_service_account(kube: KubeClient, namespace: str) -> None:
    account = kube.wait_for(
        "the default ServiceAccount",
        lambda: kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
    )
    assert account["metadata"]["name"] == "default"


def _if(obj: dict[str, Any], **status: Any) -> dict[str, Any] | None:
    """``obj`` when its status has all the given values, else None."""
    have = obj.get("status", {})
    return obj if all(have.get(k) == v for k, v in status.items()) else None


def _unschedulable(pod: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    hit = any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)
    return pod if hit else None


def test_a_component_that_dies_fails_startup_with_its_log_and_cleans_up(tmp_path: Path) -> None:
    # Prepare: the real binaries, except a kube-apiserver that exits at once
    for name in BINARIES:
        (tmp_path / name).symlink_to((BIN_DIR / name).resolve())
    (tmp_path / "kube-apiserver").unlink()
    (tmp_path / "kube-apiserver").write_text("#!/bin/sh\necho 'flag provided but not defined' >&2\nexit 3\n")
    (tmp_path / "kube-apiserver").chmod(0o755)
    plane = ControlPlane(bin_dir=tmp_path)

    # Execute
    with pytest.raises(StartupError) as caught, plane:
        pass

    # Assert: the message says which component, how, and shows its log; nothing is left behind
    assert "kube-apiserver exited with 3" in str(caught.value)
    assert "flag provided but not defined" in str(caught.value)
    assert not plane.workdir.exists()
    assert plane._procs == []
