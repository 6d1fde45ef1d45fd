"""The worker's Prometheus metrics (``config.metricsPort``), fed from the round loop's progress events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from hydrafed.worker.phases import State

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

ROUND = Gauge("hydrafed_worker_round", "The last round this party aggregated.", registry=REGISTRY)
TRAINING_LOSS = Gauge(
    "hydrafed_worker_training_loss", "Mean training loss of the last local round.", registry=REGISTRY
)
SAMPLES_PER_SECOND = Gauge(
    "hydrafed_worker_samples_per_second",
    "Training examples per second in the last local round.",
    registry=REGISTRY,
)
PHASE_SECONDS = Histogram(
    "hydrafed_worker_phase_seconds",
    "Seconds per phase of a round (train, serialize, upload, announce, wait, download, verify, aggregate).",
    ["phase"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
    registry=REGISTRY,
)
PEER_OFFENCES = Counter(
    "hydrafed_worker_peer_offences",
    "Peers' updates this party excluded after download (HashMismatch, BadUpdate), by party and code.",
    ["party", "code"],
    registry=REGISTRY,
)
"""The byte-level offences only the workers see; the operator counts the ledger's own."""


def observe(event: Mapping[str, Any]) -> None:
    """Update the metrics from one progress event of ``PartyWorker``."""
    if event.get("state") == State.EXCLUDED:
        PEER_OFFENCES.labels(party=str(event.get("offender")), code=str(event.get("code"))).inc()
        return
    if event.get("state") != State.AGGREGATED:
        return
    ROUND.set(float(event.get("round", 0)))
    timings = event.get("timings") or {}
    for phase, seconds in timings.items():
        PHASE_SECONDS.labels(phase=phase).observe(float(seconds))
    loss = (event.get("train_metrics") or {}).get("loss")
    if loss is not None:
        TRAINING_LOSS.set(float(loss))
    train = float(timings.get("train", 0.0))
    if train > 0:
        SAMPLES_PER_SECOND.set(float(event.get("samples", 0)) / train)


def serve(port: int) -> bool:
    """Serve /metrics; a port already taken leaves metrics off rather than failing the rounds."""
    try:
        start_http_server(port, addr="0.0.0.0", registry=REGISTRY)  # noqa: S104 - a pod's metrics port
    except OSError as exc:
        log.warning("metrics port %d: %s; the worker runs without metrics", port, exc)
        return False
    return True
