"""The distribution ships every package, and nothing is importable as top-level `operator`."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import setuptools

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def _declared_packages() -> set[str]:
    """What setuptools' discovery puts in the wheel, with the include pattern of pyproject.toml."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return set(setuptools.find_packages(where=str(REPO_ROOT), include=include))


def _source_folders() -> set[str]:
    """Every folder under hydrafed/ that holds Python source, as a dotted name."""
    return {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for path in (REPO_ROOT / "hydrafed").rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_every_source_folder_is_a_shipped_package() -> None:
    # A folder without __init__.py would be left out of the wheel by discovery.
    missing = _source_folders() - _declared_packages()
    assert not missing, f"add an __init__.py to: {sorted(missing)}"


def test_only_hydrafed_is_shipped() -> None:
    assert {name.split(".")[0] for name in _declared_packages()} == {"hydrafed"}


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
