"""Without Go or without the built binaries the control plane fails loudly with the fix, never skips."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures import cluster

pytestmark = pytest.mark.unit

CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"


def _path_without_go(tmp_path: Path) -> str:
    """A PATH with make and the shell tools but no go."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for tool in ("make", "bash", "sh", "sed", "sort", "head", "printf", "echo", "command"):
        found = shutil.which(tool)
        if found:
            (shim / tool).symlink_to(found)
    return str(shim)


def test_make_build_without_go_fails_with_the_install_hint(tmp_path: Path) -> None:
    # Prepare
    env = {**os.environ, "PATH": _path_without_go(tmp_path)}

    # Execute
    result = subprocess.run(
        ["make", "-C", str(CLUSTER_DIR), "build"], env=env, capture_output=True, text=True, timeout=60
    )

    # Assert
    assert result.returncode != 0
    assert "the Go toolchain (>= 1.26) is needed" in result.stderr
    assert "https://go.dev/dl/" in result.stderr


def test_make_build_with_an_old_go_fails(tmp_path: Path) -> None:
    # Prepare: a fake `go` that reports 1.21
    shim = Path(_path_without_go(tmp_path))
    fake = shim / "go"
    fake.write_text("#!/bin/sh\necho go1.21.0\n")
    fake.chmod(0o755)

    # Execute
    result = subprocess.run(
        ["make", "-C", str(CLUSTER_DIR), "check-go"],
        env={**os.environ, "PATH": str(shim)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Assert
    assert result.returncode != 0
    assert "Go 1.21.0 is too old" in result.stderr


def test_missing_binaries_name_the_build_command(tmp_path: Path) -> None:
    # Prepare
    plane = cluster.ControlPlane(bin_dir=tmp_path)

    # Execute / Assert
    with pytest.raises(FileNotFoundError, match=r"kube-apiserver.*run `make cluster`"):
        plane.check_binaries()


def test_fake_gpu_node_advertises_gpus() -> None:
    # Execute
    node = cluster.FakeNode("gpu-0", gpus=4).manifest()

    # Assert
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["annotations"][cluster.KWOK_ANNOTATION] == "fake"
    assert "nvidia.com/gpu" not in cluster.FakeNode("cpu-0").manifest()["status"]["capacity"]


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {cluster.free_port() for _ in range(5)}
    assert len(ports) >= 4
    assert all(1024 < p < 65536 for p in ports)
