"""A party's worker wired to production transports: its hydra-node and its buckets.

``hydrafed worker`` (the operator's Job) and ``hydrafed simulate`` (one process per party) both
build their ``PartyWorker`` here, so simulate runs exactly what a cluster runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from hydrafed import storage
from hydrafed.hydra import keys as keys_mod
from hydrafed.worker.ledger import HydraLedger
from hydrafed.worker.party import PartyConfig, PartyWorker, Progress
from hydrafed.worker.task import LocalTask


@dataclasses.dataclass(frozen=True)
class NodeAccess:
    """How this party reaches its node and its own bucket; picklable, secrets kept out of repr."""

    api_url: str
    keys_dir: Path
    network: keys_mod.NetworkName = "testnet"
    offline_limit: float = 300.0
    """Seconds the node may stay unreachable before the worker fails naming it (nodeOfflineSeconds)."""
    storage_credentials: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    """Keys of the party's own bucket (s3, storj); a secret, so kept out of repr and logs."""


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
