"""The worker's metrics count what its progress events say (the events PartyWorker emits)."""

from __future__ import annotations

import pytest

from hydrafed.worker import metrics
from hydrafed.worker.phases import State

pytestmark = pytest.mark.unit


def _offences(party: str, code: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "hydrafed_worker_peer_offences_total", {"party": party, "code": code}
    )
    return value or 0.0


def test_an_excluded_update_counts_against_its_sender_only() -> None:
    before = _offences("carol", "HashMismatch")
    event = {
        "party": "alice",
        "round": 2,
        "state": State.EXCLUDED,
        "offender": "carol",
        "code": "HashMismatch",
        "reason": "bytes do not match the announced sha256",
    }
    metrics.observe(event)
    metrics.observe(event)
    assert _offences("carol", "HashMismatch") == before + 2
    assert _offences("alice", "HashMismatch") == 0.0


def test_an_aggregated_round_sets_the_round_and_phase_metrics() -> None:
    metrics.observe(
        {
            "state": State.AGGREGATED,
            "round": 7,
            "timings": {"train": 2.0},
            "samples": 100,
            "train_metrics": {"loss": 0.25},
        }
    )
    assert metrics.REGISTRY.get_sample_value("hydrafed_worker_round") == 7.0
    assert metrics.REGISTRY.get_sample_value("hydrafed_worker_samples_per_second") == 50.0
    assert metrics.REGISTRY.get_sample_value("hydrafed_worker_training_loss") == 0.25
