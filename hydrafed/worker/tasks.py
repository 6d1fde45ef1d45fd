"""Which ``LocalTask`` trains a given TrainingSpec: image models here, causal LMs in ``worker.lm``.

Importing this module costs no torch (the tasks import it when built), so simulate's parent
can check the data with ``check_data`` before any party process starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from hydrafed.errors import ConfigError
from hydrafed.spec import ModelName, TrainingSpec
from hydrafed.worker import partition

if TYPE_CHECKING:
    from hydrafed.worker.task import LocalTask

IMAGE_MODELS = (ModelName.MLP, ModelName.CNN)


def build_task(spec: TrainingSpec, *, party_index: int, parties: int, cache: Path | None = None) -> LocalTask:
    """The task of party ``party_index`` among ``parties``; a pooled task when parties == 0."""
    if spec.model in IMAGE_MODELS:
        from hydrafed.worker.mnist_task import MnistTask  # torch: only where a task is built

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


def check_data(spec: TrainingSpec, *, parties: int, cache: Path | None = None) -> None:
    """Raise ConfigError now if an image dataset is missing or some party's shard would be empty.

    Torch-free: it loads and splits the data as every party will, without building a model or
    copying any shard.
    Language models are checked by the parties themselves (their failure names the party).
    """
    if spec.model not in IMAGE_MODELS:
        return
    for index, size in enumerate(partition.shard_sizes(spec, parties, cache=cache)):
        if size == 0:
            raise ConfigError(
                f"party {index + 1}'s training shard is empty: use fewer parties or more data "
                "(a larger --sample-limit, or --partition iid)"
            )
