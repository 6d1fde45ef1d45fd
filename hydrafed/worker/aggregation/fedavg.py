"""FedAvg (McMahan et al. 2017): the sample-weighted mean of the parties' tensors.

Bit-identical on every party whatever the order of arrival: updates are sorted by party id,
accumulated in float64 in that order, divided once, and cast back to the tensors' dtype
(integer tensors are rounded to the nearest value). Every party averages N updates a round, so
each update costs one conversion and one multiply-add pass per tensor.

``RunningSum`` is the same average folded one update at a time, in party order, so a party need
not hold the round's N updates until the last arrives (``worker.party`` folds each peer's update
as soon as its predecessors in that order are folded, then frees it): the same operations on
every element in the same order, so the same bits as ``fedavg``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hydrafed.errors import AggregationError
from hydrafed.spec import MAX_SAMPLES
from hydrafed.worker.aggregation import AggregationResult, Update, cast_like, check_compatible
from hydrafed.worker.fit import all_finite, check_fits

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
        for update in ordered:
            _fold_into(acc, scratch, update.tensors[key], update.samples)
        if reference.is_floating_point() and not all_finite(acc):
            check_compatible(updates)  # raises naming the party; a float64 overflow passes on
        acc /= total
        result[key] = cast_like(acc, reference)
    return result


def _fold_into(acc: torch.Tensor, scratch: torch.Tensor, value: torch.Tensor, samples: int) -> None:
    """``acc += value * samples`` in float64, exactly as ``fedavg`` does it for one update."""
    scratch.copy_(value.detach())
    if value.dtype in NARROW and samples < EXACT_WEIGHT:
        acc.add_(scratch, alpha=float(samples))
    else:
        acc += scratch.mul_(float(samples))


class RunningSum:
    """FedAvg folded one update at a time: ``add`` in party order, then ``result``.

    The same bits as ``fedavg`` over the same updates: each element gets the same float64
    multiply-adds in the same (party) order, one division and the same cast. ``add`` refuses an
    update out of that order. The checks are ``check_compatible``'s, made as each update comes
    (names, shapes and dtypes against the first update, samples, a party twice; every update with
    0 samples: at ``result``). NaN or infinity: each floating-point sum is scanned after an update
    is added, and the first update that makes it non-finite is named (a float64 overflow of finite
    values passes on, as in ``fedavg``); ``screened=True`` skips the scan for an update the caller
    has already refused NaN and infinity in (``fit.check_fits``, as the party's screening does).
    Memory: two float64 copies of the model (the sums and one scratch buffer), whatever N.
    """

    def __init__(self) -> None:
        self._first: Update | None = None
        self._last = ""
        self._sums: dict[str, torch.Tensor] = {}
        self._overflowed: set[str] = set()
        self._scratch = torch.empty(0, dtype=torch.float64)
        self._total = 0
        self.count = 0
        """Updates added, 0-sample ones included."""

    def add(self, update: Update, *, screened: bool = False) -> None:
        """Fold ``update`` into the sums; AggregationError naming the party when it cannot be."""
        if self._first is not None and update.party <= self._last:
            if update.party == self._last:
                raise AggregationError(f"party {update.party!r} has more than one update in the round")
            raise AggregationError(
                f"party {update.party!r} comes after {self._last!r}: updates are folded in party order"
            )
        if update.samples < 0:
            raise AggregationError(
                f"party {update.party!r} reports {update.samples} samples; it must be 0 or more"
            )
        if update.samples > MAX_SAMPLES:
            raise AggregationError(
                f"party {update.party!r}: samples {update.samples} is over the limit of {MAX_SAMPLES}"
            )
        first = self._first or update
        check_fits(
            update.tensors,
            first.tensors,
            whose=f"party {update.party!r}",
            against=repr(first.party),
            finite=False,
        )
        self._first, self._last = first, update.party
        self.count += 1
        if not update.samples:  # no weight: its tensors may be non-finite (its training diverged)
            return
        if not self._sums:
            self._sums = {
                k: torch.zeros(t.shape, dtype=torch.float64) for k, t in sorted(update.tensors.items())
            }
            self._scratch = torch.empty(
                max((t.numel() for t in update.tensors.values()), default=0), dtype=torch.float64
            )
        self._total += update.samples
        for key, acc in self._sums.items():
            value = update.tensors[key]
            _fold_into(acc, self._scratch[: acc.numel()].view(acc.shape), value, update.samples)
            if screened or key in self._overflowed or not value.is_floating_point() or all_finite(acc):
                continue
            if not all_finite(value):
                raise AggregationError(
                    f"party {update.party!r} tensor {key!r} holds NaN or infinity: refused"
                )
            self._overflowed.add(key)  # a float64 overflow of finite values passes on, as in fedavg

    def result(self) -> AggregationResult:
        """The weighted mean of what was added (keys sorted); the sums are not usable after it."""
        if self._first is None:
            raise AggregationError("no updates to aggregate: the round has no members")
        if not self._total:
            raise AggregationError(
                "every update of the round has 0 samples: every party's local training diverged; "
                "lower the learning rate"
            )
        reference = self._first.tensors
        tensors = {}
        for key, acc in self._sums.items():
            acc /= float(self._total)
            tensors[key] = cast_like(acc, reference[key])
        return AggregationResult(tensors)


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

    def fold(self) -> RunningSum:
        """A running sum that gives ``aggregate``'s result one update at a time (in party order)."""
        return RunningSum()
