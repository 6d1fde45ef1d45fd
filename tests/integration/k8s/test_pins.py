"""The wrapper go.mod replaces exactly the staging modules k8s.io/kubernetes' published go.mod needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CACHE_DIR, REPO_ROOT

pytestmark = pytest.mark.integration

CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"


def _versions() -> dict[str, str]:
    text = (CLUSTER_DIR / "versions.mk").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)\s*:=\s*(\S+)", text, flags=re.MULTILINE))


def test_kube_wrapper_replaces_every_v0_requirement_of_kubernetes() -> None:
    # Prepare: the published go.mod, from the module cache `make cluster` filled (no network)
    k8s = _versions()["K8S_VERSION"]
    env = {
        **os.environ,
        "GOMODCACHE": str(CACHE_DIR / "gomod"),
        "GOFLAGS": "-mod=readonly",
        "GOPROXY": "off",
        "GOWORK": "off",
        "GOTOOLCHAIN": "local",
    }
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{k8s}"],
        cwd=CLUSTER_DIR / "kube",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    published = Path(json.loads(info.stdout)["GoMod"]).read_text(encoding="utf-8")

    # Execute
    needed = set(re.findall(r"^\s*(k8s\.io/[\w.-]+) v0\.0\.0(?:\s|$)", published, flags=re.MULTILINE))
    wrapper = (CLUSTER_DIR / "kube" / "go.mod").read_text()
    replaced = dict(
        re.findall(r"^replace (k8s\.io/[\w.-]+) => k8s\.io/[\w.-]+ (v\S+)", wrapper, flags=re.MULTILINE)
    )

    # Assert
    staging = "v0." + k8s.removeprefix("v1.")
    assert len(needed) >= 30
    assert set(replaced) == needed
    assert set(replaced.values()) == {staging}
    assert f"k8s.io/kubernetes {k8s}" in wrapper
