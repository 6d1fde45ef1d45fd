"""Shared pytest configuration: the path of the hydra-node reference data and markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import hydra_reference as hydra_reference_mod

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CACHE_DIR = Path(os.environ.get("HYDRAFED_CACHE") or Path.home() / ".cache" / "hydrafed")
"""Downloads and builds shared by every checkout on this machine (the Makefile's CACHE)."""


@pytest.fixture(scope="session")
def hydra_reference() -> Path:
    """Directory of hydra-node's api.yaml and golden samples; skips (fails under CI) when absent."""
    return hydra_reference_mod.locate(hydra_reference_mod.default_path(REPO_ROOT), os.environ)
