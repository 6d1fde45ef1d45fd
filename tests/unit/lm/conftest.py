"""A tiny random Llama with a trained tokenizer, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydrafed.worker.lm.tiny import make_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), seed=0)
