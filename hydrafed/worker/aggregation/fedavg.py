"""FedAvg (McMahan et al. 2017): the sample-weighted mean of the parties' tensors.

Bit-identical on every party whatever the order of arrival: updates are sorted by party id,
accumulated in float64 in that order, divided once, and cast back to the tensors' dtype
(integer tensors are rounded to the nearest value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hydrafed.worker.aggregation import AggregationResult, Update, check_compatible


def fedavg(updates: Sequence[Update]) -> dict[str, torch.Tensor]:
    """Sample-weighted mean of each tensor over ``updates`` (keys in sorted order)."""
    ordered = [u for u in check_compatible(updates) if u.samples]  # 0 samples: left out
    total = float(sum(u.samples for u in ordered))
    result: dict[str, torch.Tensor] = {}
    for key in sorted(ordered[0].tensors):
        reference = ordered[0].tensors[key]
        acc = torch.zeros(reference.shape, dtype=torch.float64)
        scratch = torch.empty_like(acc)  # one buffer for every update: no allocation per tensor
        for update in ordered:
            scratch.copy_(update.tensors[key].detach())
            acc += scratch.mul_(float(update.samples))
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
