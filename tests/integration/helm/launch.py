"""Two ways to start the operator as the chart's Deployment would: a local process, or the image.

kwok runs no containers, so the chart tests take the installed Deployment's rendered args and
the chart ServiceAccount's token and run them themselves: as ``.venv/bin/hydrafed`` (always), or
inside the built operator image with Debian's podman (host network, read-only root, uid 10001),
where podman can start containers.

podman in this sandbox needs two settings a normal host does not (docs/images.md):

- rootful podman asks crun for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 32768 by default, above the
  sandbox's hard limits, and it lacks CAP_SYS_RESOURCE to raise them ("crun: setrlimit
  `RLIMIT_NOFILE`: Operation not permitted"): ``--ulimit`` at the limits it has.
- the cgroup layout is hybrid (v1 controllers plus a cgroup2 ``unified`` holding ``hugetlb``),
  which crun 1.8 refuses ("cgroups in hybrid mode not supported, drop all controllers from
  cgroupv2"): podman runs in a private mount namespace with ``/sys/fs/cgroup/unified`` unmounted,
  so crun sees plain cgroup v1; nothing changes outside that namespace.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import REPO_ROOT

HYDRAFED = REPO_ROOT / ".venv" / "bin" / "hydrafed"
OPERATOR_IMAGE = "ghcr.io/hydrafed/operator:0.1.0"
PODMAN_NPROC_CAP = 32768
"""podman lowers its own RLIMIT_NPROC to this at start; a container cannot ask for more."""


def podman_missing() -> str | None:
    """Why the image cannot be run here, or None."""
    if shutil.which("podman") is None:
        return "podman absent (apt-get install podman): images are not required in CI"
    found = subprocess.run(
        ["podman", "image", "exists", OPERATOR_IMAGE], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return f"{OPERATOR_IMAGE} not in podman's store: run `make images` first (minutes)"
    # an image built from an older tree fails on today's CRDs for reasons that are not the chart's
    inside = "/opt/hydrafed/lib/python3.11/site-packages/hydrafed/spec.py"
    hashed = subprocess.run(
        podman(["podman", "run", "--rm", *_ulimits(), "--entrypoint=sha256sum", OPERATOR_IMAGE, inside]),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    ours = hashlib.sha256((REPO_ROOT / "hydrafed" / "spec.py").read_bytes()).hexdigest()
    if hashed.stdout.split()[:1] != [ours]:
        return f"{OPERATOR_IMAGE} was built from another hydrafed/spec.py: rerun `make images`"
    return None


def _ulimits() -> list[str]:
    """RLIMIT_NOFILE/NPROC at what podman has (it cannot raise them here)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_NPROC_CAP)
    return [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}"]


def _hybrid_cgroups() -> bool:
    """True where /sys/fs/cgroup is v1 with a cgroup2 ``unified`` that holds controllers."""
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    return controllers.exists() and bool(controllers.read_text().split())


def podman_run_argv(
    image: str,
    args: Sequence[str],
    *,
    name: str,
    env: dict[str, str],
    mounts: Sequence[tuple[Path, str, str]],
    extra: Sequence[str] = (),
) -> list[str]:
    """``podman run`` of ``image`` as the chart's securityContext runs it, fit for this sandbox.

    ``mounts`` are (host path, container path, "ro"|"rw") bind mounts; ``extra`` more flags.
    """
    run = ["podman", "run", "--rm", f"--name={name}", "--network=host", "--read-only", "--tmpfs=/tmp"]
    run += ["--user=10001:10001", "--cap-drop=all", "--security-opt=no-new-privileges", *_ulimits()]
    run += [f"--env={k}={v}" for k, v in env.items()]
    run += [f"--volume={host}:{inside}:{mode}" for host, inside, mode in mounts]
    return podman([*run, *extra, image, *args])


def podman(argv: Sequence[str]) -> list[str]:
    """``argv`` (a podman command), wrapped so that crun sees cgroup v1 where the layout is hybrid."""
    if not _hybrid_cgroups():
        return list(argv)
    script = f"umount /sys/fs/cgroup/unified && exec {shlex.join(argv)}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def start_operator(
    how: str,
    args: Sequence[str],
    *,
    kubeconfig: Path,
    ca_file: Path,
    namespace: str,
    storage_root: Path,
    log: Path,
    name: str,
) -> subprocess.Popen[bytes]:
    """Start ``hydrafed <args>`` (the Deployment's args) as ``how`` = "process" or "podman"."""
    env = {"POD_NAMESPACE": namespace, "PYTHONUNBUFFERED": "1"}
    if how == "process":
        argv = [str(HYDRAFED), *args]
        env = {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}
    else:
        # the container's user (10001) reads the kubeconfig and writes the local buckets
        readable = kubeconfig.with_name(f"{kubeconfig.name}.container")
        shutil.copyfile(kubeconfig, readable)
        readable.chmod(0o644)
        os.chown(storage_root, 10001, 10001)
        mounts = [
            (readable, "/etc/hydrafed/kubeconfig", "ro"),
            (ca_file, str(ca_file), "ro"),
            (storage_root, str(storage_root), "rw"),
        ]
        argv = podman_run_argv(
            OPERATOR_IMAGE,
            args,
            name=name,
            env={**env, "KUBECONFIG": "/etc/hydrafed/kubeconfig"},
            mounts=mounts,
        )
        env = dict(os.environ)
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_operator(how: str, proc: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM (``podman stop`` for a container), then wait."""
    if how == "podman":
        stop = podman(["podman", "stop", "--time=10", name])
        subprocess.run(stop, capture_output=True, check=False, timeout=60)
    else:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
