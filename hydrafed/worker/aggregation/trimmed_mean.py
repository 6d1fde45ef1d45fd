"""Coordinate-wise trimmed mean (Yin et al. 2018): cut the extremes of every weight, average the rest.

For each coordinate the ``k = floor(fraction * n)`` lowest and highest values are dropped and the
rest averaged without weights: claimed sample counts are ignored (0-sample updates are left out).
It tolerates up to k hostile parties. Bit-identical on every party: values are sorted (exact),
then summed row by row in float64 in that fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from hydrafed.worker.aggregation import AggregationResult, Update, as_float64, cast_like, weighted


def trim_count(count: int, fraction: float) -> int:
    """Values cut at each end: floor(fraction * count), always leaving at least one value."""
    return min(math.floor(fraction * count), (count - 1) // 2)


def trimmed_mean(updates: Sequence[Update], fraction: float) -> dict[str, torch.Tensor]:
    """The coordinate-wise ``fraction``-trimmed mean of each tensor (keys sorted)."""
    ordered = weighted(updates)
    cut = trim_count(len(ordered), fraction)
    kept = len(ordered) - 2 * cut
    result: dict[str, torch.Tensor] = {}
    for key in sorted(ordered[0].tensors):
        values = torch.stack([as_float64(u.tensors[key]) for u in ordered]).sort(dim=0).values
        acc = torch.zeros_like(values[0])
        for row in values[cut : cut + kept]:
            acc += row
        result[key] = cast_like(acc / kept, ordered[0].tensors[key])
    return result


class TrimmedMean:
    """Aggregator ``trimmed-mean``: coordinate-wise trimmed mean; keeps no state."""

    name = "trimmed-mean"

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """The trimmed mean of ``updates``."""
        return AggregationResult(trimmed_mean(updates, self.fraction))
