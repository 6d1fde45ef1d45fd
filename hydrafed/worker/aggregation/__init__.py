"""Combining the round's updates into the next global weights, behind one small interface.

The round loop hands an ``Aggregator`` the updates that the confirmed ledger names as the
round's members; the aggregator returns the new global tensors. Aggregators are pure: the same
updates (in any order of arrival) give bit-identical results on every party. State that an
algorithm carries between rounds (a server-side optimiser, say) goes in and out explicitly
through ``state`` and ``AggregationResult.state`` and is never kept on the object.

One module per algorithm: ``fedavg.py``, ``lora_exact.py`` and the robust rules, which ignore
the claimed sample counts (a hostile party can claim any count up to its declared maximum):
``median.py`` (coordinate-wise median), ``trimmed_mean.py``, ``krum.py`` (Krum and multi-Krum),
and ``clipping.py``, norm clipping of each update's change, applied before any of them.

Public API::

    Update(party: str, samples: int, tensors: Mapping[str, torch.Tensor])
    AggregationResult(tensors: dict[str, Tensor], state: dict[str, Tensor] = {})
    Aggregator (Protocol): name; aggregate(updates, *, current=None, state=None) -> AggregationResult
    get_aggregator(name: AggregationName | str, robust: RobustSpec | None = None) -> Aggregator
    Fold (Protocol): count; add(update, *, screened=False); result() -> AggregationResult
    fold(aggregator) -> Fold | None     # a running sum in party order (FedAvg); None: hold them all
    check_compatible(updates, *, finite=True) -> list[Update]  # sorted by party; AggregationError
    weighted(updates) -> list[Update]             # check_compatible without the 0-sample ones
    as_float64(tensor) / cast_like(acc, reference)  # the robust rules' working precision
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from hydrafed.errors import AggregationError, ConfigError
from hydrafed.spec import MAX_SAMPLES, AggregationName, RobustSpec
from hydrafed.worker.fit import check_fits


@dataclass(frozen=True)
class Update:
    """One party's tensors for a round and the number of training examples behind them."""

    party: str
    samples: int
    tensors: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class AggregationResult:
    """The new global tensors and the aggregator's state to pass into the next round."""

    tensors: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor] = field(default_factory=dict)


class Aggregator(Protocol):
    """Turns a round's updates into the next global tensors."""

    name: str

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        """Combine ``updates``; ``current`` is the previous global model, ``state`` the last result's."""
        ...


class Fold(Protocol):
    """An aggregate built one update at a time, in party order, without holding the updates."""

    count: int
    """Updates added so far."""

    def add(self, update: Update, *, screened: bool = False) -> None:
        """Fold in the next update in party order; ``screened``: NaN/infinity already refused."""
        ...

    def result(self) -> AggregationResult:
        """What ``aggregate`` gives for the updates added, bit for bit."""
        ...


@runtime_checkable
class Foldable(Protocol):
    """An aggregator that is a running sum over the updates in party order (FedAvg)."""

    def fold(self) -> Fold:
        """A fresh fold for one round."""
        ...


def fold(aggregator: Aggregator) -> Fold | None:
    """A fresh fold giving ``aggregator``'s result, or None when it needs every update at once
    (median, trimmed mean, Krum, clipping, LoRA)."""
    return aggregator.fold() if isinstance(aggregator, Foldable) else None


def check_compatible(updates: Sequence[Update], *, finite: bool = True) -> list[Update]:
    """The updates sorted by party id, after checking they can be combined key by key.

    Raises AggregationError naming the party and the tensor when keys, shapes or dtypes differ
    or a weighted update holds NaN or infinity (``fit.check_fits``),
    a party appears twice, a sample count is negative, or no update has any samples. A party
    with 0 samples takes part with no weight (its local training diverged this round).
    ``finite=False`` leaves out the NaN/infinity scan, for a caller that finds the same from
    its result (FedAvg: a non-finite input makes the weighted sum non-finite).
    """
    if not updates:
        raise AggregationError("no updates to aggregate: the round has no members")
    ordered = sorted(updates, key=lambda u: u.party)
    seen: set[str] = set()
    for update in ordered:
        if update.party in seen:
            raise AggregationError(f"party {update.party!r} has more than one update in the round")
        seen.add(update.party)
        if update.samples < 0:
            raise AggregationError(
                f"party {update.party!r} reports {update.samples} samples; it must be 0 or more"
            )
        if update.samples > MAX_SAMPLES:  # weights stay exact integers in float64 (< 2**53 summed)
            raise AggregationError(
                f"party {update.party!r}: samples {update.samples} is over the limit of {MAX_SAMPLES}"
            )
    if not any(u.samples for u in ordered):
        raise AggregationError(
            "every update of the round has 0 samples: every party's local training diverged; "
            "lower the learning rate"
        )
    reference = ordered[0]
    for update in ordered:
        # A 0-sample update has no weight: its tensors may be non-finite (its training diverged).
        check_fits(
            update.tensors,
            reference.tensors,
            whose=f"party {update.party!r}",
            against=repr(reference.party),
            finite=finite and update.samples > 0,
        )
    return ordered


def weighted(updates: Sequence[Update]) -> list[Update]:
    """``check_compatible(updates)`` without the 0-sample updates (parties that diverged)."""
    return [u for u in check_compatible(updates) if u.samples]


def as_float64(tensor: torch.Tensor) -> torch.Tensor:
    """A detached float64 CPU copy: the working precision of every aggregator."""
    return tensor.detach().to("cpu", torch.float64)


def cast_like(acc: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A float64 result back in the reference's dtype (integers rounded, bools at 0.5)."""
    if reference.dtype.is_floating_point or reference.dtype.is_complex:
        return acc.to(reference.dtype)
    if reference.dtype == torch.bool:
        return acc >= 0.5
    return torch.round(acc).to(reference.dtype)


def _fedavg(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.fedavg import FedAvg

    return FedAvg()


def _lora_exact(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.lora_exact import LoraExact

    return LoraExact()


def _median(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.median import Median

    return Median()


def _trimmed_mean(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.trimmed_mean import TrimmedMean

    return TrimmedMean(robust.trim_fraction)


def _krum(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.krum import Krum

    return Krum(robust.byzantine, select=1)


def _multi_krum(robust: RobustSpec) -> Aggregator:
    from hydrafed.worker.aggregation.krum import Krum

    return Krum(robust.byzantine, select=robust.krum_select)


_REGISTRY: dict[str, Callable[[RobustSpec], Aggregator]] = {
    AggregationName.FEDAVG.value: _fedavg,
    AggregationName.LORA_EXACT.value: _lora_exact,
    AggregationName.MEDIAN.value: _median,
    AggregationName.TRIMMED_MEAN.value: _trimmed_mean,
    AggregationName.KRUM.value: _krum,
    AggregationName.MULTI_KRUM.value: _multi_krum,
}


def get_aggregator(name: AggregationName | str, robust: RobustSpec | None = None) -> Aggregator:
    """The aggregator registered under ``name``, clipped when ``robust.clip_norm`` is set.

    ConfigError listing the choices for an unknown name.
    """
    key = name.value if isinstance(name, AggregationName) else str(name)
    factory = _REGISTRY.get(key)
    if factory is None:
        raise ConfigError(
            f"aggregation {key!r} is not available: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    options = robust or RobustSpec()
    aggregator = factory(options)
    if options.clip_norm is not None:
        from hydrafed.worker.aggregation.clipping import Clipped

        return Clipped(aggregator, options.clip_norm)
    return aggregator
