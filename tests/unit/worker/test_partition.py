"""Partitions: deterministic per seed, disjoint, covering, never an empty shard."""

from __future__ import annotations

import numpy as np
import pytest

from hydrafed.errors import ConfigError
from hydrafed.worker.partition import Partition, parse_partition, partition_indices

pytestmark = pytest.mark.unit

LABELS = np.repeat(np.arange(10, dtype=np.int64), 300)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet:0.5"])
def test_same_seed_gives_the_same_shards_and_another_seed_does_not(scheme: str) -> None:
    first = partition_indices(LABELS, 7, scheme, seed=11)
    again = partition_indices(LABELS, 7, scheme, seed=11)
    other = partition_indices(LABELS, 7, scheme, seed=12)

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet:0.1", "dirichlet:100"])
@pytest.mark.parametrize("parties", [1, 3, 10])
def test_shards_are_disjoint_cover_the_pool_and_are_not_empty(scheme: str, parties: int) -> None:
    shards = partition_indices(LABELS, parties, scheme, seed=0)

    joined = np.concatenate(shards)
    assert len(shards) == parties
    assert min(len(s) for s in shards) > 0
    assert len(joined) == len(LABELS)
    assert np.array_equal(np.sort(joined), np.arange(len(LABELS)))


def test_iid_shards_are_balanced_in_size_and_labels() -> None:
    shards = partition_indices(LABELS, 10, "iid", seed=0)

    assert {len(s) for s in shards} == {300}
    for shard in shards:
        counts = np.bincount(LABELS[shard], minlength=10)
        assert counts.min() >= 10


def test_small_dirichlet_alpha_skews_the_labels_and_large_alpha_does_not() -> None:
    def top_class_share(scheme: str) -> float:
        shards = partition_indices(LABELS, 5, scheme, seed=1)
        return float(np.mean([np.bincount(LABELS[s], minlength=10).max() / len(s) for s in shards]))

    assert top_class_share("dirichlet:0.1") > 0.4
    assert top_class_share("dirichlet:1000") < 0.15


def test_extreme_skew_still_gives_every_party_an_example() -> None:
    labels = np.zeros(40, dtype=np.int64)

    shards = partition_indices(labels, 40, "dirichlet:0.001", seed=5)

    assert sorted(len(s) for s in shards) == [1] * 40


def test_parse_partition() -> None:
    assert parse_partition("iid") == Partition("iid")
    assert parse_partition("dirichlet:0.3") == Partition("dirichlet", 0.3)
    assert str(parse_partition("dirichlet:0.3")) == "dirichlet:0.3"
    for bad in ["dirichlet:0", "dirichlet:x", "shards", "dirichlet:-1"]:
        with pytest.raises(ConfigError, match=r"use iid or dirichlet:ALPHA"):
            parse_partition(bad)


def test_more_parties_than_examples_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot give 5 parties one each"):
        partition_indices(np.zeros(3, dtype=np.int64), 5, "iid", seed=0)
