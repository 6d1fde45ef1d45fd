"""Round membership read from the confirmed ledger.

Every party, and the operator's status daemon, feeds the same ``SnapshotConfirmed`` events into
a ``RoundBook`` and so sees the same announcements in the same order. An announcement counts
only if it belongs to this federation and spec, names a member, and was signed by that member's
payment key (the ``party`` field in metadata is only a claim). The first valid announcement of a
party in a round wins; later ones are recorded as ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydrafed.hydra import messages
from hydrafed.hydra import tx as tx_mod
from hydrafed.spec import FederationSpec

log = logging.getLogger(__name__)


def spec_hash(spec: FederationSpec) -> str:
    """A short, stable digest of what every party must agree on: training, policy and storage."""
    agreed = spec.model_dump(mode="json", by_alias=True, include={"training", "round_policy", "storage"})
    agreed.get("storage", {}).pop("root", None)  # a local path, different on every machine
    canonical = json.dumps(agreed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConfirmedAnnouncement:
    """An announcement together with where the ledger confirmed it."""

    announcement: tx_mod.Announcement
    tx_id: str
    snapshot: int


@dataclass(frozen=True)
class Ignored:
    """A confirmed tx that looked like an announcement but does not count, and why."""

    tx_id: str
    party: str
    """The party the metadata claims (only a claim: it may be forged)."""
    round: int
    code: str
    """CamelCase cause for machines: OtherFederation, SpecMismatch, NotMember, NotSigned, Duplicate."""
    reason: str
    """The cause in words."""


class RoundQueries:
    """What every reader asks of counted announcements (``rounds``) among ``members``."""

    members: Collection[str]
    rounds: dict[int, dict[str, ConfirmedAnnouncement]]

    def announced(self, round_no: int) -> list[str]:
        """Members with a counted announcement for the round, sorted."""
        return sorted(self.rounds.get(round_no, {}))

    def is_complete(self, round_no: int) -> bool:
        """Every member has announced the round."""
        return len(self.rounds.get(round_no, {})) == len(self.members)

    def round_announcements(self, round_no: int) -> list[ConfirmedAnnouncement]:
        """The round's counted announcements, sorted by party: the aggregation order."""
        entries = self.rounds.get(round_no, {})
        return [entries[name] for name in sorted(entries)]


class Rounds(RoundQueries):
    """Counted announcements per round, as a ledger that already validated them hands them over."""

    def __init__(self, members: Collection[str]) -> None:
        self.members = frozenset(members)
        self.rounds = {}

    def add(self, entry: ConfirmedAnnouncement) -> bool:
        """Take in one confirmed announcement; False if the party's round was already counted."""
        ann = entry.announcement
        entries = self.rounds.setdefault(ann.round, {})
        if ann.party in entries or ann.party not in self.members:
            return False
        entries[ann.party] = entry
        return True


@dataclass
class RoundBook(RoundQueries):
    """Which members have announced which round, as confirmed by the head.

    Parameters
    ----------
    fed, spec_hash
        Announcements for another federation or another spec are ignored.
    members
        Party name -> payment key hash (hex) that must have signed its announcements.
    """

    fed: str
    spec_hash: str
    members: Mapping[str, str]
    rounds: dict[int, dict[str, ConfirmedAnnouncement]] = field(default_factory=dict)
    ignored: list[Ignored] = field(default_factory=list)
    """Confirmed txs that looked like announcements but do not count, in ledger order."""
    _seen_tx: set[str] = field(default_factory=set)

    def observe(self, output: messages.ServerOutput) -> list[ConfirmedAnnouncement]:
        """Record the announcements of a SnapshotConfirmed; returns the newly counted ones."""
        if not isinstance(output, messages.SnapshotConfirmed):
            return []
        return self.observe_envelopes(output.confirmed, snapshot=output.number)

    def observe_envelopes(
        self, envelopes: Iterable[Mapping[str, Any]], *, snapshot: int
    ) -> list[ConfirmedAnnouncement]:
        """Record confirmed tx envelopes in ledger order; returns the newly counted announcements."""
        counted = []
        for envelope in envelopes:
            tx_id = str(envelope.get("txId", ""))
            if tx_id in self._seen_tx:
                continue
            self._seen_tx.add(tx_id)
            announcement = tx_mod.decode_announcement(dict(envelope))
            if announcement is None:
                continue
            rejected = self._reject_reason(announcement, envelope)
            if rejected is not None:
                code, reason = rejected
                self.ignored.append(Ignored(tx_id, announcement.party, announcement.round, code, reason))
                log.info("ignoring announcement %s: %s", tx_id, reason)
                continue
            entry = ConfirmedAnnouncement(announcement, tx_id, snapshot)
            self.rounds.setdefault(announcement.round, {})[announcement.party] = entry
            counted.append(entry)
        return counted

    def _reject_reason(
        self, announcement: tx_mod.Announcement, envelope: Mapping[str, Any]
    ) -> tuple[str, str] | None:
        if announcement.fed != self.fed:
            return "OtherFederation", f"federation {announcement.fed!r} is not {self.fed!r}"
        signer = self.members.get(announcement.party)
        if signer is None:
            return "NotMember", f"party {announcement.party!r} is not a member"
        if signer not in tx_mod.tx_signers(dict(envelope)):
            return "NotSigned", f"not signed by {announcement.party}'s payment key"
        if announcement.spec_hash != self.spec_hash:
            return "SpecMismatch", f"spec hash {announcement.spec_hash} differs from ours ({self.spec_hash})"
        if announcement.party in self.rounds.get(announcement.round, {}):
            return "Duplicate", f"{announcement.party} already announced round {announcement.round}"
        return None
