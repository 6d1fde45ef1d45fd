"""Combining the round's updates into the next global weights, behind one small interface.

The round loop hands an ``Aggregator`` the updates that the confirmed ledger names as the
round's members; the aggregator returns the new global tensors. Aggregators are pure: the same
updates (in any order of arrival) give bit-identical results on every party. State that an
algorithm carries between rounds (a server-side optimiser, say) goes in and out explicitly
through ``state`` and ``AggregationResult.state`` and is never kept on the object.

One module per algorithm (``fedavg.py``, ``lora_exact.py``; robust strategies join the registry below).

Public API::

    Update(party: str, samples: int, tensors: Mapping[str, torch.Tensor])
    AggregationResult(tensors: dict[str, Tensor], state: dict[str, Tensor] = {})
    Aggregator (Protocol): name; aggregate(updates, *, current=None, state=None) -> AggregationResult
    get_aggregator(name: AggregationName | str) -> Aggregator
    check_compatible(updates) -> list[Update]     # sorted by party; raises AggregationError
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from hydrafed.errors import AggregationError, ConfigError
from hydrafed.spec import AggregationName
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


def check_compatible(updates: Sequence[Update]) -> list[Update]:
    """The updates sorted by party id, after checking they can be combined key by key.

    Raises AggregationError naming the party and the tensor when keys, shapes or dtypes differ
    or a weighted update holds NaN or infinity (``fit.check_fits``),
    a party appears twice, a sample count is negative, or no update has any samples. A party
    with 0 samples takes part with no weight (its local training diverged this round).
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
            finite=update.samples > 0,
        )
    return ordered


def _fedavg() -> Aggregator:
    from hydrafed.worker.aggregation.fedavg import FedAvg

    return FedAvg()


def _lora_exact() -> Aggregator:
    from hydrafed.worker.aggregation.lora_exact import LoraExact

    return LoraExact()


_REGISTRY: dict[str, Callable[[], Aggregator]] = {
    AggregationName.FEDAVG.value: _fedavg,
    AggregationName.LORA_EXACT.value: _lora_exact,
}


def get_aggregator(name: AggregationName | str) -> Aggregator:
    """The aggregator registered under ``name``; ConfigError listing the choices otherwise."""
    key = name.value if isinstance(name, AggregationName) else str(name)
    factory = _REGISTRY.get(key)
    if factory is None:
        raise ConfigError(
            f"aggregation {key!r} is not available: choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return factory()
