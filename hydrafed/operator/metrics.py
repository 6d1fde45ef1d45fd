"""The operator's Prometheus metrics, served on ``--metrics-port`` (names follow Prometheus'
conventions: base units, ``_total`` for counters, one metric per quantity with labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from hydrafed import spec

REGISTRY = CollectorRegistry(auto_describe=True)

ROUNDS_COMPLETED = Counter(
    "hydrafed_rounds_completed",
    "Rounds whose announcements all were confirmed, as this operator saw them.",
    ["namespace", "federation"],
    registry=REGISTRY,
)
CURRENT_ROUND = Gauge(
    "hydrafed_current_round",
    "The round in progress (0 before the first).",
    ["namespace", "federation"],
    registry=REGISTRY,
)
ROUND_DURATION = Histogram(
    "hydrafed_round_duration_seconds",
    "From one round's completion (or the start of training) to the next round's, seen live.",
    ["namespace", "federation"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
CONFIRMATION_LATENCY = Histogram(
    "hydrafed_announcement_confirmation_seconds",
    "From an announcement's TxValid to the SnapshotConfirmed that holds it.",
    ["namespace", "federation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
HEAD_STATE = Gauge(
    "hydrafed_head_state",
    "1 for the head's current state, 0 for the others.",
    ["namespace", "federation", "state"],
    registry=REGISTRY,
)
PHASE = Gauge(
    "hydrafed_federation_phase",
    "1 for the Federation's current phase, 0 for the others.",
    ["namespace", "federation", "phase"],
    registry=REGISTRY,
)
PARTY_ACCURACY = Gauge(
    "hydrafed_party_accuracy_ratio",
    "Accuracy a party announced with its last confirmed update (0..1).",
    ["namespace", "federation", "party"],
    registry=REGISTRY,
)
IGNORED_ANNOUNCEMENTS = Counter(
    "hydrafed_ignored_announcements",
    "Confirmed announcements that do not count, by cause (SpecMismatch, NotSigned, Duplicate, ...).",
    ["namespace", "federation", "reason"],
    registry=REGISTRY,
)
PARTY_OFFENCES = Counter(
    "hydrafed_party_offences",
    "Offences a member committed on the ledger (TooManySamples, Duplicate, NoSuchRound, EarlyCutoff, ...).",
    ["namespace", "federation", "party", "code"],
    registry=REGISTRY,
)

ALL = (
    ROUNDS_COMPLETED,
    CURRENT_ROUND,
    ROUND_DURATION,
    CONFIRMATION_LATENCY,
    HEAD_STATE,
    PHASE,
    PARTY_ACCURACY,
    IGNORED_ANNOUNCEMENTS,
    PARTY_OFFENCES,
)


def set_state(gauge: Gauge, values: list[str], current: str | None, namespace: str, federation: str) -> None:
    """A state set: one series per value, 1 for the current one."""
    labelname = gauge._labelnames[-1]
    for value in values:
        gauge.labels(namespace=namespace, federation=federation, **{labelname: value}).set(
            1 if value == current else 0
        )


HEAD_STATES = [s.value for s in spec.HeadState]
PHASES = [p.value for p in spec.FederationPhase]


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's metrics port
    start_http_server(port, addr=addr, registry=REGISTRY)
