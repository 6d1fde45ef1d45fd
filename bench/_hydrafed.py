"""Driving ``hydrafed simulate`` as a child process and reading its report.json.

The benchmarks never re-implement the round engine: they run the real command (one process per
party, devnet head, local buckets), measure it from outside like any other system, and take
per-round, per-party phase timings from the report it writes (schema ``hydrafed.simulate/v1``,
docs/simulate.md).

report.json gives each party's round as a start and end time (``startedAt``, ``finishedAt``)
and the seconds of each phase, training first. A round's figures are measured like Flower's:

- round wall: rounds tile the federation's timeline. Round r ends when the last party has
  evaluated it and begins where round r-1 ended (round 1: when the first party began training);
- train: the time in that window during which any party trained (the union of all training
  intervals ``[startedAt, startedAt + train]``, clipped to the window: an early party may
  already train round r+1 while the last one still evaluates round r);
- overhead = round wall - train: the time during which no party trained.

Reports written before the timestamps existed fall back to the mean over parties of the sum of
their phases, and the longest party's training.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _env, _measure, _runs
from hydrafed.ports import free_base_port
from hydrafed.spec import TrainingSpec

HYDRAFED = _env.REPO_ROOT / ".venv" / "bin" / "hydrafed"
PHASES = ("train", "serialize", "upload", "announce", "wait", "download", "verify", "aggregate", "evaluate")
PLOTTED_PHASES = ("announce", "wait", "download", "aggregate")
_PAPER_MOMENTUM = 0.0  # `--preset paper` is the only way the CLI sets plain SGD
_COMPARED = ("model", "dataset", "rounds", "localEpochs", "learningRate", "batchSize", "momentum", "seed")


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


def cli_args(spec: TrainingSpec) -> list[str]:
    """``hydrafed simulate`` options that reproduce ``spec``; ValueError if the CLI cannot say it."""
    defaults = TrainingSpec()
    args: list[str] = []
    if spec.momentum == _PAPER_MOMENTUM and defaults.momentum != _PAPER_MOMENTUM:
        args += ["--preset", "paper"]
    elif spec.momentum != defaults.momentum:
        raise ValueError(f"hydrafed simulate cannot set momentum {spec.momentum} (only 0 or the default)")
    args += ["--rounds", str(spec.rounds), "--model", str(spec.model), "--dataset", str(spec.dataset)]
    args += ["--lr", repr(spec.learning_rate), "--batch", str(spec.batch_size)]
    args += ["--partition", spec.partition, "--seed", str(spec.seed)]
    if spec.local_steps is not None:
        args += ["--local-steps", str(spec.local_steps)]
    else:
        args += ["--local-epochs", str(spec.local_epochs)]
    if spec.dataset_path:
        args += ["--dataset-path", spec.dataset_path]
    if spec.sample_limit is not None:
        args += ["--sample-limit", str(spec.sample_limit)]
    return args


def simulate(
    spec: TrainingSpec,
    parties: int,
    out: Path,
    *,
    baselines: bool = False,
    timeout: float = 3600,
    store: str = "local",
) -> SimulateRun:
    """Run ``hydrafed simulate`` with ``spec`` for ``parties`` parties into ``out`` (replaced)."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(HYDRAFED),
        "simulate",
        "--parties",
        str(parties),
        *cli_args(spec),
        "--out",
        str(out),
        "--api-port",
        # Free ports found now: a fixed range once met a port still held by the Ray processes
        # of the Flower run before it.
        str(free_base_port(parties)),
        "--baselines" if baselines else "--no-baselines",
        "--store",
        store,
    ]
    proc = _measure.run_measured(
        argv,
        cwd=_env.REPO_ROOT,
        timeout=timeout,
        log=out.parent / f"{out.name}.log",
        env={"COLUMNS": "120", "TERM": "dumb"},
    )
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    if report is not None:
        _check_same_task(spec, report)
    return SimulateRun(proc, report, out)


def _check_same_task(spec: TrainingSpec, report: dict[str, Any]) -> None:
    """The run must have trained exactly the spec we asked for; a silent mismatch would void the table."""
    wanted = spec.model_dump(mode="json", by_alias=True)
    got = report["config"]["training"]
    diff = {k: (wanted.get(k), got.get(k)) for k in _COMPARED if wanted.get(k) != got.get(k)}
    if diff:
        raise RuntimeError(f"hydrafed simulate trained another task than asked (wanted, got): {diff}")


def round_figures(report: dict[str, Any]) -> list[_runs.RoundFigures]:
    """Per-round accuracy, wall, training and overhead (see the module docstring)."""
    first = report["parties"][0]
    rounds = report["timings"]["perRound"]
    parties = [list(entry["parties"].values()) for entry in rounds]
    timed = all(p.get("startedAt") and p.get("finishedAt") for ps in parties for p in ps)
    training = [(p["startedAt"], p["startedAt"] + p["train"]) for ps in parties for p in ps] if timed else []
    out = []
    previous_end: float | None = None
    for entry, ps in zip(rounds, parties, strict=True):
        if timed:
            start = min(p["startedAt"] for p in ps) if previous_end is None else previous_end
            end = max(p["finishedAt"] for p in ps)
            wall = end - start
            train = _measure.union_seconds(
                [(max(a, start), min(b, end)) for a, b in training if b > start and a < end]
            )
            previous_end = end
        else:
            wall = statistics.fmean(sum(p[phase] for phase in PHASES) for p in ps)
            train = max(p["train"] for p in ps)
        accuracy = float(first["federatedAccuracy"][entry["round"] - 1])
        out.append(_runs.RoundFigures(int(entry["round"]), accuracy, wall, train, wall - train))
    return out


def phase_means(report: dict[str, Any], first: int = 2) -> dict[str, float]:
    """Mean seconds per party per round of each phase, over rounds >= ``first``."""
    rows = [p for r in report["timings"]["perRound"] if r["round"] >= first for p in r["parties"].values()]
    if not rows:
        rows = [p for r in report["timings"]["perRound"] for p in r["parties"].values()]
    return {phase: statistics.fmean(p[phase] for p in rows) for phase in PHASES}


def figures(run: SimulateRun, parties: int) -> _runs.RunFigures:
    """RunFigures of a simulate run, comparable with the other systems'."""
    if not run.ok or run.report is None:
        return _runs.failed("hydrafed", parties, run.process)
    rounds = round_figures(run.report)
    t = run.report["timings"]
    after_rounds = t["wallSeconds"] - t["setupSeconds"] - t["federationSeconds"]
    startup = run.wall - after_rounds - sum(r.wall for r in rounds)
    return _runs.RunFigures(
        system="hydrafed",
        parties=parties,
        returncode=run.process.returncode,
        wall=run.wall,
        peak_pss_mib=run.process.peak_pss_mib,
        processes=run.process.peak_processes,
        imports=float("nan"),
        startup=startup,
        rounds=rounds,
    )


def run_simulate(spec: TrainingSpec, parties: int, out: Path) -> _runs.RunFigures:
    """``hydrafed simulate`` as one system of the side-by-side (no baselines: only the federation)."""
    return figures(simulate(spec, parties, out / f"hydrafed-{parties}"), parties)
