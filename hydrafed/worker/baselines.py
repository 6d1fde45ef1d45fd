"""Reference runs beside the federation: local-only, centralized, and the federation in process.

- local-only: a party trains on its own shard with the same budget (same rounds x local epochs,
  same optimiser and schedule), never aggregating: what it would get without federating.
- centralized: all training data pooled in one task with the same budget: the upper bound.
- ``reference_run``: the federated run itself, every party's real ``PartyWorker`` in this process
  over an in-memory head and local buckets (``worker.inprocess``), beside both references; used to
  tune defaults and in benchmarks. ``hydrafed simulate`` gives the same numbers for the same spec.

Public API::

    local_only(task: LocalTask, rounds: int) -> list[dict[str, float]]      # metrics after each round
    reference_run(spec, parties, *, cache=None, on_round=None) -> ReferenceResult
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydrafed.spec import FederationSpec, TrainingSpec
from hydrafed.worker import inprocess
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.task import LocalTask


def local_only(task: LocalTask, rounds: int) -> list[dict[str, float]]:
    """Train ``rounds`` rounds without aggregation; the test metrics after each round."""
    curve = []
    for round_no in range(1, rounds + 1):
        task.train_round(round_no)
        curve.append(task.evaluate())
    return curve


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
    with tempfile.TemporaryDirectory(prefix="hydrafed-reference-") as work:
        results = inprocess.run_in_process(FederationSpec(training=spec), tasks, Path(work))
    fed_seconds = time.perf_counter() - started
    history = [{n: results[n].rounds[r].metrics for n in names} for r in range(len(results[names[0]].rounds))]
    train_seconds = sum(record.timings["train"] for result in results.values() for record in result.rounds)
    if on_round is not None:
        for round_no, metrics in enumerate(history, start=1):
            on_round(round_no, metrics)
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
