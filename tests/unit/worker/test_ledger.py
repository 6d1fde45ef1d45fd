"""The in-memory ledger keeps the Hydra ledger's semantics: one order for all, rules decide what counts."""

from __future__ import annotations

import asyncio

import pytest

from hydrafed import errors
from hydrafed.hydra.tx import Announcement, Cutoff
from hydrafed.rounds import ConfirmedAnnouncement, RoundRules
from hydrafed.worker.ledger import InMemoryHead, InMemoryLedger

pytestmark = pytest.mark.unit


def _ann(party: str, round_no: int = 1, digest: str = "a" * 64, fed: str = "fed") -> Announcement:
    return Announcement(fed, round_no, party, f"local://{party}/k", digest, samples=10)


async def test_every_party_sees_the_same_order_and_only_first_announcements_count() -> None:
    # Prepare
    head = InMemoryHead("fed", ["alice", "bob"])
    alice, bob = head.ledger("alice"), head.ledger("bob")
    seen: dict[str, list[tuple[str, int]]] = {"alice": [], "bob": []}
    rules = {"alice": RoundRules(["alice", "bob"]), "bob": RoundRules(["alice", "bob"])}

    async def follow(name: str, ledger: InMemoryLedger, count: int) -> None:
        async for entry in ledger.confirmed():
            assert isinstance(entry, ConfirmedAnnouncement)
            seen[name].append((entry.announcement.party, entry.snapshot))
            rules[name].apply(entry)
            if len(seen[name]) == count:
                return

    async with alice, bob:
        followers = [asyncio.create_task(follow(n, h, 4)) for n, h in (("alice", alice), ("bob", bob))]

        # Execute
        await bob.submit(_ann("bob"))
        await alice.submit(_ann("alice"))
        await bob.submit(_ann("bob", digest="b" * 64))  # a second round-1 announcement: ignored
        await alice.submit(_ann("alice", round_no=2))
        await asyncio.wait_for(asyncio.gather(*followers), 5)

    # Assert
    assert seen["alice"] == seen["bob"] == [("bob", 1), ("alice", 2), ("bob", 3), ("alice", 4)]
    for book in rules.values():
        assert [(i.code, i.party, i.round) for i in book.ignored] == [("Duplicate", "bob", 1)]
        assert book.rounds[1]["bob"].announcement.sha256 == "a" * 64
        assert book.is_complete(1) and book.announced(2) == ["alice"]


async def test_a_late_joiner_gets_earlier_announcements_as_history_only() -> None:
    head = InMemoryHead("fed", ["alice", "bob"])
    async with head.ledger("alice") as alice:
        await alice.submit(_ann("alice"))

    async with head.ledger("bob") as bob:
        history = bob.history()
        await alice.submit(_ann("alice", round_no=2))
        stream = bob.confirmed()
        first_live = await asyncio.wait_for(anext(stream), 5)

    assert [
        (e.announcement.party, e.announcement.round) for e in history if isinstance(e, ConfirmedAnnouncement)
    ] == [("alice", 1)]
    assert isinstance(first_live, ConfirmedAnnouncement)
    assert (first_live.announcement.party, first_live.announcement.round) == ("alice", 2)


async def test_a_handle_announces_only_for_its_own_party_and_federation() -> None:
    head = InMemoryHead("fed", ["alice", "bob"])
    async with head.ledger("alice") as alice:
        with pytest.raises(errors.ConfigError, match="alice cannot announce for 'bob'"):
            await alice.submit(_ann("bob"))
        with pytest.raises(errors.ConfigError, match=r"announcement\.fed 'other'"):
            await alice.submit(_ann("alice", fed="other"))
        with pytest.raises(errors.ConfigError, match="alice cannot cut off for 'bob'"):
            await alice.submit_cutoff(Cutoff("fed", 1, "bob"))
    with pytest.raises(errors.ConfigError, match="'mallory' is not a member"):
        head.ledger("mallory")
    assert head.entries == []
