"""In-process reference loop: federated vs local-only vs centralized accuracy for one TrainingSpec.

Usage: python -m bench.accuracy_reference --parties 10 --rounds 20 [--lr 0.3 --momentum 0 ...]
Unset options take hydrafed's TrainingSpec defaults. One torch thread, as in a party process.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from hydrafed.worker.baselines import reference_run

from hydrafed.spec import TrainingSpec


def main() -> None:
    """Run one reference configuration and print its table (and a JSON line for scripts)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--momentum", type=float, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--lr-decay", type=float, default=None)
    parser.add_argument("--local-epochs", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--partition", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {
        "rounds": args.rounds,
        "model": args.model,
        "learning_rate": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "lr_decay": args.lr_decay,
        "local_epochs": args.local_epochs,
        "batch_size": args.batch,
        "partition": args.partition,
        "seed": args.seed,
    }
    spec = TrainingSpec(**{k: v for k, v in overrides.items() if v is not None})
    started = time.perf_counter()
    result = reference_run(spec, args.parties)
    wall = time.perf_counter() - started
    shown = ("model", "rounds", "local_epochs", "learning_rate", "momentum", "weight_decay", "lr_decay")
    print("spec:", spec.model_dump(include={*shown, "batch_size", "partition", "seed"}))
    print(f"{'party':<10}{'samples':>8}{'local':>8}{'fed':>8}{'gain':>8}")
    for party, samples in result.samples.items():
        local, fed = result.local_only[party] * 100, result.federated[party] * 100
        print(f"{party:<10}{samples:>8}{local:>8.2f}{fed:>8.2f}{fed - local:>+8.2f}")
    print(f"centralized {result.centralized * 100:.2f}")
    print(
        f"federated loop {result.federated_seconds:.1f}s (training {result.federated_train_seconds:.1f}s); "
        f"whole script {wall:.1f}s"
    )
    gains = [result.federated[p] - result.local_only[p] for p in result.samples]
    print(
        json.dumps(
            {
                "parties": args.parties,
                "min_fed": min(result.federated.values()),
                "min_gain": min(gains),
                "centralized": result.centralized,
            }
        )
    )


if __name__ == "__main__":
    main()
