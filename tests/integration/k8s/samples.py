"""Status objects with every field set: what the operator could write, for round-trip tests.

``unset_fields`` lists fields left at None; the unit tests require it to be empty, so a new
status field cannot be added without a sample value here, and so without a round-trip test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from hydrafed import spec

T0 = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
T1 = datetime(2026, 11, 27, 1, 7, 9, tzinfo=UTC)
SHA = "5e" * 32
TX = "7a" * 32


def _condition(kind: str, status: spec.ConditionStatus, reason: str) -> spec.Condition:
    return spec.Condition(
        type=kind,
        status=status,
        observed_generation=2,
        last_transition_time=T0,
        reason=reason,
        message=f"{kind} is {status.value}",
    )


def _update(round_no: int, party: str, samples: int) -> spec.UpdateRef:
    return spec.UpdateRef(
        round=round_no,
        uri=f"s3://{party}-digits/rounds/{round_no}/{party}.safetensors",
        sha256=SHA,
        samples=samples,
        tx_id=TX,
    )


FEDERATION_STATUS = spec.FederationStatus(
    observed_generation=2,
    phase=spec.FederationPhase.TRAINING,
    message="round 3 of 10: waiting for carol's announcement",
    conditions=[
        _condition("PartiesReady", spec.ConditionStatus.TRUE, "AllConnected"),
        _condition("HeadOpen", spec.ConditionStatus.TRUE, "HeadIsOpen"),
        _condition("RoundInProgress", spec.ConditionStatus.TRUE, "WaitingForAnnouncements"),
        _condition("Degraded", spec.ConditionStatus.FALSE, "AsExpected"),
    ],
    current_round=3,
    completed_rounds=2,
    parties_ready="3/3",
    parties=[
        spec.PartyProgress(
            name="alice",
            local=True,
            ready=True,
            phase=spec.PartyPhase.ANNOUNCED,
            last_announced_round=3,
            update=_update(3, "alice", 18_000),
            metrics={"accuracy": 0.9412, "loss": 0.2137},
            escrow=spec.EscrowProgress(
                state=spec.EscrowState.SLASHED, tx_id="4d" * 32, round=2, reason="hash-mismatch"
            ),
        ),
        spec.PartyProgress(
            name="carol",
            local=False,
            ready=True,
            phase=spec.PartyPhase.TRAINING,
            last_announced_round=2,
            update=_update(2, "carol", 22_000),
            metrics={"accuracy": 0.9301, "loss": 0.25},
            escrow=spec.EscrowProgress(
                state=spec.EscrowState.SLASHED, tx_id="3c" * 32, round=1, reason="equivocation"
            ),
        ),
    ],
    head_id="0a1b2c3d" * 7,
    head_state=spec.HeadState.OPEN,
    last_snapshot=spec.SnapshotRef(number=17, utxo_hash="9f" * 32, tx_count=2, confirmed_at=T1),
    rounds=[
        spec.RoundRecord(
            round=2,
            phase=spec.RoundPhase.COMPLETED,
            started_at=T0,
            completed_at=T1,
            announced=["alice", "bob", "carol"],
            cut_off=True,
            ignored=[spec.RoundIgnored(party="dave", code="Late")],
            global_sha256=SHA,
            metrics={"accuracy": 0.93},
        )
    ],
    metrics={"accuracy": 0.93, "loss": 0.24},
    progress=spec.Progress(percentage=20, estimated_remaining_seconds=2400, last_updated_time=T1),
    start_time=T0,
    completion_time=T1,
    kopf={"progress": {"open_head": {"started": "2026-11-27T01:02:03Z", "retries": 1, "success": False}}},
)

PARTY_STATUS = spec.PartyStatus(
    observed_generation=1,
    phase=spec.PartyPhase.ANNOUNCED,
    message="announced round 3; waiting for the peers",
    conditions=[
        _condition("KeysReady", spec.ConditionStatus.TRUE, "Generated"),
        _condition("NodeReady", spec.ConditionStatus.TRUE, "PodReady"),
        _condition("WorkerReady", spec.ConditionStatus.UNKNOWN, "JobPending"),
    ],
    hydra_vkey="ab" * 32,
    cardano_vkey="cd" * 32,
    address="addr_test1vzx7c8y2pqa9j0p5n3k0f8u6q4r3w2e1t0y9u8i7o6p5a4s3d2f1g",
    key_secret_name="alice-keys",
    node=spec.NodeStatus(ready=True, peers_connected=2, api_url="ws://alice-hydra.ns.svc:4001"),
    worker_job="alice-round-3",
    current_round=3,
    last_announced_round=3,
    last_update=_update(3, "alice", 18_000),
    metrics={"accuracy": 0.9412, "loss": 0.2137},
    kopf={"dummy": "2026-11-27T01:02:03Z"},
)


def unset_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every field (recursively, lists included) that is None."""
    missing: list[str] = []
    for name in type(model).model_fields:
        value: Any = getattr(model, name)
        path = f"{prefix}{name}"
        if value is None:
            missing.append(path)
        elif isinstance(value, BaseModel):
            missing += unset_fields(value, path + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    missing += unset_fields(item, f"{path}[{i}].")
    return missing


def wire(model: BaseModel) -> dict[str, Any]:
    """The JSON the operator sends: camelCase, no None."""
    return spec.to_wire(model)
