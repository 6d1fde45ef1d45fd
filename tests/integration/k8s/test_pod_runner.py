"""The pod runner (the kubelet stand-in) runs Job pods as processes and the real Job controller reacts."""

from __future__ import annotations

import base64
import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.fixtures.pod_runner import DEFAULT_SELECTOR, PathMap, PodRunner, expand, pod_runner

__all__ = ["pod_runner"]

WORKER_LABELS = dict(pair.split("=", 1) for pair in DEFAULT_SELECTOR.split(","))


def _job(
    name: str, script: str, *, backoff_limit: int = 0, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": "hydrafed:test",
        "command": ["python", "-c", script],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": WORKER_LABELS if labels is None else labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def _condition(kube: KubeClient, path: str, kind: str) -> dict[str, Any] | None:
    obj = kube.get(path)
    conditions = (obj.get("status") or {}).get("conditions") or []
    return obj if any(c["type"] == kind and c["status"] == "True" for c in conditions) else None


def _pods(kube: KubeClient, namespace: str, job: str) -> list[dict[str, Any]]:
    selector = f"batch.kubernetes.io/job-name={job}"
    items: list[dict[str, Any]] = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)[
        "items"
    ]
    return items


READ_MOUNTS = """
import os, sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
print("token-file", open("/etc/hydrafed/secret/token").read())
print("model", config["model"])
print("key-file-from-config", open(config["keyFile"]).read())
print("env-token", os.environ["TOKEN"])
print("env-pod", os.environ["POD_NAME"])
print("env-from", os.environ["CFG_party.yaml"].splitlines()[0])
projected = "/var/run/hydrafed/all"
print("projected", open(f"{projected}/token").read(), open(f"{projected}/party.yaml").read()[:11])
with open("/scratch/out.txt", "w") as out:
    out.write("written")
print("secret-mode", oct(os.stat("/etc/hydrafed/secret/token").st_mode & 0o777))
"""


@pytest.mark.integration
def test_job_pod_reads_mounted_secret_configmap_and_env(
    kube: KubeClient, namespace: str, pod_runner: PodRunner
) -> None:
    # Prepare: a Secret, a ConfigMap naming a file of the Secret's mount, and a Job using both
    ns = f"/api/v1/namespaces/{namespace}"
    token = "s3cr3t-token-value"
    kube.create(
        f"{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        },
    )
    config = "model: tiny\nkeyFile: /etc/hydrafed/secret/token\n"
    kube.create(
        f"{ns}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "party"},
            "data": {"party.yaml": config},
        },
    )
    job = _job("train", READ_MOUNTS)
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["/etc/hydrafed/config/party.yaml"]
    container["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    container["envFrom"] = [
        {"configMapRef": {"name": "party"}, "prefix": "CFG_"},
        {"secretRef": {"name": "creds"}},
    ]
    container["volumeMounts"] = [
        {"name": "secret", "mountPath": "/etc/hydrafed/secret", "readOnly": True},
        {"name": "config", "mountPath": "/etc/hydrafed/config"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "all", "mountPath": "/var/run/hydrafed/all"},
    ]
    job["spec"]["template"]["spec"]["volumes"] = [
        {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {
            "name": "config",
            "configMap": {"name": "party", "items": [{"key": "party.yaml", "path": "party.yaml"}]},
        },
        {"name": "scratch", "emptyDir": {}},
        {
            "name": "all",
            "projected": {"sources": [{"secret": {"name": "creds"}}, {"configMap": {"name": "party"}}]},
        },
    ]
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    # Execute
    kube.create(jobs, job)
    done = kube.wait_for(
        f"Job train Complete\n{pod_runner.describe()}", lambda: _condition(kube, f"{jobs}/train", "Complete")
    )
    (pod,) = _pods(kube, namespace, "train")
    (run,) = pod_runner.runs(namespace)
    log = run.log()

    # Assert: the Job controller saw the reported exit; the process saw every resolved value
    assert done["status"]["succeeded"] == 1, pod_runner.describe()
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert f"token-file {token}" in log
    assert "model tiny" in log
    assert f"key-file-from-config {token}" in log
    assert f"env-token {token}" in log
    assert f"env-pod {pod['metadata']['name']}" in log
    assert "env-from model: tiny" in log
    assert f"projected {token} model: tiny" in log
    assert "secret-mode 0o400" in log
    assert run.host_path("/scratch/out.txt").read_text() == "written"
    assert run.host_path("/etc/hydrafed/secret/token").read_text() == token
    assert token not in repr(run)


IN_CLUSTER = """
import json, os, ssl, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
namespace = open(f"{sa}/namespace").read()
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
server = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
request = urllib.request.Request(f"{server}/api/v1/namespaces/{namespace}/secrets")
request.add_header("Authorization", f"Bearer {token}")
try:
    urllib.request.urlopen(request, context=context)
except urllib.error.HTTPError as exc:
    print(exc.code, json.loads(exc.read())["message"])
"""


@pytest.mark.integration
def test_hydrafed_command_and_service_account_token_work(
    kube: KubeClient, namespace: str, pod_runner: PodRunner
) -> None:
    # Prepare: the image's `hydrafed` is the venv's; the auto-mounted kube-api-access volume is real
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    cli = _job("cli", "")
    cli["spec"]["template"]["spec"]["containers"][0]["command"] = ["hydrafed", "--help"]

    # Execute
    kube.create(jobs, cli)
    kube.create(jobs, _job("in-cluster", IN_CLUSTER))
    for name in ("cli", "in-cluster"):
        kube.wait_for(
            f"Job {name} Complete\n{pod_runner.describe()}",
            functools.partial(_condition, kube, f"{jobs}/{name}", "Complete"),
        )
    logs = {run.name.rsplit("-", 1)[0]: run.log() for run in pod_runner.runs(namespace)}

    # Assert: the CLI ran; the API server authenticated the pod's bound token (and RBAC said no)
    assert "Usage: hydrafed" in logs["cli"]
    assert f'403 secrets is forbidden: User "system:serviceaccount:{namespace}:default"' in logs["in-cluster"]


@pytest.mark.integration
def test_failing_pod_is_reported_and_replaced_per_backoff_limit(
    kube: KubeClient, namespace: str, pod_runner: PodRunner
) -> None:
    # Prepare
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"

    # Execute: two attempts (backoffLimit 1; the Job controller waits ~10 s before the second)
    kube.create(jobs, _job("fails", "import sys; print('failing on purpose'); sys.exit(3)", backoff_limit=1))
    failed = kube.wait_for(
        f"Job fails Failed\n{pod_runner.describe()}",
        lambda: _condition(kube, f"{jobs}/fails", "Failed"),
        timeout=90,
    )
    pods = _pods(kube, namespace, "fails")

    # Assert
    assert failed["status"]["failed"] == 2
    assert [c["reason"] for c in failed["status"]["conditions"] if c["type"] == "Failed"] == [
        "BackoffLimitExceeded"
    ]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    runs = pod_runner.runs(namespace)
    assert sorted(r.name for r in runs) == sorted(p["metadata"]["name"] for p in pods)
    assert all(r.exit_code == 3 and "failing on purpose" in r.log() for r in runs)


@pytest.mark.integration
def test_deleted_pod_loses_its_process(kube: KubeClient, namespace: str, pod_runner: PodRunner) -> None:
    # Prepare: a pod that runs until killed
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    kube.create(jobs, _job("sleeps", "import time; print('started', flush=True); time.sleep(600)"))
    (run,) = pod_runner.wait_for_runs(namespace, 1, finished=False)
    kube.wait_for("the process to start", lambda: "started" in run.log())

    # Execute
    kube.delete(f"/api/v1/namespaces/{namespace}/pods/{run.name}")
    kube.wait_for(f"the process of {run.name} to end", lambda: not run.running(), timeout=30)

    # Assert
    assert run.killed
    assert run.exit_code is not None and run.exit_code < 0  # ended by a signal, not by itself
    with pytest.raises(ProcessLookupError):
        os.kill(run.pid, 0)


@pytest.mark.integration
def test_pod_waits_for_a_missing_secret_and_unsupported_volumes_fail_the_pod(
    k8s_cluster: Cluster, kube: KubeClient, namespace: str
) -> None:
    # Prepare: one pod needs a Secret that does not exist yet, one a hostPath volume
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    waits = _job("waits", "import os; print('got', os.environ['TOKEN'])")
    waits["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}
    ]
    host = _job("host", "print('never')")
    host["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": "/data"}}]
    host["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}
    ]

    with PodRunner(k8s_cluster, [namespace]) as runner:
        # Execute
        kube.create(jobs, waits)
        kube.create(jobs, host)
        waiting = kube.wait_for(
            "the runner to wait for Secret later",
            lambda: [why for why in list(runner.waiting.values()) if "later" in why],
        )
        kube.create(
            f"/api/v1/namespaces/{namespace}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "later"},
                "stringData": {"token": "t0"},
            },
        )
        kube.wait_for("Job waits Complete", lambda: _condition(kube, f"{jobs}/waits", "Complete"))
        kube.wait_for("Job host Failed", lambda: _condition(kube, f"{jobs}/host", "Failed"))
        (host_pod,) = _pods(kube, namespace, "host")
        (run,) = runner.runs(namespace)

        # Assert
        assert "got t0" in run.log()
        assert waiting == [
            f"pod {namespace}/{run.name}: containers[0].env[0]: Secret {namespace}/later not found"
        ]
        assert host_pod["status"]["reason"] == "PodRunnerUnsupported"
        assert "spec.volumes[0] (data) is a ['hostPath'] volume" in host_pod["status"]["message"]
        assert len(runner.errors) == 1 and "use secret, configMap, emptyDir" in runner.errors[0]
        with pytest.raises(AssertionError, match="hostPath"):
            runner.check()


@pytest.mark.integration
def test_kwok_leaves_worker_pods_to_the_runner(kube: KubeClient, namespace: str) -> None:
    # Prepare: no runner; one Job with the worker labels, one without
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    kube.create(jobs, _job("worker", "pass"))
    kube.create(jobs, _job("other", "pass", labels={"app": "other"}))

    # Execute: kwok completes the other Job's pod; give it as long again for the worker's
    kube.wait_for("kwok to complete Job other", lambda: _condition(kube, f"{jobs}/other", "Complete"))
    kube.wait_for(
        "the worker pod Running",
        lambda: [p for p in _pods(kube, namespace, "worker") if p["status"].get("phase") == "Running"],
    )
    time.sleep(2)
    (pod,) = _pods(kube, namespace, "worker")

    # Assert
    assert pod["status"]["phase"] == "Running"
    assert "terminated" not in pod["status"]["containerStatuses"][0]["state"]


@pytest.mark.unit
def test_path_map_rewrites_whole_path_components_longest_mount_first() -> None:
    # Prepare
    paths = PathMap(
        {"/etc/hydrafed": Path("/h/cfg"), "/etc/hydrafed/keys/": Path("/h/keys"), "/data": Path("/h/d")}
    )

    # Execute
    rewritten = [
        paths.rewrite(s)
        for s in (
            "--config=/etc/hydrafed/party.yaml",
            "/etc/hydrafed/keys/cardano.sk",
            "/etc/hydrafed-other/x /mnt/data /data",
            "open('/data/x')",
        )
    ]

    # Assert
    assert rewritten == [
        "--config=/h/cfg/party.yaml",
        "/h/keys/cardano.sk",
        "/etc/hydrafed-other/x /mnt/data /h/d",
        "open('/h/d/x')",
    ]


@pytest.mark.unit
def test_expand_follows_the_kubelet() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(MISSING)", {"A": "1", "B": "2"}) == "1-2-$(A)-$(MISSING)"
