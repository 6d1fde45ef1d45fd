"""FedAvg (McMahan et al. 2017): the sample-weighted mean of the parties' tensors.

Bit-identical on every party whatever the order of arrival: updates are sorted by party id,
accumulated in float64 in that order, divided once, and cast back to the tensors' dtype
(integer tensors are rounded to the nearest value). Every party averages N updates a round, so
each update costs one conversion and one multiply-add pass per tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hydrafed.worker.aggregation import AggregationResult, Update, check_compatible
from hydrafed.worker.fit import all_finite

EXACT_WEIGHT = 1 << 29
"""A sample count below this times a value of a NARROW dtype is exact in float64 (24 + 29 <= 53
significant bits), so ``acc.add_(x, alpha=samples)`` rounds once, as ``acc += x * samples`` does
after its exact product: the same bits in one pass instead of two. Larger counts (up to
MAX_SAMPLES) and wider dtypes take the two steps."""

NARROW = frozenset(
    {torch.float32, torch.float16, torch.bfloat16, torch.int16, torch.int8, torch.uint8, torch.bool}
)
"""Dtypes whose values carry at most 24 significant bits."""


def fedavg(updates: Sequence[Update]) -> dict[str, torch.Tensor]:
    """Sample-weighted mean of each tensor over ``updates`` (keys in sorted order).

    NaN or infinity in a weighted update makes its tensor's weighted sum non-finite (the
    weights are positive and the float64 sum of float32 values cannot overflow), so the sums
    are scanned instead of every update; only then are the updates scanned, for the error
    that names the party (``check_compatible``).
    """
    ordered = [u for u in check_compatible(updates, finite=False) if u.samples]  # 0 samples: left out
    total = float(sum(u.samples for u in ordered))
    result: dict[str, torch.Tensor] = {}
    for key in sorted(ordered[0].tensors):
        reference = ordered[0].tensors[key]
        acc = torch.zeros(reference.shape, dtype=torch.float64)
        scratch = torch.empty_like(acc)  # one buffer for every update: no allocation per tensor
        narrow = reference.dtype in NARROW
        for update in ordered:
            scratch.copy_(update.tensors[key].detach())
            if narrow and update.samples < EXACT_WEIGHT:
                acc.add_(scratch, alpha=float(update.samples))
            else:
                acc += scratch.mul_(float(update.samples))
        if reference.is_floating_point() and not all_finite(acc):
            check_compatible(updates)  # raises naming the party; a float64 overflow passes on
        acc /= total
        if reference.dtype.is_floating_point or reference.dtype.is_complex:
            result[key] = acc.to(reference.dtype)
        elif reference.dtype == torch.bool:
            result[key] = acc >= 0.5
        else:
            result[key] = torch.round(acc).to(reference.dtype)
    return result


class FedAvg:
    """The default aggregator: FedAvg weighted by samples; keeps no state."""

    name = "fedavg"

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """FedAvg of ``updates``; ``current`` and ``state`` are not needed."""
        return AggregationResult(fedavg(updates))
