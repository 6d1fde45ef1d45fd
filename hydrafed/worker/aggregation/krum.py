"""Krum and multi-Krum (Blanchard et al. 2017): keep the updates closest to their neighbours.

Each update's score is the sum of its squared distances to its ``n - f - 2`` nearest others
(``f`` = hostile parties tolerated, ``training.robust.byzantine``); Krum returns the update with
the lowest score, multi-Krum the unweighted mean of the ``m`` lowest (``krumSelect``, default
``n - f``). Sample counts are ignored (0-sample updates are left out). The rule needs
``n > 2f + 2`` updates. Bit-identical on every party: distances are summed with ``math.fsum``
(exactly rounded, so independent of the CPU's vector width), ties go to the first party by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from hydrafed.errors import AggregationError
from hydrafed.worker.aggregation import AggregationResult, Update, as_float64, cast_like, weighted


def _flat(update: Update, keys: list[str]) -> torch.Tensor:
    return torch.cat([as_float64(update.tensors[k]).reshape(-1) for k in keys])


def scores(updates: Sequence[Update], byzantine: int) -> dict[str, float]:
    """Krum score of each update (party -> sum of squared distances to its n - f - 2 nearest)."""
    ordered = weighted(updates)
    count = len(ordered)
    if count <= 2 * byzantine + 2:
        raise AggregationError(
            f"krum with training.robust.byzantine={byzantine} needs more than {2 * byzantine + 2} "
            f"updates, the round has {count}: lower byzantine or use median"
        )
    keys = sorted(ordered[0].tensors)
    flat = [_flat(u, keys) for u in ordered]
    distance = [[0.0] * count for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            diff = flat[i] - flat[j]
            distance[i][j] = distance[j][i] = math.fsum((diff * diff).tolist())
    neighbours = count - byzantine - 2
    return {
        u.party: math.fsum(sorted(distance[i][j] for j in range(count) if j != i)[:neighbours])
        for i, u in enumerate(ordered)
    }


def krum(updates: Sequence[Update], byzantine: int, select: int | None = 1) -> dict[str, torch.Tensor]:
    """The unweighted mean of the ``select`` best-scored updates (Krum: 1; unset: n - f)."""
    ordered = weighted(updates)
    score = scores(ordered, byzantine)
    count = len(ordered) - byzantine if select is None else min(select, len(ordered))
    chosen = sorted(ordered, key=lambda u: (score[u.party], u.party))[:count]
    chosen.sort(key=lambda u: u.party)
    result: dict[str, torch.Tensor] = {}
    for key in sorted(ordered[0].tensors):
        acc = torch.zeros(ordered[0].tensors[key].shape, dtype=torch.float64)
        for update in chosen:
            acc += as_float64(update.tensors[key])
        result[key] = cast_like(acc / len(chosen), ordered[0].tensors[key])
    return result


class Krum:
    """Aggregators ``krum`` (select 1) and ``multi-krum`` (select m, default n - f); no state."""

    def __init__(self, byzantine: int, select: int | None) -> None:
        self.byzantine = byzantine
        self.select = select
        self.name = "krum" if select == 1 else "multi-krum"

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """Krum / multi-Krum of ``updates``."""
        return AggregationResult(krum(updates, self.byzantine, self.select))
