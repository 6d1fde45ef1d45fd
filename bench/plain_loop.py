"""The anchor: a plain in-process FedAvg loop over the same tasks, with per-round timings as JSON.

Usage: HYDRAFED_BENCH_SPEC='{...}' python -m bench.plain_loop --parties 10 --out plain.json

No processes, storage, ledger or framework: parties train one after another, FedAvg, evaluate.
Its per-round overhead (round wall minus training) is the floor any orchestration adds to.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from hydrafed.spec import TrainingSpec  # noqa: E402
from hydrafed.worker.aggregation import Update, get_aggregator  # noqa: E402
from hydrafed.worker.mnist_task import MnistTask  # noqa: E402

SPEC_ENV = "HYDRAFED_BENCH_SPEC"
IMPORTS_DONE = time.time()


def main() -> None:
    """Run the loop and write rounds, accuracies and timings to --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = TrainingSpec.model_validate(json.loads(os.environ[SPEC_ENV]))
    tasks = [MnistTask.from_spec(spec, party_index=i, parties=args.parties) for i in range(args.parties)]
    aggregator = get_aggregator("fedavg")
    first = tasks[0].evaluate()
    previous = time.time()
    first_round_start = previous
    state = None
    per_round = []
    for round_no in range(1, spec.rounds + 1):
        updates, intervals, seconds = [], [], []
        for index, task in enumerate(tasks):
            start = time.time()
            result = task.train_round(round_no)
            intervals.append([start, time.time()])
            seconds.append(result.seconds)
            updates.append(Update(f"party-{index}", result.samples, task.exchanged_state()))
        aggregated = aggregator.aggregate(updates, state=state)
        state = aggregated.state
        for task in tasks:
            task.load_exchanged_state(aggregated.tensors)
        metrics = tasks[0].evaluate()
        now = time.time()
        per_round.append(
            {
                "round": round_no,
                "accuracy": metrics["accuracy"],
                "loss": metrics["loss"],
                "wall": now - previous,
                "train_intervals": intervals,
                "train_seconds": seconds,
            }
        )
        previous = now
    result = {
        "system": "plain",
        "parties": args.parties,
        "process_start": PROCESS_START,
        "imports_seconds": IMPORTS_DONE - PROCESS_START,
        "first_round_start": first_round_start,
        "process_end": time.time(),
        "initial_accuracy": first["accuracy"],
        "rounds": per_round,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
