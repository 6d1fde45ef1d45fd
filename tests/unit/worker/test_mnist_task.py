"""MnistTask: train/evaluate smoke runs on small subsets, and the exchanged state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hydrafed.errors import AggregationError
from hydrafed.spec import TrainingSpec
from hydrafed.worker.data import load_split
from hydrafed.worker.mnist_task import MnistTask, load_shards
from hydrafed.worker.partition import load_shard, partition_indices, shard_sizes
from hydrafed.worker.task import LocalTask
from hydrafed.worker.training import TrainConfig

pytestmark = pytest.mark.unit

SMALL = TrainingSpec(dataset="digits", rounds=2, sample_limit=600, seed=3)


def test_task_trains_and_evaluates_on_real_mnist(mnist_cache: Path) -> None:
    spec = TrainingSpec(sample_limit=1500, seed=0, learning_rate=0.05, momentum=0.9, local_epochs=3)
    task: LocalTask = MnistTask.from_spec(spec, party_index=1, parties=2, cache=mnist_cache)
    before = task.evaluate()["accuracy"]

    result = task.train_round(1)
    after = task.evaluate()

    assert result.samples == 600
    assert result.seconds > 0
    assert result.metrics["steps"] == 30  # ceil(600 / 64) batches, three epochs
    assert before < 0.3
    assert after["accuracy"] > 0.75
    assert after["loss"] > 0


def test_shards_and_test_set_are_the_same_in_every_party_process() -> None:
    shards, test, classes = load_shards(SMALL, 3)
    again, test_again, _ = load_shards(SMALL, 3)

    assert classes == 10
    assert [len(s) for s in shards] == [160, 160, 160]
    assert all(
        torch.equal(torch.from_numpy(a.images), torch.from_numpy(b.images))
        for a, b in zip(shards, again, strict=True)
    )
    assert torch.equal(torch.from_numpy(test.labels), torch.from_numpy(test_again.labels))


def test_every_party_starts_from_the_same_weights() -> None:
    a = MnistTask.from_spec(SMALL, party_index=0, parties=2).exchanged_state()
    b = MnistTask.from_spec(SMALL, party_index=1, parties=2).exchanged_state()

    assert list(a) == sorted(a)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_exchanged_state_is_a_copy() -> None:
    task = MnistTask.from_spec(SMALL, party_index=0, parties=1)
    state = task.exchanged_state()
    for tensor in state.values():
        tensor.zero_()

    assert any(bool(t.abs().sum() > 0) for t in task.exchanged_state().values())


def test_loading_a_state_that_does_not_fit_names_the_tensor() -> None:
    task = MnistTask.from_spec(SMALL, party_index=0, parties=1)
    state = task.exchanged_state()
    wrong_shape = {**state, "net.1.weight": torch.zeros(3, 3)}
    missing = {k: v for k, v in state.items() if k != "net.5.bias"}

    with pytest.raises(AggregationError, match=r"'net.1.weight' is torch.float32 \(3, 3\)"):
        task.load_exchanged_state(wrong_shape)
    with pytest.raises(AggregationError, match=r"missing \['net.5.bias'\]"):
        task.load_exchanged_state(missing)


def test_training_is_reproducible() -> None:
    def run() -> dict[str, torch.Tensor]:
        task = MnistTask.from_spec(SMALL, party_index=0, parties=2)
        task.train_round(1)
        task.train_round(2)
        return task.exchanged_state()

    first, second = run(), run()

    assert all(torch.equal(first[k], second[k]) for k in first)


def test_local_steps_replace_epochs_and_run_across_epoch_boundaries() -> None:
    spec = TrainingSpec(dataset="digits", sample_limit=600, seed=3, local_steps=11, batch_size=64)
    task = MnistTask.from_spec(spec, party_index=0, parties=2)

    result = task.train_round(1)

    assert task.samples == 240
    assert result.metrics["steps"] == 11  # four batches per epoch: runs into the third epoch


def test_a_party_that_never_evaluates_builds_no_test_set() -> None:
    task = MnistTask.from_spec(SMALL, party_index=1, parties=3)
    task.train_round(1)

    assert not task.holds_test_set

    task.evaluate()

    assert task.holds_test_set


def test_the_deferred_test_set_gives_the_metrics_of_the_copied_one() -> None:
    shards, test, classes = load_shards(SMALL, 3)
    eager = MnistTask(
        SMALL.model,
        shards[2],
        test,
        TrainConfig.from_spec(SMALL),
        seed=SMALL.seed,
        shuffle_seed=7,
        num_classes=classes,
    )
    lazy = MnistTask.from_spec(SMALL, party_index=2, parties=3)
    state = eager.exchanged_state()
    lazy.load_exchanged_state(state)

    assert lazy.evaluate() == eager.evaluate()


@pytest.mark.parametrize("partition", ["iid", "dirichlet:0.3"])
def test_a_party_copies_the_same_shard_as_the_whole_partition_gives(partition: str) -> None:
    spec = SMALL.model_copy(update={"partition": partition})
    shards, test, classes = load_shards(spec, 4)
    # the eager way, independent of the selections: the whole split copied, then subsets
    split = load_split(spec.dataset, seed=spec.seed, test_fraction=spec.test_fraction, sample_limit=600)
    eager = [split.train.subset(i) for i in partition_indices(split.train.labels, 4, partition, spec.seed)]

    assert shard_sizes(spec, 4) == [len(s) for s in shards]
    for index, shard in enumerate(shards):
        own, own_test, own_classes = load_shard(spec, 4, index)
        for got in (own, shard):
            assert np.array_equal(got.images, eager[index].images)
            assert np.array_equal(got.labels, eager[index].labels)
        assert np.array_equal(own_test.load().images, split.test.images)
        assert np.array_equal(test.images, split.test.images)
        assert own_classes == classes
