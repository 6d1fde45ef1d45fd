"""What the benchmarks need beyond the project's venv, created on demand so `make bench` works anywhere.

- Flower lives in its own venv (``.cache/bench-venv``): ``flwr[simulation]`` pulls Ray and its
  pinned dependency tree, which must never touch the project's ``.venv``. After Flower is
  installed, a ``.pth`` file appends the project's site-packages and the repository root to the
  bench venv's path, so the Flower clients train with the very same hydrafed code (and the same
  torch) as ``hydrafed simulate``, while Flower's own dependencies take precedence.
- Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` (IDX files under
  /usr/share/datasets/fashion-mnist); installed with apt-get when missing and we are root.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = REPO_ROOT / ".cache" / "bench-venv"
FLOWER_REQUIREMENT = "flwr[simulation]==1.42.0"
# Where bench-venv processes run: a bare interpreter started in the repository root would import
# the repo's operator/ folder in place of the standard library's operator module.
BENCH_CWD = BENCH_VENV / "bench-path"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_MARKER = ".hydrafed-bench-ready"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def flower_python() -> Path:
    """The bench venv's interpreter with Flower installed and hydrafed on its path (created once)."""
    python = _venv_python(BENCH_VENV)
    marker = BENCH_VENV / _MARKER
    if marker.is_file() and marker.read_text().strip() == FLOWER_REQUIREMENT and python.exists():
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"[bench] creating {BENCH_VENV} with {FLOWER_REQUIREMENT} (once)", flush=True)
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True)
    pth = _site_packages(python) / "zz_hydrafed_project.pth"
    pth.unlink(missing_ok=True)  # pip must not see the project's packages while resolving Flower
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", FLOWER_REQUIREMENT],
        check=True,
        cwd=BENCH_VENV,  # never the repository root: its operator/ folder would shadow the stdlib
    )
    # addsitedir (not a bare path line) so the project's own .pth files, e.g. hydrafed's editable
    # install finder, are processed too. The repository root itself must not go on the path: its
    # operator/ folder would shadow the standard library, so only a link to bench/ is exposed.
    links = BENCH_VENV / "bench-path"
    links.mkdir(exist_ok=True)
    (links / "bench").unlink(missing_ok=True)
    (links / "bench").symlink_to(REPO_ROOT / "bench", target_is_directory=True)
    lines = [
        f"import site; site.addsitedir({p!r})" for p in site.getsitepackages() if p.endswith("site-packages")
    ]
    pth.write_text("\n".join([*lines, str(links)]) + "\n")
    marker.write_text(FLOWER_REQUIREMENT + "\n")
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def flower_version(python: Path) -> dict[str, str]:
    """Versions of flwr and ray in the bench venv (for the docs)."""
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m; print(m.version('flwr'), m.version('ray'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    flwr, ray = out.stdout.split()
    return {"flwr": flwr, "ray": ray}


def fashion_mnist_dir() -> Path | None:
    """Debian's Fashion-MNIST IDX folder, installed with apt-get if absent; None if that is impossible."""
    if (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_MNIST_DIR
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("[bench] Fashion-MNIST missing: `apt-get install dataset-fashion-mnist` as root", flush=True)
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    proc = subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], check=False, env=env)
    if proc.returncode != 0 or not FASHION_MNIST_DIR.is_dir():
        print("[bench] could not install dataset-fashion-mnist; skipping Fashion-MNIST", flush=True)
        return None
    return FASHION_MNIST_DIR
