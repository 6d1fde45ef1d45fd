"""The package boundaries of ARCHITECTURE.md, checked on the source of every module.

import-linter cannot follow the package-dir mapping of worker/, so this test
reads the imports itself: any `import x` or `from x import` anywhere in a module counts,
including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

FORBIDDEN = {
    "hydrafed/hydra": (
        "hydrafed.operator",
        "hydrafed.worker",
        "hydrafed.storage",
        "kopf",
        "torch",
        "kubernetes",
    ),
    "hydrafed/storage": ("hydrafed.hydra", "hydrafed.operator", "hydrafed.worker", "kopf", "torch"),
    "worker": ("hydrafed.operator", "kopf"),
    "hydrafed/operator": ("hydrafed.worker", "torch", "peft", "transformers", "bitsandbytes"),
}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_package_boundaries(folder: str) -> None:
    violations = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        for name in _imported_modules(path):
            for banned in FORBIDDEN[folder]:
                if name == banned or name.startswith(banned + "."):
                    violations.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert not violations, "\n".join(violations)
