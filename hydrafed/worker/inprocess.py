"""Every party's real ``PartyWorker`` in one process: an in-memory head and local buckets.

For tests, tuning and benchmarks that need the federated numbers without processes or a devnet:
the round loop is the production one (train, upload as safetensors, announce, verify sha256,
aggregate in ledger order); only the transport is in memory. Peers read through read-only grants,
as in production.

Public API::

    run_in_process(spec, tasks, work_dir, *, fed="in-process", progress=None, max_samples=None,
                   worker_types=None) -> {party: PartyResult}
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from hydrafed.spec import FederationSpec, StorageBackend, StorageSpec
from hydrafed.storage import LocalStore, UpdateStore, open_shared, share_buckets
from hydrafed.worker.ledger import InMemoryHead
from hydrafed.worker.party import Member, PartyConfig, PartyResult, PartyWorker, Progress
from hydrafed.worker.task import LocalTask


def run_in_process(
    spec: FederationSpec,
    tasks: Mapping[str, LocalTask],
    work_dir: Path,
    *,
    fed: str = "in-process",
    progress: Progress | None = None,
    max_samples: Mapping[str, int] | None = None,
    worker_types: Mapping[str, type[PartyWorker]] | None = None,
) -> dict[str, PartyResult]:
    """Run ``spec.training.rounds`` rounds with one worker per task (party name -> task).

    ``max_samples`` are the members' declared maxima; ``worker_types`` lets a benchmark or test
    run a party with a ``PartyWorker`` subclass (bench/robust.py's hostile party).
    """
    names = sorted(tasks)
    buckets = Path(work_dir) / "buckets"
    spec = spec.model_copy(update={"storage": StorageSpec(backend=StorageBackend.LOCAL, root=str(buckets))})
    expiry = timedelta(hours=spec.storage.share_expiry_hours)
    grants = share_buckets(spec.storage, {n: {} for n in names}, f"{fed}/rounds/", expiry)
    # Key hashes and addresses are the Hydra ledger's business; the in-memory head counts by name.
    caps = max_samples or {}
    members = tuple(
        Member(n, address="", key_hash="", bucket=n, grant=grants[n], max_samples=caps.get(n)) for n in names
    )
    head = InMemoryHead(fed, names)

    def worker(name: str) -> PartyWorker:
        config = PartyConfig(fed, name, members, spec, Path(work_dir) / "parties" / name)
        peers: dict[str, UpdateStore] = {m.name: open_shared(m.grant) for m in members if m.name != name}
        own = LocalStore(buckets)
        kind = (worker_types or {}).get(name, PartyWorker)
        return kind(config, tasks[name], head.ledger(name), own, peers, progress=progress)

    async def run_all() -> dict[str, PartyResult]:
        results = await asyncio.gather(*(worker(n).run() for n in names))
        return dict(zip(names, results, strict=True))

    return asyncio.run(run_all())
