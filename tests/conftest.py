"""Shared pytest configuration: the path of the hydra-node reference data and markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CACHE_DIR = Path(os.environ.get("HYDRAFED_CACHE") or Path.home() / ".cache" / "hydrafed")
"""Downloads and builds shared by every checkout on this machine (the Makefile's CACHE)."""


@pytest.fixture(scope="session")
def hydra_reference() -> Path:
    """Directory of hydra-node's api.yaml and golden samples; skips when it is absent."""
    path = SHARED_REFERENCE / "hydra"
    if not (path / "api.yaml").is_file():
        pytest.skip(f"hydra-node reference data not found at {path} (it lives in ../shared/reference/hydra)")
    return path
