"""The distribution ships every package, and nothing is importable as top-level `operator`."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

PACKAGE_ROOTS = {"hydrafed": "hydrafed", "operator": "hydrafed.operator", "worker": "hydrafed.worker"}


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


def test_operator_stays_the_standard_library_module() -> None:
    import operator

    assert Path(operator.__file__).parent == Path(sys.modules["os"].__file__).parent
