"""Coordinate-wise median (Yin et al. 2018): every weight is the median of the parties' values.

A hostile minority cannot drag any coordinate past the honest values, whatever it sends or
claims: sample counts are ignored (0-sample updates, whose training diverged, are left out).
With an even number of updates the median is the mean of the two middle values. Bit-identical
on every party: the values are sorted (an exact operation) and the middle pair averaged in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hydrafed.worker.aggregation import AggregationResult, Update, as_float64, cast_like, weighted


def median(updates: Sequence[Update]) -> dict[str, torch.Tensor]:
    """The coordinate-wise median of each tensor over the updates with samples (keys sorted)."""
    ordered = weighted(updates)
    count = len(ordered)
    result: dict[str, torch.Tensor] = {}
    for key in sorted(ordered[0].tensors):
        values = torch.stack([as_float64(u.tensors[key]) for u in ordered]).sort(dim=0).values
        middle = values[count // 2]
        if count % 2 == 0:
            middle = (values[count // 2 - 1] + middle) / 2
        result[key] = cast_like(middle, ordered[0].tensors[key])
    return result


class Median:
    """Aggregator ``median``: coordinate-wise median; keeps no state."""

    name = "median"

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """The coordinate-wise median of ``updates``."""
        return AggregationResult(median(updates))
