"""The Helm chart on the real control plane: lint, render, install, upgrade, uninstall, the hook.

kwok plays the kubelet, so "Ready" means the Deployment's pod was scheduled and marked Ready;
no container runs. The pre-delete hook's Job is marked Succeeded by kwok without running, so
the hook's script is run here directly with the hook ServiceAccount's own token: that proves
the script and the hook's RBAC delete Federations then Parties; that Helm runs the Job before
deleting the operator is Helm's documented pre-delete ordering, checked here only as
"uninstall ends and removes the release's objects".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import ApiError, KubeClient
from tests.fixtures.operator import service_account_token

CHART = REPO_ROOT / "charts" / "hydrafed"
HELM = REPO_ROOT / "tests" / "cluster" / "bin" / "helm"
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import sync_chart  # noqa: E402

FEDS = "/apis/hydrafed.io/v1alpha1/namespaces/{ns}/federations"
PARTIES = "/apis/hydrafed.io/v1alpha1/namespaces/{ns}/parties"


def helm(cluster: Cluster | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the helm built with the control plane; its state stays under a temp HOME."""
    env = cluster.env() if cluster else dict(os.environ)
    home = (cluster.workdir if cluster else Path("/tmp")) / "helm-home"
    env.update(HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"))
    env["HELM_DATA_HOME"] = str(home / "data")
    done = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def _federation(name: str = "digits") -> dict[str, object]:
    return {"apiVersion": "hydrafed.io/v1alpha1", "kind": "Federation", "metadata": {"name": name}}


def _deployment(kube: KubeClient, ns: str) -> dict[str, object]:
    return kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/rel-operator")


def _ready(kube: KubeClient, ns: str) -> bool:
    status = _deployment(kube, ns).get("status") or {}
    assert isinstance(status, dict)
    return bool(status.get("readyReplicas") == 1 and status.get("updatedReplicas") == 1)


@pytest.mark.unit
def test_generated_chart_files_are_current() -> None:
    assert sync_chart.stale() == []
    for path in (CHART / "crds").iterdir():
        assert path.read_text() == (REPO_ROOT / "crds" / path.name).read_text()


@pytest.mark.integration
def test_lint_and_bad_values_name_the_field() -> None:
    # Execute
    lint = helm(None, "lint", "--strict", str(CHART))
    bad_port = helm(None, "template", "r", str(CHART), "--set", "metrics.port=http", check=False)
    typo = helm(None, "template", "r", str(CHART), "--set", "watchNamespace=a", check=False)

    # Assert
    assert "0 chart(s) failed" in lint.stdout
    assert bad_port.returncode != 0 and "/metrics/port" in bad_port.stderr
    assert typo.returncode != 0 and "'watchNamespace' not allowed" in typo.stderr


@pytest.mark.integration
def test_rendered_chart_passes_a_server_side_dry_run(k8s_cluster: Cluster, namespace: str) -> None:
    # Prepare: every optional part on, watching two namespaces
    other = f"{namespace}-b"
    k8s_cluster.kubectl("create", "namespace", other)
    rendered = helm(
        k8s_cluster,
        "template", "rel", str(CHART), "--namespace", namespace, "--include-crds",
        "--set", f"watchNamespaces={{{namespace},{other}}}",
    ).stdout  # fmt: skip
    path = k8s_cluster.workdir / f"{namespace}.yaml"
    path.write_text(rendered)

    # Execute
    applied = k8s_cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=test", "-f", str(path)
    )

    # Assert
    kinds = sorted({d["kind"] for d in yaml.safe_load_all(rendered) if d})
    assert kinds == [
        *("ClusterRole", "ConfigMap", "CustomResourceDefinition", "Deployment", "Job"),
        *("RoleBinding", "Service", "ServiceAccount"),
    ]
    assert applied.stdout.count("rolebinding.rbac.authorization.k8s.io/rel-operator serverside-applied") == 2
    assert "deployment.apps/rel-operator serverside-applied (server dry run)" in applied.stdout


@pytest.mark.integration
def test_install_upgrade_and_uninstall_with_a_live_federation(
    k8s_cluster: Cluster, kube: KubeClient, namespace: str
) -> None:
    # Execute: install; the operator Deployment becomes Ready (kwok pod)
    helm(k8s_cluster, "install", "rel", str(CHART), "--namespace", namespace, "--wait", "--timeout", "120s")
    kube.wait_for("the operator Deployment Ready", lambda: _ready(kube, namespace), timeout=120)
    installed = _deployment(kube, namespace)
    kube.create(FEDS.format(ns=namespace), _federation())

    # Execute: upgrade with a changed value
    helm(
        k8s_cluster, "upgrade", "rel", str(CHART), "--namespace", namespace, "--wait", "--timeout", "120s",
        "--set", "metrics.port=9191",
    )  # fmt: skip
    kube.wait_for("the upgraded Deployment Ready", lambda: _ready(kube, namespace), timeout=120)
    upgraded = _deployment(kube, namespace)

    # Execute: uninstall while a Federation exists (the hook Job is marked Succeeded by kwok)
    uninstall = helm(k8s_cluster, "uninstall", "rel", "--namespace", namespace, "--wait", "--timeout", "120s")

    # Assert
    container = installed["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["args"][0] == "operator" and "--metrics-port=9090" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["env"][0]["name"] == "POD_NAMESPACE"
    assert installed["spec"]["strategy"]["type"] == "Recreate"  # type: ignore[index]
    new_args = upgraded["spec"]["template"]["spec"]["containers"][0]["args"]  # type: ignore[index]
    assert "--metrics-port=9191" in new_args
    assert "uninstalled" in uninstall.stdout
    with pytest.raises(ApiError) as gone:
        _deployment(kube, namespace)
    assert gone.value.code == 404
    assert helm(k8s_cluster, "list", "--namespace", namespace, "-q").stdout.strip() == ""


@pytest.mark.integration
def test_pre_delete_script_with_the_hook_token_deletes_federations_then_parties(
    k8s_cluster: Cluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    # Prepare: the release, a Federation and a Party, and the hook ServiceAccount's token
    helm(
        k8s_cluster,
        "install",
        "rel",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "preDelete.timeoutSeconds=30",
    )
    kube.create(FEDS.format(ns=namespace), _federation())
    party = {
        "apiVersion": "hydrafed.io/v1alpha1",
        "kind": "Party",
        "metadata": {"name": "alice"},
        "spec": {"federation": "digits", "local": True, "bucket": "alice-digits"},
    }
    kube.create(PARTIES.format(ns=namespace), party)
    (tmp_path / "token").write_text(service_account_token(kube, namespace, "rel-operator-pre-delete", 600))
    env = {
        **os.environ, "API_SERVER": k8s_cluster.server, "TOKEN_FILE": str(tmp_path / "token"),
        "CA_FILE": str(k8s_cluster.ca_file), "NAMESPACES": namespace, "TIMEOUT_SECONDS": "30",
    }  # fmt: skip
    foreign = {**env, "NAMESPACES": "default"}

    # Execute
    denied = subprocess.run(
        [sys.executable, str(CHART / "files" / "pre-delete.py")], env=foreign, capture_output=True, text=True
    )
    done = subprocess.run(
        [sys.executable, str(CHART / "files" / "pre-delete.py")], env=env, capture_output=True, text=True
    )

    # Assert: denied outside the watched namespaces; inside, both kinds are gone
    assert denied.returncode != 0 and "403" in denied.stderr
    assert done.returncode == 0, done.stderr
    assert "federations/digits" in done.stdout.splitlines()[0]
    assert kube.get(FEDS.format(ns=namespace))["items"] == []
    assert kube.get(PARTIES.format(ns=namespace))["items"] == []
    helm(k8s_cluster, "uninstall", "rel", "--namespace", namespace, "--wait")
