"""What runs inside simulate's child processes: one party's rounds, or one baseline curve.

Started by ``supervisor.Supervisor`` (parties) and simulate's baseline pool. Torch and the task
are imported inside the functions: simulate's parent names these functions but never runs them,
and so never imports torch.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydrafed.spec import TrainingSpec
from hydrafed.worker import processes
from hydrafed.worker.phases import State
from hydrafed.worker.records import NodeAccess, PartyConfig


def run_party(
    config: PartyConfig, access: NodeAccess, party_index: int, parties: int, cache: Path | None, events: Any
) -> None:
    """Build the party's task, run its rounds against its node and buckets, report the result."""
    import torch

    from hydrafed.worker.production import build_worker
    from hydrafed.worker.tasks import build_task

    torch.set_num_threads(1)
    task = build_task(config.spec.training, party_index=party_index, parties=parties, cache=cache)
    processes.release_freed_memory()
    worker = build_worker(config, access, task, progress=events.put)
    result = asyncio.run(worker.run())
    events.put({"party": config.name, "state": State.RESULT, "result": asdict(result)})


def baseline_curve(spec: TrainingSpec, party_index: int, parties: int, cache: Path | None) -> list[float]:
    """Test accuracy after each round of training alone (parties == 0: on all data pooled)."""
    import torch

    from hydrafed.worker import baselines
    from hydrafed.worker.tasks import build_task

    torch.set_num_threads(1)
    task = build_task(spec, party_index=party_index, parties=parties, cache=cache)
    return [metrics["accuracy"] for metrics in baselines.local_only(task, spec.rounds)]
