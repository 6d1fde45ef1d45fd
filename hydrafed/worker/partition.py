"""Deterministic per-party shards of the training pool: IID or non-IID by Dirichlet(alpha).

Every party process computes the whole partition from the shared seed and keeps its own shard,
so no party ever sends data or indices to another. Shards are disjoint, cover the pool, and none
is empty.

Public API::

    Partition(kind: "iid" | "dirichlet", alpha: float | None)
    parse_partition(text: str) -> Partition          # "iid" or "dirichlet:0.5"
    partition_indices(labels, parties, scheme, seed) -> list[np.ndarray]   # sorted int64 indices
    load_shard(spec, parties, party_index, *, cache=None) -> (shard: Dataset, test: Selection, num_classes)
    shard_sizes(spec, parties, *, cache=None) -> list[int]
    load_shards(spec, parties, *, cache=None) -> (list[Dataset], test: Dataset, num_classes)

A party process calls ``load_shard``: it copies its own shard out of the (memory-mapped, shared)
pool and leaves the test set a selection, copied only by the party that evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from hydrafed.errors import ConfigError
from hydrafed.spec import TrainingSpec
from hydrafed.worker.data import Dataset, LazySplit, Selection, select_split

_MAX_DIRICHLET_DRAWS = 100


@dataclass(frozen=True)
class Partition:
    """How the pool is split: ``iid`` or ``dirichlet`` with concentration ``alpha``."""

    kind: Literal["iid", "dirichlet"]
    alpha: float | None = None

    def __str__(self) -> str:
        return "iid" if self.kind == "iid" else f"dirichlet:{self.alpha:g}"


def parse_partition(text: str | Partition) -> Partition:
    """Parse ``iid`` or ``dirichlet:ALPHA`` (ALPHA > 0; smaller is more skewed)."""
    if isinstance(text, Partition):
        return text
    if text == "iid":
        return Partition("iid")
    kind, _, value = text.partition(":")
    if kind == "dirichlet":
        try:
            alpha = float(value)
        except ValueError:
            alpha = -1.0
        if alpha > 0 and np.isfinite(alpha):
            return Partition("dirichlet", alpha)
    raise ConfigError(
        f"partition {text!r} is not valid: use iid or dirichlet:ALPHA with ALPHA > 0, e.g. dirichlet:0.5"
    )


def _iid(n: int, parties: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    return [np.asarray(s, dtype=np.int64) for s in np.array_split(rng.permutation(n), parties)]


def _dirichlet_draw(
    labels: npt.NDArray[np.int64], parties: int, alpha: float, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    shards: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(parties)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        shares = rng.dirichlet(np.full(parties, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for party, chunk in enumerate(np.split(members, cuts)):
            shards[party].append(chunk.astype(np.int64))
    return [np.concatenate(parts) for parts in shards]


def _dirichlet(
    labels: npt.NDArray[np.int64], parties: int, alpha: float, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    """Per class, shares drawn from Dir(alpha); redrawn while some party is empty (bounded)."""
    shards = _dirichlet_draw(labels, parties, alpha, rng)
    for _ in range(_MAX_DIRICHLET_DRAWS):
        if min(len(s) for s in shards) > 0:
            return shards
        shards = _dirichlet_draw(labels, parties, alpha, rng)
    # Extremely skewed alpha: move single examples from the largest shard so none is empty.
    for party in range(parties):
        if len(shards[party]) == 0:
            donor = max(range(parties), key=lambda p: len(shards[p]))
            shards[party], shards[donor] = shards[donor][-1:], shards[donor][:-1]
    return shards


def partition_indices(
    labels: npt.NDArray[np.int64], parties: int, scheme: str | Partition, seed: int
) -> list[npt.NDArray[np.int64]]:
    """Indices of each party's shard (party order = index order), deterministic from ``seed``."""
    parsed = parse_partition(scheme)
    if parties < 1:
        raise ConfigError(f"parties must be at least 1, got {parties}")
    if len(labels) < parties:
        raise ConfigError(
            f"{len(labels)} training examples cannot give {parties} parties one each: use fewer parties"
        )
    rng = np.random.default_rng([seed, 0xFED])
    if parsed.kind == "iid":
        shards = _iid(len(labels), parties, rng)
    else:
        assert parsed.alpha is not None
        shards = _dirichlet(np.asarray(labels), parties, parsed.alpha, rng)
    return [np.sort(s) for s in shards]


def _select(spec: TrainingSpec, cache: Path | None) -> LazySplit:
    return select_split(
        spec.dataset,
        Path(spec.dataset_path) if spec.dataset_path else None,
        seed=spec.seed,
        test_fraction=spec.test_fraction,
        sample_limit=spec.sample_limit,
        cache=cache,
    )


def _partition(
    spec: TrainingSpec, parties: int, cache: Path | None
) -> tuple[LazySplit, list[npt.NDArray[np.int64]], int]:
    split = _select(spec, cache)
    labels = split.train.labels
    indices = partition_indices(labels, parties, spec.partition, spec.seed)
    num_classes = max(int(labels.max()) + 1, split.test.num_classes)
    return split, indices, num_classes


def load_shard(
    spec: TrainingSpec, parties: int, party_index: int, *, cache: Path | None = None
) -> tuple[Dataset, Selection, int]:
    """Party ``party_index``'s shard (copied), the common test set (not copied), the class count."""
    split, indices, num_classes = _partition(spec, parties, cache)
    return split.train.take(indices[party_index]), split.test, num_classes


def shard_sizes(spec: TrainingSpec, parties: int, *, cache: Path | None = None) -> list[int]:
    """How many training examples each party gets, without copying any of them."""
    _, indices, _ = _partition(spec, parties, cache)
    return [len(i) for i in indices]


def load_shards(
    spec: TrainingSpec, parties: int, *, cache: Path | None = None
) -> tuple[list[Dataset], Dataset, int]:
    """Every party's shard, the common test set and the number of classes, all from the seed."""
    split, indices, num_classes = _partition(spec, parties, cache)
    return [split.train.take(i) for i in indices], split.test.load(), num_classes
