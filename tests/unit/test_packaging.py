"""The distribution ships every package, and nothing is importable as top-level `operator`."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PACKAGE_ROOTS = {"hydrafed": "hydrafed", "worker": "hydrafed.worker"}


def _declared_packages() -> set[str]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, dotted in PACKAGE_ROOTS.items():
        for init in (REPO_ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO_ROOT / folder)
            found.add(".".join([dotted, *relative.parts]))
    return found


def test_every_package_on_disk_is_declared() -> None:
    missing = _packages_on_disk() - _declared_packages()
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_every_declared_package_imports() -> None:
    for name in sorted(_declared_packages()):
        importlib.import_module(name)


def test_nothing_in_the_repository_root_shadows_the_standard_library() -> None:
    # Prepare: python run from the repository root puts it first on sys.path; -S skips site's .pth
    # files, which would otherwise import the real modules first and hide a shadowing package.
    stdlib = Path(sys.modules["os"].__file__).parent
    probe = "import operator, sys; print(operator.__file__)"

    # Execute
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )

    # Assert
    assert Path(result.stdout.strip()).parent == stdlib
