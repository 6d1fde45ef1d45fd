"""Run one Flower 1.42 simulation of the benchmark task and write its per-round timings as JSON.

Usage (inside the bench venv; ``bench.vs_flower`` does this):
    HYDRAFED_BENCH_SPEC='{"rounds": 20, ...}' python -m bench.flower_app --parties 10 --out flower.json

FedAvg (weighted by examples, as hydrafed's), every client trains every round with one CPU, the
global model is evaluated on the common held-out test set after every round (server side, one
evaluation per round: Flower's cheapest option). A round's wall time runs from the end of the
previous round's evaluation to the end of its own.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, MetricRecord  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from bench import _flower_client  # noqa: E402
from hydrafed.worker.mnist_task import MnistTask  # noqa: E402

IMPORTS_DONE = time.time()


class TimedFedAvg(FedAvg):
    """FedAvg that keeps every client's training interval of every round."""

    def __init__(self, log: dict[int, list[dict[str, float]]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_log = log

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.client_log[server_round] = [
            {k: float(v) for k, v in r.content["metrics"].items()} for r in replies if r.has_content()
        ]
        return super().aggregate_train(server_round, replies)


def main() -> None:
    """Run the simulation and write rounds, accuracies and timings to --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = _flower_client.bench_spec()
    torch.set_num_threads(1)
    evaluator = MnistTask.from_spec(spec, party_index=0, parties=args.parties)
    rounds: dict[int, dict[str, float]] = {}
    client_log: dict[int, list[dict[str, float]]] = {}
    marks: dict[str, float] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        evaluator.load_exchanged_state(arrays.to_torch_state_dict())
        metrics = evaluator.evaluate()
        rounds[server_round] = {**metrics, "end": time.time()}
        return MetricRecord(metrics)

    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        marks["server_start"] = time.time()
        strategy = TimedFedAvg(
            client_log,
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=args.parties,
            min_available_nodes=args.parties,
        )
        initial = ArrayRecord(evaluator.exchanged_state())
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=spec.rounds, evaluate_fn=evaluate)
        marks["server_end"] = time.time()

    run_simulation(
        server_app=server,
        client_app=_flower_client.app,
        num_supernodes=args.parties,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    per_round = []
    for r in range(1, spec.rounds + 1):
        clients = client_log.get(r, [])
        per_round.append(
            {
                "round": r,
                "accuracy": rounds[r]["accuracy"],
                "loss": rounds[r]["loss"],
                "wall": rounds[r]["end"] - rounds[r - 1]["end"],
                "train_intervals": [[c["train-start"], c["train-end"]] for c in clients],
                "train_seconds": [c["train-seconds"] for c in clients],
            }
        )
    result = {
        "system": "flower",
        "parties": args.parties,
        "process_start": PROCESS_START,
        "imports_seconds": IMPORTS_DONE - PROCESS_START,
        "first_round_start": rounds[0]["end"],
        "process_end": time.time(),
        "initial_accuracy": rounds[0]["accuracy"],
        "rounds": per_round,
        "pid": os.getpid(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
