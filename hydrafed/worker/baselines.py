"""Reference runs beside the federation: local-only, centralized, and an in-process FedAvg loop.

- local-only: a party trains on its own shard with the same budget (same rounds x local epochs,
  same optimiser and schedule), never aggregating: what it would get without federating.
- centralized: all training data pooled in one task with the same budget: the upper bound.
- ``federate_in_process``: the federated math of the round loop (train, FedAvg by samples, load,
  evaluate) without processes, storage or the head; used to tune defaults and in benchmarks.
  The real run (``hydrafed simulate``) gives the same numbers for the same spec.

Public API::

    local_only(task: LocalTask, rounds: int) -> list[dict[str, float]]      # metrics after each round
    federate_in_process(tasks: Mapping[str, LocalTask], rounds, aggregator=None, on_round=None)
        -> (history: list[dict[party, metrics]] per round, seconds spent in local training)
    reference_run(spec, parties, *, cache=None, on_round=None) -> ReferenceResult
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hydrafed.spec import TrainingSpec
from hydrafed.worker.aggregation import Aggregator, Update, get_aggregator
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.task import LocalTask


def local_only(task: LocalTask, rounds: int) -> list[dict[str, float]]:
    """Train ``rounds`` rounds without aggregation; the test metrics after each round."""
    curve = []
    for round_no in range(1, rounds + 1):
        task.train_round(round_no)
        curve.append(task.evaluate())
    return curve


def federate_in_process(
    tasks: Mapping[str, LocalTask],
    rounds: int,
    aggregator: Aggregator | None = None,
    on_round: Callable[[int, dict[str, dict[str, float]]], None] | None = None,
) -> tuple[list[dict[str, dict[str, float]]], float]:
    """FedAvg rounds over in-memory tasks; per-round per-party metrics and seconds spent training."""
    agg = aggregator or get_aggregator("fedavg")
    history: list[dict[str, dict[str, float]]] = []
    train_seconds = 0.0
    state = None
    for round_no in range(1, rounds + 1):
        updates = []
        for party, task in tasks.items():
            result = task.train_round(round_no)
            train_seconds += result.seconds
            updates.append(Update(party, result.samples, task.exchanged_state()))
        aggregated = agg.aggregate(updates, state=state)
        state = aggregated.state
        metrics = {}
        for party, task in tasks.items():
            task.load_exchanged_state(aggregated.tensors)
            metrics[party] = task.evaluate()
        history.append(metrics)
        if on_round is not None:
            on_round(round_no, metrics)
    return history, train_seconds


@dataclass(frozen=True)
class ReferenceResult:
    """Accuracies of one in-process reference run (fractions in 0..1) and its timings."""

    samples: dict[str, int]
    federated: dict[str, float]
    local_only: dict[str, float]
    centralized: float
    history: list[dict[str, dict[str, float]]]
    federated_seconds: float
    federated_train_seconds: float


def reference_run(
    spec: TrainingSpec,
    parties: int,
    *,
    cache: Path | None = None,
    on_round: Callable[[int, dict[str, dict[str, float]]], None] | None = None,
) -> ReferenceResult:
    """Federated (in-process), local-only per party and centralized accuracy for one spec."""
    names = [f"party-{i}" for i in range(parties)]
    tasks = {
        n: MnistTask.from_spec(spec, party_index=i, parties=parties, cache=cache) for i, n in enumerate(names)
    }
    started = time.perf_counter()
    history, train_seconds = federate_in_process(tasks, spec.rounds, on_round=on_round)
    fed_seconds = time.perf_counter() - started
    local = {
        n: local_only(MnistTask.from_spec(spec, party_index=i, parties=parties, cache=cache), spec.rounds)[
            -1
        ]["accuracy"]
        for i, n in enumerate(names)
    }
    central = local_only(MnistTask.pooled(spec, cache=cache), spec.rounds)[-1]["accuracy"]
    return ReferenceResult(
        samples={n: t.samples for n, t in tasks.items()},
        federated={n: history[-1][n]["accuracy"] for n in names},
        local_only=local,
        centralized=central,
        history=history,
        federated_seconds=fed_seconds,
        federated_train_seconds=train_seconds,
    )
