"""Running one compared system on one task and reducing its timings to the same figures.

A system is a child process (Flower in the bench venv, ``hydrafed simulate``, or the plain
in-process loop) that writes per-round records: accuracy, round wall time and each party's
training interval(s). From those, for every system alike:

- ``train``: the wall time during which at least one party was training (union of intervals);
- ``overhead`` = round wall - train: everything that is not local training compute
  (scheduling, serialising, moving updates, the ledger, waiting, aggregating, evaluating).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import _env, _measure
from hydrafed.spec import TrainingSpec

SPEC_ENV = "HYDRAFED_BENCH_SPEC"


@dataclass(frozen=True)
class RoundFigures:
    """One round of one run."""

    round: int
    accuracy: float
    wall: float
    train: float
    overhead: float


@dataclass(frozen=True)
class RunFigures:
    """One whole run of one system."""

    system: str
    parties: int
    returncode: int
    wall: float
    peak_pss_mib: float
    processes: int
    imports: float
    startup: float
    rounds: list[RoundFigures]

    @property
    def final_accuracy(self) -> float:
        """Accuracy of the global model after the last round."""
        return self.rounds[-1].accuracy if self.rounds else float("nan")

    @property
    def outside_rounds(self) -> float:
        """Process wall time not spent in any round: start-up and shut-down."""
        return self.wall - sum(r.wall for r in self.rounds) if self.rounds else float("nan")

    def mean(self, field: str, first: int = 2) -> float:
        """Mean of a per-round figure over rounds >= ``first`` (round 1 pays start-up costs)."""
        values = [getattr(r, field) for r in self.rounds if r.round >= first]
        return statistics.fmean(values) if values else float("nan")

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the results file."""
        return {**asdict(self), "final_accuracy": self.final_accuracy}


def spec_env(spec: TrainingSpec) -> dict[str, str]:
    """Environment that hands the task to the bench child processes."""
    return {SPEC_ENV: spec.model_dump_json(by_alias=True, exclude_none=True)}


def reduce_rounds(records: list[dict[str, Any]]) -> list[RoundFigures]:
    """Per-round records (accuracy, wall, train_intervals) to RoundFigures."""
    out = []
    for rec in records:
        train = _measure.union_seconds([(float(a), float(b)) for a, b in rec["train_intervals"]])
        wall = float(rec["wall"])
        out.append(RoundFigures(int(rec["round"]), float(rec["accuracy"]), wall, train, wall - train))
    return out


def failed(system: str, parties: int, proc: _measure.ProcessRun) -> RunFigures:
    """A run that left no results: only its process figures."""
    nan = float("nan")
    code = proc.returncode or 1
    return RunFigures(
        system, parties, code, proc.wall_seconds, proc.peak_pss_mib, proc.peak_processes, nan, nan, []
    )


def figures_from(
    system: str, parties: int, proc: _measure.ProcessRun, data: dict[str, Any] | None
) -> RunFigures:
    """RunFigures from a measured process and its common-shape results (None: the run failed)."""
    if data is None:
        return failed(system, parties, proc)
    return RunFigures(
        system=system,
        parties=parties,
        returncode=proc.returncode,
        wall=proc.wall_seconds,
        peak_pss_mib=proc.peak_pss_mib,
        processes=proc.peak_processes,
        imports=float(data.get("imports_seconds", float("nan"))),
        startup=float(data["first_round_start"]) - float(data["process_start"]),
        rounds=reduce_rounds(data["rounds"]),
    )


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def run_flower(spec: TrainingSpec, parties: int, out: Path) -> RunFigures:
    """Flower 1.42 simulation (Ray) of the task, measured as one child process."""
    python = _env.flower_python()
    result = out / f"flower-{parties}.json"
    result.unlink(missing_ok=True)
    proc = _measure.run_measured(
        [str(python), "-m", "bench.flower_app", "--parties", str(parties), "--out", str(result)],
        env=spec_env(spec),
        cwd=_env.BENCH_CWD,
        log=out / f"flower-{parties}.log",
    )
    return figures_from("flower", parties, proc, _load(result))


def run_plain(spec: TrainingSpec, parties: int, out: Path) -> RunFigures:
    """The plain in-process FedAvg loop, measured as one child process."""
    import sys

    result = out / f"plain-{parties}.json"
    result.unlink(missing_ok=True)
    proc = _measure.run_measured(
        [sys.executable, "-m", "bench.plain_loop", "--parties", str(parties), "--out", str(result)],
        env=spec_env(spec),
        cwd=_env.REPO_ROOT,
        log=out / f"plain-{parties}.log",
    )
    return figures_from("plain loop", parties, proc, _load(result))
