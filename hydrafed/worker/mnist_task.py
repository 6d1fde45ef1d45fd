"""``LocalTask`` for the small full models (mlp, cnn) on MNIST-like images.

Each party process builds its task from the shared TrainingSpec and its index among the
parties: it maps the decoded dataset, computes the whole partition from the seed and copies only
its own shard. The held-out test set common to all stays a selection of the shared pool until
the task first evaluates: with ``evaluation.scope: shared`` only one party ever does, so the
others never hold a test set (2,000 MNIST images are 6 MiB as float32 tensors). All parties start
from the same initial weights (``build_model`` with the spec's seed). The exchanged state is the
full state dict.

Public API::

    load_shards(spec, parties, *, cache=None) -> (list[Dataset], test: Dataset, num_classes)
    MnistTask(model_name, train, test: Dataset | Selection, config, *, seed, shuffle_seed, num_classes=10)
    MnistTask.from_spec(spec, *, party_index, parties, cache=None) -> MnistTask
    MnistTask.pooled(spec, *, cache=None) -> MnistTask        # all training data: the centralized bound
    task.samples -> int
    task.holds_test_set -> bool                                # True once it has evaluated
    ... plus the LocalTask protocol (exchanged_state, load_exchanged_state, train_round, evaluate)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from hydrafed.errors import ConfigError
from hydrafed.spec import ModelName, TrainingSpec
from hydrafed.worker.data import Dataset, Selection
from hydrafed.worker.fit import check_fits
from hydrafed.worker.models import build_model
from hydrafed.worker.partition import load_shard
from hydrafed.worker.partition import load_shards as load_shards
from hydrafed.worker.task import Tensors, TrainResult
from hydrafed.worker.training import TrainConfig, evaluate, to_tensors, train_round


class MnistTask:
    """One party's image model, shard and optimiser settings."""

    def __init__(
        self,
        model_name: ModelName | str,
        train: Dataset,
        test: Dataset | Selection,
        config: TrainConfig,
        *,
        seed: int,
        shuffle_seed: int,
        num_classes: int = 10,
    ) -> None:
        if len(train) == 0:
            raise ConfigError("this party's training shard is empty: use fewer parties or more data")
        if train.input_shape != test.input_shape:
            raise ConfigError(f"train images {train.input_shape} and test images {test.input_shape} differ")
        self.model = build_model(model_name, train.input_shape, num_classes, seed=seed)
        self.config = config
        self.shuffle_seed = shuffle_seed
        self._x, self._y = to_tensors(train.images, train.labels)
        self._test: Dataset | Selection | None = test
        self._test_tensors: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_spec(
        cls, spec: TrainingSpec, *, party_index: int, parties: int, cache: Path | None = None
    ) -> MnistTask:
        """The task of party ``party_index`` (0-based, in the federation's party order)."""
        if not 0 <= party_index < parties:
            raise ConfigError(f"party index {party_index} is outside 0..{parties - 1}")
        shard, test, num_classes = load_shard(spec, parties, party_index, cache=cache)
        return cls(
            spec.model,
            shard,
            test,
            TrainConfig.from_spec(spec),
            seed=spec.seed,
            shuffle_seed=spec.seed * 1009 + party_index + 1,
            num_classes=num_classes,
        )

    @classmethod
    def pooled(cls, spec: TrainingSpec, *, cache: Path | None = None) -> MnistTask:
        """All training data in one task: the centralized upper bound with the same budget."""
        shard, test, num_classes = load_shard(spec, 1, 0, cache=cache)
        return cls(
            spec.model,
            shard,
            test,
            TrainConfig.from_spec(spec),
            seed=spec.seed,
            shuffle_seed=spec.seed * 1009,
            num_classes=num_classes,
        )

    @property
    def samples(self) -> int:
        """Training examples in this party's shard (its FedAvg weight)."""
        return int(self._y.shape[0])

    @property
    def holds_test_set(self) -> bool:
        """Whether the test set has been copied into tensors (on the first ``evaluate``)."""
        return self._test_tensors is not None

    def exchanged_state(self) -> Tensors:
        """The whole state dict as detached CPU copies, keys sorted."""
        state = self.model.state_dict()
        return {key: state[key].detach().cpu().clone() for key in sorted(state)}

    def load_exchanged_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the aggregated global weights; every key must match in name, shape and dtype."""
        check_fits(state, self.model.state_dict(), whose="the global state")
        self.model.load_state_dict(dict(state), strict=True)

    def train_round(self, round_no: int) -> TrainResult:
        """``localEpochs`` epochs of SGD on the shard from the loaded global weights."""
        stats = train_round(
            self.model, self._x, self._y, self.config, round_no=round_no, seed=self.shuffle_seed
        )
        return TrainResult(
            samples=self.samples,
            seconds=stats.seconds,
            metrics={"loss": stats.loss, "steps": float(stats.steps)},
        )

    def evaluate(self) -> dict[str, float]:
        """Accuracy and loss on the common held-out test set (made tensors on the first call)."""
        if self._test_tensors is None:
            assert self._test is not None
            test = self._test.load() if isinstance(self._test, Selection) else self._test
            self._test_tensors = to_tensors(test.images, test.labels)
            self._test = None
        return evaluate(self.model, *self._test_tensors)
