"""The one membership rule: what counts in a round is decided by the ledger order alone."""

from __future__ import annotations

import pytest

from hydrafed.hydra.tx import Announcement, Cutoff
from hydrafed.rounds import ConfirmedAnnouncement, ConfirmedCutoff, RoundRules

pytestmark = pytest.mark.unit

MEMBERS = ["alice", "bob", "carol"]


def _ann(party: str, round_no: int = 1, samples: int = 100, n: int = 0) -> ConfirmedAnnouncement:
    announcement = Announcement("fed", round_no, party, f"local://{party}/k", "a" * 64, samples)
    return ConfirmedAnnouncement(announcement, f"tx-{party}-{round_no}-{n}", n)


def _cut(party: str, round_no: int = 1, n: int = 0) -> ConfirmedCutoff:
    return ConfirmedCutoff(Cutoff("fed", round_no, party), f"cut-{party}-{round_no}-{n}", n)


def _codes(rules: RoundRules) -> list[tuple[str, str, int]]:
    return [(i.code, i.party, i.round) for i in rules.ignored]


def test_without_quorum_a_round_completes_when_every_member_has_announced() -> None:
    rules = RoundRules(MEMBERS, total_rounds=3)

    for party in ("carol", "alice"):
        assert rules.apply(_ann(party)) is None
    assert not rules.is_complete(1)
    assert rules.apply(_ann("bob")) is None

    assert rules.is_complete(1)
    assert [e.announcement.party for e in rules.round_announcements(1)] == MEMBERS
    assert rules.offences() == {}


def test_a_claim_over_the_declared_maximum_is_excluded_and_the_round_goes_on() -> None:
    rules = RoundRules(MEMBERS, max_samples={"bob": 500}, total_rounds=3)

    rules.apply(_ann("alice", samples=10**12))  # no declared maximum: the global limit
    verdict = rules.apply(_ann("bob", samples=501))
    rules.apply(_ann("carol"))

    assert verdict is not None and verdict.code == "TooManySamples" and verdict.offence
    assert "declared maximum of 500" in verdict.reason and "maxSamples" in verdict.reason
    assert rules.is_complete(1)  # bob's first announcement is in: the round waits for no one
    assert rules.announced(1) == ["alice", "carol"]
    assert list(rules.offences()) == ["bob"]


def test_a_second_announcement_and_an_unknown_round_are_offences() -> None:
    rules = RoundRules(MEMBERS, total_rounds=2)

    rules.apply(_ann("alice"))
    rules.apply(_ann("alice", n=1))
    rules.apply(_ann("bob", round_no=3))
    rules.apply(_ann("bob", round_no=0))

    assert _codes(rules) == [("Duplicate", "alice", 1), ("NoSuchRound", "bob", 3), ("NoSuchRound", "bob", 0)]
    assert [len(v) for v in rules.offences().values()] == [1, 2]
    assert rules.rounds[1]["alice"].tx_id == "tx-alice-1-0"  # the first one stays


def test_a_quorum_round_is_fixed_by_the_first_valid_cutoff_and_late_ones_are_ignored() -> None:
    rules = RoundRules(MEMBERS, total_rounds=3, quorum=2)

    rules.apply(_ann("alice"))
    early = rules.apply(_cut("alice"))  # one announcement, quorum 2
    rules.apply(_ann("carol"))
    assert rules.apply(_cut("carol")) is None
    second = rules.apply(_cut("alice", n=1))
    late = rules.apply(_ann("bob"))

    assert early is not None and early.code == "EarlyCutoff" and early.offence
    assert second is not None and second.code == "CutoffNotNeeded" and not second.offence
    assert late is not None and late.code == "Late" and not late.offence  # a straggler, not an offender
    assert rules.is_complete(1) and rules.announced(1) == ["alice", "carol"]
    assert rules.outcome(1, "bob") == "Late" and rules.outcome(1, "alice") == "Counted"
    assert rules.cutoffs[1].tx_id == "cut-carol-1-0"
    assert list(rules.offences()) == ["alice"]


def test_cutoffs_do_not_count_without_a_quorum_policy() -> None:
    rules = RoundRules(MEMBERS, total_rounds=3)

    rules.apply(_ann("alice"))
    rules.apply(_ann("bob"))
    verdict = rules.apply(_cut("alice"))

    assert verdict is not None and verdict.code == "NoQuorum"
    assert not rules.is_complete(1)


@pytest.mark.parametrize("seed", range(5))
def test_every_party_feeding_the_same_order_decides_the_same(seed: int) -> None:
    import random

    rng = random.Random(seed)
    items: list[ConfirmedAnnouncement | ConfirmedCutoff] = []
    for round_no in (1, 2):
        for party in MEMBERS:
            items.append(_ann(party, round_no, samples=rng.choice([10, 10**6]), n=len(items)))
            if rng.random() < 0.5:
                items.append(_cut(rng.choice(MEMBERS), round_no, n=len(items)))
    rng.shuffle(items)
    views = [RoundRules(MEMBERS, max_samples={"bob": 1000}, total_rounds=2, quorum=2) for _ in range(3)]

    for view in views:
        for item in items:
            view.apply(item)

    first = views[0]
    for view in views[1:]:
        assert view.rounds == first.rounds and view.cutoffs == first.cutoffs
        assert view.ignored == first.ignored
