"""The package boundaries of docs/architecture.md, enforced by import-linter.

The contracts live in pyproject.toml ([tool.importlinter]); `make lint` runs `lint-imports`.
These tests run the same contracts on the real tree, and on a copy of the package skeleton with
one planted violation per contract, so a contract that stopped biting fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Modules of the skeleton, each importing nothing unless a case plants an import.
SKELETON = (
    "cli",
    "spec",
    "errors",
    "head",
    "rounds",
    "hydra/client",
    "storage/local",
    "worker/party",
    "operator/main",
)

# (module that gets the import, what it imports, contract that must break)
VIOLATIONS = [
    ("operator/main", "torch", "the operator never imports the training stack or the worker"),
    ("operator/main", "peft", "the operator never imports the training stack or the worker"),
    ("operator/main", "hydrafed.worker.party", "the operator never imports the training stack or the worker"),
    ("worker/party", "kopf", "the worker never imports kopf or the operator"),
    ("worker/party", "hydrafed.operator.main", "the worker never imports kopf or the operator"),
    ("hydra/client", "hydrafed.storage.local", "hydra knows nothing of storage, Kubernetes or training"),
    ("storage/local", "hydrafed.hydra.client", "storage knows nothing of Hydra, Kubernetes or training"),
    ("hydra/client", "torch", "hydra knows nothing of storage, Kubernetes or training"),
    ("rounds", "hydrafed.worker.party", "hydrafed layers"),
    ("spec", "hydrafed.hydra.client", "hydrafed layers"),
    ("worker/party", "hydrafed.cli", "hydrafed layers"),
]


def _lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _skeleton(root: Path, module: str, imported: str) -> None:
    """A tiny `hydrafed` package with the real layout; `module` imports `imported` in a function."""
    for name in SKELETON:
        path = root / "hydrafed" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == root:
                break
            (parent / "__init__.py").touch()
        body = f"def late() -> None:\n    import {imported}\n" if name == module else ""
        path.write_text(body)
    for external in ("torch", "peft", "kopf"):
        (root / external).mkdir(exist_ok=True)
        (root / external / "__init__.py").touch()


def test_the_repository_keeps_every_contract() -> None:
    result = _lint_imports(REPO_ROOT, REPO_ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "imported", "contract"), VIOLATIONS)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, imported: str, contract: str
) -> None:
    # Prepare: the project's own contracts, run on a skeleton with one forbidden import.
    config = tmp_path / "importlinter.toml"
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    config.write_text(_to_toml(contracts))
    _skeleton(tmp_path, module, imported)

    # Execute
    result = _lint_imports(tmp_path, config)

    # Assert
    assert result.returncode != 0, result.stdout
    # lint-imports wraps long names; compare with the whitespace folded.
    (name,) = [c["name"] for c in contracts["contracts"] if c["name"].startswith(contract)]
    folded = " ".join(result.stdout.split())
    assert f"{name} BROKEN" in folded, result.stdout


def _to_toml(contracts: dict[str, object]) -> str:
    """Write [tool.importlinter] back as TOML (strings, booleans and string lists only)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace('"', '\\"') + '"'

    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {value(v)}" for k, v in contracts.items() if k != "contracts"]
    for contract in contracts["contracts"]:  # type: ignore[attr-defined]
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{k} = {value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"
