"""Driving ``hydrafed simulate`` as a child process and reading its report.json.

The benchmarks never re-implement the round engine: they run the real command (one process per
party, devnet head, local or S3 buckets), measure it from outside like any other system, and take
per-round, per-party timings from the report it writes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import _env, _measure, _runs
from hydrafed.spec import TrainingSpec

HYDRAFED = _env.REPO_ROOT / ".venv" / "bin" / "hydrafed"


@dataclass(frozen=True)
class SimulateRun:
    """A finished ``hydrafed simulate`` run: the measured process and its report (None on failure)."""

    process: _measure.ProcessRun
    report: dict[str, Any] | None
    out: Path

    @property
    def ok(self) -> bool:
        """True when the command succeeded and left a report."""
        return self.process.returncode == 0 and self.report is not None

    @property
    def wall(self) -> float:
        """Process wall time in seconds."""
        return self.process.wall_seconds


def simulate(
    spec: TrainingSpec, parties: int, out: Path, *, extra: list[str] | None = None, timeout: float = 3600
) -> SimulateRun:
    """Run ``hydrafed simulate`` with ``spec`` for ``parties`` parties into ``out`` (emptied first)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    training = out.parent / f"{out.name}.training.yaml"
    training.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    argv = [
        str(HYDRAFED),
        "simulate",
        "--parties",
        str(parties),
        "--rounds",
        str(spec.rounds),
        "--training",
        str(training),
        "--out",
        str(out),
        *(extra or []),
    ]
    proc = _measure.run_measured(
        argv, cwd=_env.REPO_ROOT, timeout=timeout, log=out.parent / f"{out.name}.log"
    )
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return SimulateRun(proc, report, out)


def round_records(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-round records in the shape ``_runs.reduce_rounds`` takes, from report.json."""
    raise NotImplementedError("adapt to report.json once hydrafed simulate lands")


def run_simulate(spec: TrainingSpec, parties: int, out: Path) -> _runs.RunFigures:
    """``hydrafed simulate`` as one system of the side-by-side."""
    run = simulate(spec, parties, out / f"hydrafed-{parties}")
    if not run.ok or run.report is None:
        return _runs.failed("hydrafed", parties, run.process)
    return _runs.figures_from("hydrafed", parties, run.process, report_summary(run.report))


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """report.json reduced to the common record shape (process_start, first_round_start, rounds)."""
    raise NotImplementedError("adapt to report.json once hydrafed simulate lands")


@dataclass(frozen=True)
class AccuracyRun:
    """Federated accuracy of each party after the last round, from a simulate run."""

    party_accuracy: list[float]
    wall: float
    ok: bool


def simulate_accuracy(spec: TrainingSpec, parties: int, out: Path) -> AccuracyRun:
    """Each party's final federated accuracy as ``hydrafed simulate`` reports it."""
    run = simulate(spec, parties, out)
    if not run.ok or run.report is None:
        return AccuracyRun([], run.wall, False)
    raise NotImplementedError("adapt to report.json once hydrafed simulate lands")
