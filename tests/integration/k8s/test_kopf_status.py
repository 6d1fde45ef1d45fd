"""kopf against the generated CRDs: its status bookkeeping survives pruning, retries count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from hydrafed import spec
from tests.fixtures.cluster import Cluster
from tests.fixtures.kube import KubeClient
from tests.integration.k8s import cases, kopf_probe

pytestmark = pytest.mark.integration


def test_kopf_progress_in_status_survives_and_the_retry_succeeds(
    k8s_cluster: Cluster,
    kube: KubeClient,
    crds_installed: list[str],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.setenv("KUBECONFIG", str(k8s_cluster.kubeconfig))
    kopf_probe.CALLS.clear()
    path = f"/apis/{spec.API_GROUP}/{spec.API_VERSION}/namespaces/{namespace}/federations"
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", str(Path(kopf_probe.__file__))]

    # Execute
    with KopfRunner(args, timeout=60) as runner:
        kube.create(path, cases.federation({}))
        done: dict[str, Any] = kube.wait_for(
            "kopf to write status.phase",
            lambda: (lambda obj: obj if obj.get("status", {}).get("phase") == "Provisioning" else None)(
                kube.get(f"{path}/digits")
            ),
            timeout=45,
        )

    # Assert: exactly one failure and one success; a pruned status.kopf would restart at retry 0
    assert kopf_probe.CALLS == [0, 1]
    assert done["status"]["message"] == "waiting for parties"
    assert "inconsistencies" not in runner.output
    assert runner.exception is None
