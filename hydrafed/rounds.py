"""Round membership read from the confirmed ledger: the one rule every party applies.

Every party, the operator's status daemon and ``hydrafed audit`` feed the same confirmed txs, in
ledger order, into the same rules and so decide the same members for every round. Parties'
clocks never decide anything: a quorum round ends at the first confirmed cutoff tx.

Two layers:

- ``RoundRules``: given authentic items (announcements and cutoffs whose sender is known) in
  ledger order, decides what counts. A member's first announcement of a round counts unless it
  claims more samples than the member declared (``TooManySamples``) or arrives after the round's
  cutoff (``Late``: a straggler, not an offence); a second one is ``Duplicate``; a round outside
  ``1..rounds`` is ``NoSuchRound``. A cutoff counts when the policy has a quorum, the round is
  still open and has at least ``quorum`` counted announcements; the first such cutoff fixes the
  round's members: the announcements counted before it. Without a quorum a round is complete
  once every member's first announcement is in.
- ``RoundBook``: decodes confirmed tx envelopes and checks authenticity first (federation,
  membership, the member's payment-key signature, spec hash), then applies ``RoundRules``.

What the bytes of an update say (sha256, ``fit.check_fits``) is decided by the worker after
download (``hydrafed.worker.party.screen_update``): an object matching the on-ledger sha256 is the
same bytes for every reader, so that verdict is the same everywhere too.

Public API::

    spec_hash(spec) -> str
    RoundRules(members, *, max_samples=None, total_rounds=None, quorum=None).apply(item) -> Ignored | None
    RoundRules.for_spec(members, spec, max_samples=None)
    RoundBook(fed, spec_hash, members, *, max_samples=None, total_rounds=None, quorum=None)
    ConfirmedAnnouncement, ConfirmedCutoff, Ignored, OFFENCES
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hydrafed.hydra import messages
from hydrafed.hydra import tx as tx_mod
from hydrafed.spec import MAX_SAMPLES, FederationSpec

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
class ConfirmedCutoff:
    """A round cutoff together with where the ledger confirmed it."""

    cutoff: tx_mod.Cutoff
    tx_id: str
    snapshot: int


Confirmed = ConfirmedAnnouncement | ConfirmedCutoff
"""What a ledger hands the round rules: authentic announcements and cutoffs, in ledger order."""

OFFENCES = frozenset(
    {"Duplicate", "NoSuchRound", "TooManySamples", "EarlyCutoff", "NoQuorum", "HashMismatch", "BadUpdate"}
)
"""Codes that flag the sender as misbehaving. Late (a straggler), CutoffNotNeeded (a second
honest cutoff) and the authenticity codes (OtherFederation, NotMember, NotSigned, SpecMismatch:
the claimed sender may not be the real one) are not offences."""


@dataclass(frozen=True)
class Ignored:
    """A confirmed tx that looked like an announcement or cutoff but does not count, and why."""

    tx_id: str
    party: str
    """The party the metadata claims (only a claim unless the code is an offence)."""
    round: int
    code: str
    """CamelCase cause for machines: OtherFederation, SpecMismatch, NotMember, NotSigned,
    Duplicate, NoSuchRound, TooManySamples, Late, EarlyCutoff, NoQuorum, CutoffNotNeeded."""
    reason: str
    """The cause in words."""

    @property
    def offence(self) -> bool:
        """The sender misbehaved (``OFFENCES``), as opposed to a straggler or an unknown sender."""
        return self.code in OFFENCES


class RoundRules:
    """Which members count in which round, decided from authentic items in ledger order.

    Parameters
    ----------
    members
        The federation's member names.
    max_samples
        Member -> the most samples its announcements may claim (unset or None: ``MAX_SAMPLES``).
    total_rounds
        Rounds of the federation; announcements outside ``1..total_rounds`` do not count.
    quorum
        ``roundPolicy.quorum``; None: every round waits for every member and cutoffs do not count.
    """

    def __init__(
        self,
        members: Collection[str],
        *,
        max_samples: Mapping[str, int | None] | None = None,
        total_rounds: int | None = None,
        quorum: int | None = None,
    ) -> None:
        self.members: Collection[str] = members
        caps = max_samples or {}
        self.max_samples = {m: min(caps.get(m) or MAX_SAMPLES, MAX_SAMPLES) for m in members}
        self.total_rounds = total_rounds
        self.quorum = quorum
        self.rounds: dict[int, dict[str, ConfirmedAnnouncement]] = {}
        """Round -> member -> its counted announcement."""
        self.cutoffs: dict[int, ConfirmedCutoff] = {}
        """Round -> the cutoff that fixed its members."""
        self.ignored: list[Ignored] = []
        """Confirmed items that do not count, in ledger order."""
        self._first: dict[int, dict[str, str]] = {}
        """Round -> member -> what became of its first announcement (Counted or an Ignored code)."""

    @classmethod
    def for_spec(
        cls,
        members: Collection[str],
        spec: FederationSpec,
        max_samples: Mapping[str, int | None] | None = None,
    ) -> RoundRules:
        """The rules of a federation spec: its rounds and quorum."""
        return cls(
            members,
            max_samples=max_samples,
            total_rounds=spec.training.rounds,
            quorum=spec.round_policy.quorum,
        )

    # -- deciding -------------------------------------------------------------------------
    def apply(self, item: Confirmed) -> Ignored | None:
        """Take in the next authentic item; None if it counted, else why not (also in ``ignored``)."""
        verdict = self._cutoff(item) if isinstance(item, ConfirmedCutoff) else self._announcement(item)
        if verdict is not None:
            self.ignored.append(verdict)
            log.log(
                logging.WARNING if verdict.offence else logging.INFO,
                "ignoring %s's tx %s for round %d (%s): %s",
                verdict.party,
                verdict.tx_id,
                verdict.round,
                verdict.code,
                verdict.reason,
            )
        return verdict

    def _announcement(self, entry: ConfirmedAnnouncement) -> Ignored | None:
        ann = entry.announcement
        party, round_no = ann.party, ann.round

        def ignored(code: str, reason: str) -> Ignored:
            return Ignored(entry.tx_id, party, round_no, code, reason)

        if party not in self.members:
            return ignored("NotMember", f"party {party!r} is not a member")
        first = self._first.setdefault(round_no, {})
        if party in first:
            return ignored("Duplicate", f"{party} already announced round {round_no}")
        if round_no < 1 or (self.total_rounds is not None and round_no > self.total_rounds):
            return ignored("NoSuchRound", f"round {round_no} is not one of 1..{self.total_rounds}")
        if self.is_complete(round_no):
            first[party] = "Late"
            return ignored("Late", f"round {round_no} was cut off before {party}'s announcement")
        if ann.samples > self.max_samples[party]:
            first[party] = "TooManySamples"
            return ignored(
                "TooManySamples",
                f"{party} claims {ann.samples} samples, more than its declared maximum "
                f"of {self.max_samples[party]} (Party spec.maxSamples)",
            )
        first[party] = "Counted"
        self.rounds.setdefault(round_no, {})[party] = entry
        return None

    def _cutoff(self, entry: ConfirmedCutoff) -> Ignored | None:
        cut = entry.cutoff
        party, round_no = cut.party, cut.round

        def ignored(code: str, reason: str) -> Ignored:
            return Ignored(entry.tx_id, party, round_no, code, reason)

        if party not in self.members:
            return ignored("NotMember", f"party {party!r} is not a member")
        if self.quorum is None:
            return ignored("NoQuorum", "roundPolicy.quorum is unset: rounds are not cut off")
        if round_no < 1 or (self.total_rounds is not None and round_no > self.total_rounds):
            return ignored("NoSuchRound", f"round {round_no} is not one of 1..{self.total_rounds}")
        if self.is_complete(round_no):
            return ignored("CutoffNotNeeded", f"round {round_no} is already complete")
        counted = len(self.rounds.get(round_no, {}))
        if counted < self.quorum:
            return ignored(
                "EarlyCutoff",
                f"round {round_no} has {counted} counted announcements, quorum is {self.quorum}",
            )
        self.cutoffs[round_no] = entry
        return None

    # -- asking ---------------------------------------------------------------------------
    def announced(self, round_no: int) -> list[str]:
        """Members with a counted announcement for the round, sorted."""
        return sorted(self.rounds.get(round_no, {}))

    def is_complete(self, round_no: int) -> bool:
        """The round's members are fixed: it was cut off, or every member's first announcement is in."""
        if round_no in self.cutoffs:
            return True
        return len(self._first.get(round_no, {})) == len(self.members)

    def outcome(self, round_no: int, party: str) -> str | None:
        """What became of the party's first announcement of the round: Counted, an Ignored code, or None."""
        return self._first.get(round_no, {}).get(party)

    def round_announcements(self, round_no: int) -> list[ConfirmedAnnouncement]:
        """The round's counted announcements, sorted by party: the aggregation order."""
        entries = self.rounds.get(round_no, {})
        return [entries[name] for name in sorted(entries)]

    def offences(self) -> dict[str, list[Ignored]]:
        """Member -> its offences on the ledger so far, in ledger order."""
        found: dict[str, list[Ignored]] = {}
        for item in self.ignored:
            if item.offence and item.party in self.members:
                found.setdefault(item.party, []).append(item)
        return found


class RoundBook(RoundRules):
    """Which members have announced which round, as confirmed by the head.

    Parameters
    ----------
    fed, spec_hash
        Announcements for another federation or another spec are ignored.
    members
        Party name -> payment key hash (hex) that must have signed its announcements and cutoffs.
    max_samples, total_rounds, quorum
        As for ``RoundRules``.
    """

    def __init__(
        self,
        fed: str,
        spec_hash: str,
        members: Mapping[str, str],
        *,
        max_samples: Mapping[str, int | None] | None = None,
        total_rounds: int | None = None,
        quorum: int | None = None,
    ) -> None:
        super().__init__(members, max_samples=max_samples, total_rounds=total_rounds, quorum=quorum)
        self.fed = fed
        self.spec_hash = spec_hash
        self.keys: Mapping[str, str] = members
        self.stream: list[Confirmed] = []
        """Every authentic item, in ledger order (what a party's own ``RoundRules`` is fed)."""
        self._seen_tx: set[str] = set()

    def fresh(self) -> RoundBook:
        """An empty book with the same federation, members and rules (for a new head)."""
        return RoundBook(
            self.fed,
            self.spec_hash,
            self.keys,
            max_samples=self.max_samples,
            total_rounds=self.total_rounds,
            quorum=self.quorum,
        )

    def observe(self, output: messages.ServerOutput) -> list[ConfirmedAnnouncement]:
        """Record the items of a SnapshotConfirmed; returns the newly counted announcements."""
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
            decoded = tx_mod.decode_confirmed(envelope)
            if decoded is None:
                continue
            claim = decoded.claim
            rejected = self._reject_reason(claim.fed, claim.party, claim.spec_hash, decoded.signers)
            if rejected is not None:
                code, reason = rejected
                self.ignored.append(Ignored(tx_id, claim.party, claim.round, code, reason))
                log.info("ignoring tx %s: %s", tx_id, reason)
                continue
            item: Confirmed = (
                ConfirmedCutoff(claim, tx_id, snapshot)
                if isinstance(claim, tx_mod.Cutoff)
                else ConfirmedAnnouncement(claim, tx_id, snapshot)
            )
            self.stream.append(item)
            if self.apply(item) is None and isinstance(item, ConfirmedAnnouncement):
                counted.append(item)
        return counted

    def _reject_reason(
        self, fed: str, party: str, claimed_spec: str, signers: frozenset[str]
    ) -> tuple[str, str] | None:
        if fed != self.fed:
            return "OtherFederation", f"federation {fed!r} is not {self.fed!r}"
        signer = self.keys.get(party)
        if signer is None:
            return "NotMember", f"party {party!r} is not a member"
        if signer not in signers:
            return "NotSigned", f"not signed by {party}'s payment key"
        if claimed_spec != self.spec_hash:
            return "SpecMismatch", f"spec hash {claimed_spec} differs from ours ({self.spec_hash})"
        return None
