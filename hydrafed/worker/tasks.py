"""Which ``LocalTask`` trains a given TrainingSpec: image models here, causal LMs in ``worker.lm``."""

from __future__ import annotations

import importlib
from pathlib import Path

from hydrafed.errors import ConfigError
from hydrafed.spec import ModelName, TrainingSpec
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.task import LocalTask

IMAGE_MODELS = (ModelName.MLP, ModelName.CNN)


def build_task(spec: TrainingSpec, *, party_index: int, parties: int, cache: Path | None = None) -> LocalTask:
    """The task of party ``party_index`` among ``parties``; a pooled task when parties == 0."""
    if spec.model in IMAGE_MODELS:
        if parties == 0:
            return MnistTask.pooled(spec, cache=cache)
        return MnistTask.from_spec(spec, party_index=party_index, parties=parties, cache=cache)
    try:
        lm_task = importlib.import_module("hydrafed.worker.lm.task")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"model {spec.model.value!r} needs the language-model worker (hydrafed.worker.lm), "
            "which is not installed: choose one of mlp, cnn"
        ) from exc
    task: LocalTask = lm_task.build_lm_task(spec, party_index=party_index, parties=parties, cache=cache)
    return task
