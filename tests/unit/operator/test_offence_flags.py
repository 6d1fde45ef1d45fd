"""The operator flags ledger offences by party (Event, condition, metric) and applies the offence limit."""

from __future__ import annotations

from typing import Any

import pytest

from hydrafed import spec
from hydrafed.hydra.tx import Announcement
from hydrafed.operator import federation, metrics
from hydrafed.rounds import ConfirmedAnnouncement, RoundBook

pytestmark = pytest.mark.unit


def _book() -> RoundBook:
    book = RoundBook(
        "fed", "ab", {"alice": "a" * 56, "bob": "b" * 56}, max_samples={"bob": 10}, total_rounds=3
    )
    for n, (party, samples) in enumerate([("alice", 5), ("bob", 11), ("bob", 5), ("alice", 5)]):
        ann = Announcement("fed", 1, party, f"local://{party}/k", "c" * 64, samples)
        book.apply(ConfirmedAnnouncement(ann, f"tx{n}", n))
    return book


def test_offences_become_an_event_a_condition_and_a_metric_naming_the_party() -> None:
    # Prepare: bob over his maxSamples, then bob and alice announcing round 1 twice
    book = _book()
    runner: Any = federation.FederationRunner.__new__(federation.FederationRunner)
    runner.namespace, runner.name, runner._ignored_seen = "ns", "fed", 0
    draft = federation.Draft(spec.FederationPhase.TRAINING, "", [], 1)
    counter = metrics.PARTY_OFFENCES.labels(
        namespace="ns", federation="fed", party="bob", code="TooManySamples"
    )
    before = counter._value.get()

    # Execute
    runner._flag_ignored(book, draft)

    # Assert
    reasons = [(kind, reason, message.split(" ")[1]) for kind, reason, message in draft.events]
    assert reasons == [
        ("Warning", "PeerOffence", "bob"),
        ("Warning", "PeerOffence", "bob"),
        ("Warning", "PeerOffence", "alice"),
    ]
    (condition,) = [c for c in draft.conditions if c.type == "PeerOffences"]
    assert condition.status == spec.ConditionStatus.TRUE
    assert "alice: round 1 Duplicate" in condition.message
    assert "bob: round 1 TooManySamples, round 1 Duplicate" in condition.message
    assert counter._value.get() == before + 1


def test_the_offence_limit_names_the_first_member_that_reached_it() -> None:
    book = _book()
    fed = spec.FederationSpec(round_policy=spec.RoundPolicySpec(close_after_offences=2))

    reason = federation._over_offence_limit(book, fed)

    assert reason is not None and reason.startswith("bob has 2 offences")
    assert federation._over_offence_limit(book, spec.FederationSpec()) is None
