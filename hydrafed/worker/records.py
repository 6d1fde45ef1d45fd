"""The plain records a party is given and reports: members, config, node access, rounds, result.

They cross process boundaries (simulate's parent pickles configs to the parties and reads their
results back) and say nothing about training, so this module imports no torch: simulate's parent
and the report use them without paying torch's import (``hydrafed.worker.party`` re-exports them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydrafed import errors
from hydrafed.hydra import keys as keys_mod
from hydrafed.spec import FederationSpec

Progress = Callable[[dict[str, Any]], None]
"""Where a worker sends its small progress dicts (``{"party", "round", "state", ...}``)."""


@dataclasses.dataclass(frozen=True)
class Member:
    """A federation member as every party knows it: public facts only."""

    name: str
    address: str
    """L2 payment address; every announcement pays each peer here."""
    key_hash: str
    """Payment key hash (hex) that must have signed the member's announcements."""
    bucket: str
    grant: str = dataclasses.field(default="", repr=False)
    """Read credential the member shared for its round objects (a secret: not in repr)."""
    max_samples: int | None = None
    """The most samples the member's announcements may claim (its Party's maxSamples); None: 10^12."""


@dataclasses.dataclass(frozen=True)
class PartyConfig:
    """What one party process needs; picklable so it crosses a spawn boundary."""

    fed: str
    name: str
    members: tuple[Member, ...]
    spec: FederationSpec
    work_dir: Path

    def __post_init__(self) -> None:
        names = [m.name for m in self.members]
        if self.name not in names:
            raise errors.ConfigError(f"party {self.name!r} is not among the members {names}")
        if len(set(names)) != len(names):
            raise errors.ConfigError(f"member names must be unique, got {names}")


@dataclasses.dataclass(frozen=True)
class RoundReport:
    """One party's view of one round: members, metrics after aggregation, seconds per phase."""

    round: int
    members: list[str]
    metrics: dict[str, float]
    train_metrics: dict[str, float]
    timings: dict[str, float]
    tx_id: str
    sha256: str
    global_sha256: str
    started_at: float = 0.0
    """Epoch seconds when this party began the round (training), and when it had evaluated."""
    finished_at: float = 0.0
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)
    """Members whose counted announcement was left out after download: party -> code
    (HashMismatch, BadUpdate)."""
    missed: bool = False
    """This party's own update is not in the round (its announcement came after the cutoff):
    it took the round's aggregate and went on."""


@dataclasses.dataclass(frozen=True)
class PartyResult:
    """What a party reports when its rounds are done."""

    name: str
    samples: int
    rounds: list[RoundReport]
    final_sha256: str
    announcements: list[dict[str, Any]]
    """Every counted announcement as this party's ledger saw it (round, party, txId, uri, sha256...)."""
    ignored: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Every confirmed tx that did not count (txId, party, round, code, reason, offence), in
    ledger order, then the updates excluded after download (code HashMismatch or BadUpdate)."""


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
