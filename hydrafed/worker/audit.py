"""``hydrafed audit``: re-derive every round of a federation from its ledger, bit for bit.

Anyone holding the ledger record (a node's confirmed history) and read access to the parties'
buckets can check a run without trusting any party. The audit reads the record through the
same ``RoundBook`` the workers use (federation, spec hash, membership, the member's signature,
first announcement per party and round), downloads every counted update through the same
``load_peer_update`` (sha256, safetensors, ``fit.check_fits``), aggregates each round in ledger
order with the spec's aggregator (``aggregation.get_aggregator``) and compares the result with
the ``startSha256`` that every member of the next round announced, and the last round's with
the final model's claimed digests (a report, the worker's last line, the provenance NFT).

Every difference becomes a ``Finding`` naming the round, the party and the cause; the audit is
green only without any. Reading the inputs (a simulate run folder, a worker config, a node) is
``audit_inputs``; the table and the JSON are ``audit_output``.

Public API::

    AuditInput(fed, spec, members, outputs, stores, final_claims={}, head_id=None)
    run_audit(inputs, *, work_dir=None) -> AuditReport
    check_final(final_sha256, claims) -> list[Finding]      # the seam for final-model claims (NFT)
    Finding, RoundAudit, AuditReport (frozen records; AuditReport.to_json())
"""

from __future__ import annotations

import collections
import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from hydrafed import errors, storage
from hydrafed import rounds as rounds_mod
from hydrafed.hydra import messages
from hydrafed.hydra import tx as tx_mod
from hydrafed.rounds import ConfirmedAnnouncement, RoundBook
from hydrafed.spec import FederationSpec
from hydrafed.storage import UpdateStore
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.party import load_peer_update, state_sha256

SCHEMA = "hydrafed.audit/v1"

MAX_FIRST_UPDATE_BYTES = 8 << 30
"""Cap on the one update read before any reference exists (round 1's first member); every
other update is capped at the size of the model, as the workers cap them."""

#: RoundBook codes of txs that look like announcements but did not count: each is a finding
#: (another federation's announcements in the same head are none of this audit's business).
IGNORED_FINDINGS = {
    "NotMember": "an announcement for a party that is not a member",
    "NotSigned": "an announcement not signed by the party it names (forged)",
    "Duplicate": "a second announcement for a round the party had already announced",
    "SpecMismatch": "an announcement made under another spec",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One difference between what the ledger claims and what the audit re-derives."""

    round: int
    party: str
    """The party the finding is about ("" when it names none, e.g. a round nobody reproduced)."""
    code: str
    """CamelCase cause: MissingObject, HashMismatch, BadUpdate, Unreadable, NotMember, NotSigned,
    Duplicate, SpecMismatch, NoStartHash, StartMismatch, StartDisagreement, NotReproduced,
    IncompleteRound, AggregationFailed, OutOfRange, OtherHead, FinalMismatch."""
    message: str
    tx_id: str = ""
    signed_by: tuple[str, ...] = ()
    """For announcements that did not count: the members (or key hashes) that signed the tx."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"round": self.round, "party": self.party, "code": self.code}
        data["message"] = self.message
        if self.tx_id:
            data["txId"] = self.tx_id
        if self.signed_by:
            data["signedBy"] = list(self.signed_by)
        return data


@dataclasses.dataclass(frozen=True)
class AnnouncementAudit:
    """One counted announcement and what became of its object."""

    party: str
    tx_id: str
    snapshot: int
    sha256: str
    start_sha256: str
    samples: int
    object: str
    """"ok", or the code of the finding about the object (MissingObject, HashMismatch...)."""


@dataclasses.dataclass(frozen=True)
class RoundAudit:
    """One round as re-derived: its members, the digests involved and the verdict."""

    round: int
    members: list[str]
    announcements: list[AnnouncementAudit]
    start_sha256: str | None
    """The global weights the round must have started from, as the audit knows them (round 1:
    what its members agree on); None when the previous round could not be re-derived."""
    aggregate_sha256: str | None
    """``state_sha256`` of the audit's own aggregate of the round; None when it could not run."""
    reproduced: bool | None
    """Some member of the next round started from the aggregate (the last round: some final
    claim names it); False when none did; None when nothing claims it (no final claims)."""
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings and self.reproduced is not False and self.aggregate_sha256 is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "members": list(self.members),
            "announcements": [
                {
                    "party": a.party,
                    "txId": a.tx_id,
                    "snapshot": a.snapshot,
                    "sha256": a.sha256,
                    "startSha256": a.start_sha256,
                    "samples": a.samples,
                    "object": a.object,
                }
                for a in self.announcements
            ],
            "startSha256": self.start_sha256,
            "aggregateSha256": self.aggregate_sha256,
            "reproduced": self.reproduced,
            "verdict": "ok" if self.ok else "fail",
            "findings": [f.to_json() for f in self.findings],
        }


@dataclasses.dataclass(frozen=True)
class AuditReport:
    """The whole audit: per-round results, the final model and every finding in ledger order."""

    fed: str
    spec_hash: str
    head_id: str | None
    rounds: list[RoundAudit]
    final_sha256: str | None
    final_claims: dict[str, str]
    findings: list[Finding]
    """Every finding, by round (ledger-level ones first within a round)."""
    seconds: dict[str, float]

    @property
    def ok(self) -> bool:
        return not self.findings and all(r.ok for r in self.rounds)

    @property
    def first_failure(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def to_json(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "fed": self.fed,
            "specHash": self.spec_hash,
            "headId": self.head_id,
            "rounds": [r.to_json() for r in self.rounds],
            "finalSha256": self.final_sha256,
            "finalClaims": {
                label: {"sha256": sha, "matches": sha == self.final_sha256}
                for label, sha in sorted(self.final_claims.items())
            },
            "findings": [f.to_json() for f in self.findings],
            "firstFailure": first.to_json() if first else None,
            "seconds": dict(self.seconds),
        }


@dataclasses.dataclass(frozen=True)
class AuditInput:
    """What the audit reads: who the members are, the ledger record and the buckets.

    Parameters
    ----------
    members
        Party name -> payment key hash (hex) that must have signed its announcements.
    outputs
        The ledger record: a node's server outputs in order (its history); only
        ``SnapshotConfirmed`` (and ``HeadIsOpen``'s head id) are read.
    stores
        Party name -> a store that reads that party's bucket (a read grant is enough).
    final_claims
        Who claims which final model: label (e.g. ``report.json party-01``, ``nft``) -> digest.
    head_id
        The head the record must belong to; None: whatever head it shows.
    """

    fed: str
    spec: FederationSpec
    members: Mapping[str, str]
    outputs: Sequence[messages.ServerOutput]
    stores: Mapping[str, UpdateStore]
    final_claims: Mapping[str, str] = dataclasses.field(default_factory=dict)
    head_id: str | None = None


def check_final(final_sha256: str | None, claims: Mapping[str, str]) -> list[Finding]:
    """A finding for every claim about the final model that the re-derived one does not match.

    The seam for anything that names the final model: report.json's digests, the worker's
    ``final global sha256`` line, the provenance NFT's asset name (``--nft-asset``).
    """
    found = []
    for label, claimed in sorted(claims.items()):
        if final_sha256 is None:
            found.append(
                Finding(
                    0,
                    "",
                    "FinalMismatch",
                    f"{label} names final model {claimed}, but no final model could be re-derived",
                )
            )
        elif claimed.lower() != final_sha256:
            found.append(
                Finding(
                    0,
                    "",
                    "FinalMismatch",
                    f"{label} names final model {claimed}; the ledger's rounds re-derive {final_sha256}",
                )
            )
    return found


def _signer_names(envelope: Mapping[str, Any] | None, members: Mapping[str, str]) -> tuple[str, ...]:
    """Who signed a tx: member names where the key is a member's, else the key hash."""
    if envelope is None:
        return ()
    by_hash = {h: n for n, h in members.items()}
    return tuple(sorted(by_hash.get(h, h) for h in tx_mod.tx_signers(dict(envelope))))


def _read_ledger(inputs: AuditInput, book: RoundBook) -> tuple[str | None, list[Finding]]:
    """Feed the record into the round book; findings for txs that did not count and other heads."""
    head_id = inputs.head_id
    envelopes: dict[str, Mapping[str, Any]] = {}
    found: list[Finding] = []
    for output in inputs.outputs:
        if isinstance(output, messages.HeadIsOpen) and head_id is None:
            head_id = output.head_id
        if not isinstance(output, messages.SnapshotConfirmed):
            continue
        if head_id is not None and output.head_id != head_id:
            found.append(
                Finding(
                    0,
                    "",
                    "OtherHead",
                    f"snapshot {output.number} belongs to head {output.head_id}, not {head_id}: "
                    "the record mixes heads; that snapshot was left out",
                )
            )
            continue
        for envelope in output.confirmed:
            envelopes[str(envelope.get("txId", ""))] = envelope
        book.observe(output)
    for ignored in book.ignored:
        if ignored.code not in IGNORED_FINDINGS:
            continue
        signers = _signer_names(envelopes.get(ignored.tx_id), inputs.members)
        found.append(
            Finding(
                ignored.round,
                ignored.party,
                ignored.code,
                f"{IGNORED_FINDINGS[ignored.code]}: tx {ignored.tx_id} claims {ignored.party!r} round "
                f"{ignored.round} ({ignored.reason}); signed by {', '.join(signers) or 'nobody'}",
                ignored.tx_id,
                signers,
            )
        )
    return head_id, found


def round_members(book: RoundBook, round_no: int) -> list[ConfirmedAnnouncement]:
    """The announcements a round aggregates, in aggregation order: the workers' rule (``RoundQueries``)."""
    return book.round_announcements(round_no)


_OBJECT_CODES: tuple[tuple[type[errors.HydrafedError], str], ...] = (
    (errors.ObjectNotFoundError, "MissingObject"),
    (errors.IntegrityError, "HashMismatch"),
    (errors.AggregationError, "BadUpdate"),
    (errors.HydrafedError, "Unreadable"),
)


def _object_code(exc: errors.HydrafedError) -> str:
    return next(code for kind, code in _OBJECT_CODES if isinstance(exc, kind))


def _first_reference(store: UpdateStore, entry: ConfirmedAnnouncement) -> dict[str, torch.Tensor]:
    """The tensors of the round's first update, verified: the reference the others must fit."""
    ann = entry.announcement
    _, bucket, key = storage.split_uri(ann.uri)
    data = storage.read_verified(store, bucket, key, ann.sha256, max_bytes=MAX_FIRST_UPDATE_BYTES)
    try:
        return dict(safetensors.torch.load(data))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise errors.AggregationError(
            f"{ann.party}'s round {ann.round} update is not valid safetensors: {exc}"
        ) from exc


class _Auditor:
    """The audit's walk through the rounds; holds the previous round's re-derived state."""

    def __init__(self, inputs: AuditInput, work_dir: Path) -> None:
        self.inputs = inputs
        self.work_dir = work_dir
        self.aggregator = get_aggregator(inputs.spec.training.aggregation)
        self.seconds = {"download": 0.0, "verify": 0.0, "aggregate": 0.0}

    def _load(
        self, round_no: int, entries: list[ConfirmedAnnouncement], previous: Mapping[str, torch.Tensor] | None
    ) -> tuple[list[Update], dict[str, str], list[Finding]]:
        """Every update of the round that downloads, verifies and fits; a finding for the others."""
        reference: Mapping[str, torch.Tensor] | None = previous
        updates: list[Update] = []
        outcome: dict[str, str] = {}
        found: list[Finding] = []
        inbox = self.work_dir / f"round-{round_no}"
        for entry in entries:
            ann = entry.announcement
            store = self.inputs.stores.get(ann.party)
            try:
                if store is None:
                    raise errors.AccessDeniedError(
                        f"no read access to {ann.party}'s bucket was given to the audit"
                    )
                if reference is None:
                    reference = _first_reference(store, entry)
                update, download_s, verify_s = load_peer_update(
                    store, entry, inbox / f"{ann.party}.safetensors", reference
                )
                self.seconds["download"] += download_s
                self.seconds["verify"] += verify_s
            except errors.HydrafedError as exc:
                code = _object_code(exc)
                outcome[ann.party] = code
                found.append(
                    Finding(
                        round_no,
                        ann.party,
                        code,
                        f"{ann.party}'s round {round_no} update ({ann.uri}): {exc}",
                        entry.tx_id,
                    )
                )
                continue
            outcome[ann.party] = "ok"
            updates.append(update)
        return updates, outcome, found

    def _starts(
        self, round_no: int, entries: list[ConfirmedAnnouncement]
    ) -> tuple[str | None, list[Finding]]:
        """The start its members agree on (a unique majority) and a finding for any that named none.

        Used where no re-derived aggregate exists to compare with: round 1 (the initial model),
        and a round after one the audit could not re-derive.
        """
        found: list[Finding] = []
        for entry in entries:
            if not entry.announcement.start_sha256:
                found.append(_no_start(round_no, entry))
        named = {
            e.announcement.party: e.announcement.start_sha256 for e in entries if e.announcement.start_sha256
        }
        counts = collections.Counter(named.values()).most_common()
        if not counts:
            return None, found
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            for party in sorted(named):
                found.append(
                    Finding(
                        round_no,
                        party,
                        "StartDisagreement",
                        f"round {round_no}'s members started from different weights ({party}: "
                        f"{named[party]}) and no digest has a majority",
                    )
                )
            return None, found
        for party in sorted(p for p, s in named.items() if s != counts[0][0]):
            found.append(
                Finding(
                    round_no,
                    party,
                    "StartMismatch",
                    f"{party} started round {round_no} from {named[party]}; the other members from "
                    f"{counts[0][0]}",
                )
            )
        return counts[0][0], found

    @staticmethod
    def _against(
        previous: RoundAudit, entries: list[ConfirmedAnnouncement]
    ) -> tuple[bool | None, list[Finding], list[Finding]]:
        """Judge round r (re-derived) by the starts round r+1's members announced.

        Returns whether r reproduces, findings about round r (nobody started from its
        aggregate) and findings about round r+1 (a member that started elsewhere).
        """
        expected = previous.aggregate_sha256
        round_no = previous.round + 1
        about_next = [_no_start(round_no, e) for e in entries if not e.announcement.start_sha256]
        named = [e for e in entries if e.announcement.start_sha256]
        if not named:
            return None, [], about_next
        differ = [e for e in named if e.announcement.start_sha256 != expected]
        if len(differ) == len(named):
            starts = ", ".join(sorted({e.announcement.start_sha256 for e in differ}))
            message = (
                f"round {previous.round}'s aggregate re-derived from the ledger is {expected}, but every "
                f"member of round {round_no} started from something else ({starts})"
            )
            return False, [Finding(previous.round, "", "NotReproduced", message)], about_next
        for entry in differ:
            party = entry.announcement.party
            about_next.append(
                Finding(
                    round_no,
                    party,
                    "StartMismatch",
                    f"{party} started round {round_no} from {entry.announcement.start_sha256}; round "
                    f"{previous.round}'s aggregate re-derived from the ledger is {expected}: {party} "
                    f"aggregated round {previous.round} differently",
                    entry.tx_id,
                )
            )
        return True, [], about_next

    def audit(self) -> AuditReport:
        started = time.perf_counter()
        inputs = self.inputs
        spec_digest = rounds_mod.spec_hash(inputs.spec)
        book = RoundBook(inputs.fed, spec_digest, dict(inputs.members))
        head_id, findings = _read_ledger(inputs, book)
        total = inputs.spec.training.rounds
        for round_no in sorted(r for r in book.rounds if not 1 <= r <= total):
            for entry in book.round_announcements(round_no):
                findings.append(
                    Finding(
                        round_no,
                        entry.announcement.party,
                        "OutOfRange",
                        f"{entry.announcement.party} announced round {round_no}; "
                        f"the spec has rounds 1..{total}",
                        entry.tx_id,
                    )
                )
        audits: list[RoundAudit] = []
        previous: dict[str, torch.Tensor] | None = None
        agg_state: dict[str, torch.Tensor] | None = None
        for round_no in range(1, total + 1):
            found: list[Finding] = []
            entries = round_members(book, round_no)
            if not book.is_complete(round_no):
                missing = sorted(set(inputs.members) - set(book.announced(round_no)))
                found.append(
                    Finding(
                        round_no,
                        missing[0],
                        "IncompleteRound",
                        f"round {round_no} has no counted announcement from {', '.join(missing)}",
                    )
                )
            if audits and audits[-1].aggregate_sha256 is not None:
                reproduced, about_last, about_this = self._against(audits[-1], entries)
                last = audits[-1]
                audits[-1] = dataclasses.replace(
                    last, reproduced=reproduced, findings=[*last.findings, *about_last]
                )
                findings.extend(about_last)
                found.extend(about_this)
                start: str | None = last.aggregate_sha256
            else:
                start, about_this = self._starts(round_no, entries)
                found.extend(about_this)
            updates, outcome, load_found = self._load(round_no, entries, previous)
            found.extend(load_found)
            aggregate_sha: str | None = None
            if entries and not load_found and book.is_complete(round_no):
                t0 = time.perf_counter()
                try:
                    result = self.aggregator.aggregate(updates, current=previous, state=agg_state)
                except errors.AggregationError as exc:
                    found.append(Finding(round_no, "", "AggregationFailed", f"round {round_no}: {exc}"))
                else:
                    previous, agg_state = result.tensors, result.state
                    aggregate_sha = state_sha256(result.tensors)
                self.seconds["aggregate"] += time.perf_counter() - t0
            if aggregate_sha is None:  # the next round cannot be compared with this one
                previous, agg_state = None, None
            audits.append(
                RoundAudit(
                    round=round_no,
                    members=[e.announcement.party for e in entries],
                    announcements=[_announcement_audit(e, outcome) for e in entries],
                    start_sha256=start,
                    aggregate_sha256=aggregate_sha,
                    reproduced=None,
                    findings=found,
                )
            )
            findings.extend(found)
        final_sha = audits[-1].aggregate_sha256 if audits else None
        # Without a re-derived final model the cause is already a finding: claims are not compared.
        claims = inputs.final_claims if final_sha is not None else {}
        final_found = [dataclasses.replace(f, round=total) for f in check_final(final_sha, claims)]
        if audits and inputs.final_claims and final_sha is not None:
            last = audits[-1]
            audits[-1] = dataclasses.replace(
                last, reproduced=len(final_found) < len(claims), findings=[*last.findings, *final_found]
            )
        findings.extend(final_found)
        seconds = {**self.seconds, "total": time.perf_counter() - started}
        return AuditReport(
            inputs.fed,
            spec_digest,
            head_id,
            audits,
            final_sha,
            dict(inputs.final_claims),
            _ordered(findings),
            seconds,
        )


def _no_start(round_no: int, entry: ConfirmedAnnouncement) -> Finding:
    party = entry.announcement.party
    return Finding(
        round_no,
        party,
        "NoStartHash",
        f"{party}'s round {round_no} announcement names no startSha256 (made by an older hydrafed): "
        "its start cannot be checked",
        entry.tx_id,
    )


def _announcement_audit(entry: ConfirmedAnnouncement, outcome: Mapping[str, str]) -> AnnouncementAudit:
    ann = entry.announcement
    return AnnouncementAudit(
        ann.party,
        entry.tx_id,
        entry.snapshot,
        ann.sha256,
        ann.start_sha256,
        ann.samples,
        outcome.get(ann.party, "unread"),
    )


_CODE_ORDER = {
    code: i
    for i, code in enumerate(
        [
            "OtherHead",
            "NotMember",
            "NotSigned",
            "Duplicate",
            "SpecMismatch",
            "OutOfRange",
            "IncompleteRound",
            "MissingObject",
            "HashMismatch",
            "BadUpdate",
            "Unreadable",
            "AggregationFailed",
            "NoStartHash",
            "StartDisagreement",
            "StartMismatch",
            "NotReproduced",
            "FinalMismatch",
        ]
    )
}


def _ordered(findings: list[Finding]) -> list[Finding]:
    """By round, then by cause (the ledger's before the objects', before the aggregates')."""
    return sorted(findings, key=lambda f: (f.round, _CODE_ORDER.get(f.code, 99), f.party))


def run_audit(inputs: AuditInput, *, work_dir: Path | None = None) -> AuditReport:
    """Re-derive every round of ``inputs``; ``work_dir`` holds updates too big for memory."""
    if not inputs.members:
        raise errors.ConfigError("the audit needs the federation's members: none were given")
    if work_dir is not None:
        return _Auditor(inputs, Path(work_dir)).audit()
    with tempfile.TemporaryDirectory(prefix="hydrafed-audit-") as tmp:
        return _Auditor(inputs, Path(tmp)).audit()
