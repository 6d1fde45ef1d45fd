"""Norm clipping: bound how far any one party can move the global model in a round.

Before the wrapped aggregator runs, each update's change from the round's starting global model
(``current``) is scaled down to an L2 norm of at most ``training.robust.clipNorm`` (over all its
tensors together); smaller changes pass untouched. A party that scales its update by 100 then
moves the model no further than an honest one can. Bit-identical on every party: the norm is
summed with ``math.fsum`` (exactly rounded) and the scaling is elementwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from hydrafed.errors import AggregationError
from hydrafed.worker.aggregation import AggregationResult, Aggregator, Update, as_float64, cast_like


def change_norm(update: Update, current: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of ``update - current`` over every tensor (float64, exactly rounded sum)."""
    parts = []
    for key in sorted(update.tensors):
        diff = as_float64(update.tensors[key]) - as_float64(current[key])
        parts.append(math.fsum((diff * diff).reshape(-1).tolist()))
    return math.sqrt(math.fsum(parts))


def clip(update: Update, current: Mapping[str, torch.Tensor], max_norm: float) -> Update:
    """``update`` with its change from ``current`` scaled to an L2 norm of at most ``max_norm``."""
    norm = change_norm(update, current)
    if norm <= max_norm:
        return update
    scale = max_norm / norm
    tensors = {}
    for key in sorted(update.tensors):
        base = as_float64(current[key])
        tensors[key] = cast_like(base + (as_float64(update.tensors[key]) - base) * scale, current[key])
    return Update(update.party, update.samples, tensors)


class Clipped:
    """Any aggregator over norm-clipped updates (``training.robust.clipNorm``)."""

    def __init__(self, inner: Aggregator, max_norm: float) -> None:
        self.inner = inner
        self.max_norm = max_norm
        self.name = f"{inner.name}+clip"

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """Clip every update's change from ``current``, then aggregate with the wrapped rule."""
        if current is None:
            raise AggregationError("training.robust.clipNorm needs the round's starting global model")
        clipped = [clip(u, current, self.max_norm) for u in updates]
        return self.inner.aggregate(clipped, current=current, state=state)
