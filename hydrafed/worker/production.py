"""A party's worker wired to production transports: its hydra-node and its buckets.

``hydrafed worker`` (the operator's Job) and ``hydrafed simulate`` (one process per party) both
build their ``PartyWorker`` here, so simulate runs exactly what a cluster runs.
"""

from __future__ import annotations

from pathlib import Path

from hydrafed import storage
from hydrafed.hydra import keys as keys_mod
from hydrafed.worker.ledger import HydraLedger
from hydrafed.worker.party import PartyConfig, PartyWorker, Progress
from hydrafed.worker.records import NodeAccess as NodeAccess
from hydrafed.worker.task import LocalTask


def build_worker(
    config: PartyConfig, access: NodeAccess, task: LocalTask, *, progress: Progress | None = None
) -> PartyWorker:
    """The party's worker on its hydra-node (``HydraLedger``), its bucket and the peers' grants."""
    keys = keys_mod.load_party_keys(Path(access.keys_dir), config.name)
    ledger = HydraLedger(
        access.api_url,
        keys,
        config.fed,
        config.spec,
        {m.name: (m.address, m.key_hash) for m in config.members},
        access.network,
        offline_limit=access.offline_limit,
        max_samples={m.name: m.max_samples for m in config.members},
    )
    own = storage.open_store(config.spec.storage, access.storage_credentials)
    peers = {m.name: storage.open_shared(m.grant) for m in config.members if m.name != config.name}
    return PartyWorker(config, task, ledger, own, peers, progress=progress)
