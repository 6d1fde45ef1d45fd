"""``hydrafed worker --config FILE``: one party's rounds as the operator's worker Job runs them.

The config (``hydrafed.spec.WorkerConfig``, written by the operator into a ConfigMap) names
secrets only by path: the key Secret, the storage Secret (one file per credential key) and one
file per peer's read grant are mounted. A restarted worker resumes from the ledger
(``PartyWorker._resume``): completed rounds are re-derived, nothing is announced twice.
The last line of a successful run is ``final global sha256 <hex>``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hydrafed import errors, spec
from hydrafed.worker.party import Member, PartyConfig, PartyResult
from hydrafed.worker.phases import State
from hydrafed.worker.production import NodeAccess, build_worker

log = logging.getLogger("hydrafed.worker")


def load_config(path: Path) -> spec.WorkerConfig:
    """The config file, or a ConfigError naming the file and the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise errors.ConfigError(f"--config {path}: no such file; pass the worker config file") from None
    except yaml.YAMLError as exc:
        raise errors.ConfigError(f"--config {path} is neither JSON nor YAML: {exc}") from None
    try:
        return spec.WorkerConfig.model_validate(data)
    except ValidationError as exc:
        raise errors.ConfigError(f"{path}: {spec.describe_validation_error(exc, root='config')}") from None


def read_credentials(directory: Path | None) -> dict[str, str]:
    """A mounted Secret: one file per key (Kubernetes' ``..data`` bookkeeping entries skipped)."""
    if directory is None:
        return {}
    if not directory.is_dir():
        raise errors.ConfigError(
            f"config.storageCredentialsDir {directory} is not a directory: mount the storage Secret"
        )
    return {
        f.name: f.read_text().strip()
        for f in sorted(directory.iterdir())
        if f.is_file() and not f.name.startswith(".")
    }


def party_config(config: spec.WorkerConfig) -> tuple[PartyConfig, NodeAccess]:
    """The round loop's config: grants read from their files, credentials from their directory."""
    if config.data_path is not None:
        raise errors.ConfigError(
            "config.dataPath: the worker trains on the seeded partition of the spec's dataset only; "
            "unset the Party's dataPath"
        )
    members = []
    for index, member in enumerate(config.members):
        grant = ""
        if member.name != config.party:
            if member.grant_file is None or not Path(member.grant_file).is_file():
                raise errors.ConfigError(
                    f"config.members[{index}].grantFile ({member.grant_file}) for {member.name} is missing: "
                    f"mount the read grant {member.name} exported"
                )
            grant = Path(member.grant_file).read_text().strip()
        members.append(
            Member(member.name, member.address, member.key_hash, member.bucket, grant, member.max_samples)
        )
    work_dir = Path(config.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    party = PartyConfig(
        fed=config.federation, name=config.party, members=tuple(members), spec=config.spec, work_dir=work_dir
    )
    access = NodeAccess(
        api_url=config.api_url,
        keys_dir=Path(config.keys_dir),
        network=config.network,
        offline_limit=float(config.node_offline_seconds),
        storage_credentials=read_credentials(
            Path(config.storage_credentials_dir) if config.storage_credentials_dir else None
        ),
    )
    return party, access


def run(config_path: Path) -> PartyResult:
    """Train, announce and aggregate every round; prints the final global sha256."""
    import torch

    from hydrafed.worker import metrics
    from hydrafed.worker.tasks import build_task

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    party, access = party_config(config)
    torch.set_num_threads(max(1, int(os.environ.get("HYDRAFED_TORCH_THREADS", "1"))))
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    task = build_task(
        config.spec.training, party_index=config.party_index, parties=len(config.members), cache=None
    )

    def progress(event: dict[str, Any]) -> None:
        metrics.observe(event)
        if event.get("state") in (State.AGGREGATED, State.RESUMED, State.ANNOUNCED, State.DIVERGED):
            shown = {k: v for k, v in event.items() if k not in ("timings", "party")}
            log.info("%s %s", config.party, json.dumps(shown, sort_keys=True, default=str))

    result = asyncio.run(build_worker(party, access, task, progress=progress).run())
    print(f"final global sha256 {result.final_sha256}", flush=True)
    return result
