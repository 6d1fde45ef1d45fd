"""``hydrafed audit``: re-derive every round of a federation from its ledger, bit for bit.

Anyone holding the ledger record (a node's confirmed history) and read access to the parties'
buckets can check a run without trusting any party. The audit applies the workers' own rules,
not copies of them: the record goes through ``RoundBook`` (federation, spec hash, membership,
the member's signature) and its authentic items through ``RoundRules.for_spec`` (first
announcement per party and round, declared sample caps, quorum cutoffs), as a ``HydraLedger``
feeds a ``PartyWorker``; every counted update is screened by ``party.screen_update`` (sha256,
safetensors, ``fit.check_fits``: a failing one is excluded and the round goes on) and each round
is aggregated by ``party.aggregate_round`` with the spec's aggregator, from the round's start.
The result is compared with the ``startSha256`` every member of the next round announced, and
the last round's with the final model's claimed digests (a report, the worker's last line, the
provenance NFT).

Every difference becomes a ``Finding`` naming the round, the party and the cause; the audit is
green only without any. Reading the inputs (a simulate run folder, a worker config, exported
manifests, a node) is ``audit_inputs``; the table and the JSON are ``audit_output``.

Public API::

    AuditInput(fed, spec, members, outputs, stores, final_claims={}, head_id=None,
               max_samples={}, initial_state=None)
    run_audit(inputs, *, work_dir=None) -> AuditReport
    use_threads() -> int                                    # torch threads as the worker sets them
    check_final(final_sha256, claims) -> list[Finding]      # the seam for final-model claims (NFT)
    Finding, RoundAudit, AuditReport (frozen records; AuditReport.to_json())
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
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
from hydrafed.rounds import ConfirmedAnnouncement, RoundBook, RoundRules
from hydrafed.spec import FederationSpec
from hydrafed.storage import UpdateStore
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.party import aggregate_round, screen_update, state_sha256

log = logging.getLogger(__name__)

SCHEMA = "hydrafed.audit/v1"

MAX_FIRST_UPDATE_BYTES = 1 << 30
"""Cap on the one update read before any reference exists (round 1's first member); every
other update is capped at the size of the model, as the workers cap them."""

AUTHENTICITY = {
    "NotMember": "a tx for a party that is not a member",
    "NotSigned": "a tx not signed by the party it names (forged)",
    "SpecMismatch": "a tx made under another spec",
}
"""RoundBook codes of txs whose sender is not who they claim: each is a finding. So is every
``Ignored`` the round rules mark as an offence (``rounds.OFFENCES``); a straggler's late
announcement (Late), a second honest cutoff and another federation's txs are not."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One difference between what the ledger claims and what the audit re-derives."""

    round: int
    party: str
    """The party the finding is about ("" when it names none, e.g. a round nobody reproduced)."""
    code: str
    """CamelCase cause: the ledger's (NotMember, NotSigned, SpecMismatch, OtherHead and the round
    rules' offences: Duplicate, NoSuchRound, TooManySamples, EarlyCutoff, NoQuorum), the objects'
    (HashMismatch and BadUpdate: excluded, MissingObject, Unreadable), the rounds'
    (IncompleteRound, AggregationFailed, NoStartHash, StartMismatch, StartDisagreement,
    InitialMismatch, NotReproduced) and the final model's (FinalMismatch)."""
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
    members: list[str] = dataclasses.field(default_factory=list)
    """The federation's members, sorted."""

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
            "members": list(self.members),
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
    max_samples
        Member -> its declared sample cap (Party ``maxSamples``), as the workers were given it.
    initial_state
        The initial model as rebuilt from the spec (``--rebuild-initial``): round 1's starts are
        checked against it and its updates screened against it, as the workers screened them.
        None: round 1's members must only agree.
    """

    fed: str
    spec: FederationSpec
    members: Mapping[str, str]
    outputs: Sequence[messages.ServerOutput]
    stores: Mapping[str, UpdateStore]
    final_claims: Mapping[str, str] = dataclasses.field(default_factory=dict)
    head_id: str | None = None
    max_samples: Mapping[str, int | None] = dataclasses.field(default_factory=dict)
    initial_state: Mapping[str, torch.Tensor] | None = None


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


def _read_ledger(inputs: AuditInput) -> tuple[RoundRules, str | None, list[Finding]]:
    """The round rules after the whole record, as a worker would hold them; findings on the way.

    The record goes through ``RoundBook`` for authenticity and its authentic items, in ledger
    order, through ``RoundRules.for_spec``: the pipeline of ``HydraLedger`` and ``PartyWorker``.
    """
    head_id = inputs.head_id
    envelopes: dict[str, Mapping[str, Any]] = {}
    found: list[Finding] = []
    book = RoundBook(inputs.fed, rounds_mod.spec_hash(inputs.spec), dict(inputs.members))
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
    rules = RoundRules.for_spec(list(inputs.members), inputs.spec, dict(inputs.max_samples))
    for item in book.stream:
        rules.apply(item)
    authentic = [i for i in book.ignored if i.code in AUTHENTICITY]
    for ignored in [*authentic, *(i for i in rules.ignored if i.offence)]:
        signers = _signer_names(envelopes.get(ignored.tx_id), inputs.members)
        what = AUTHENTICITY.get(ignored.code, "an offence against the round rules")
        found.append(
            Finding(
                ignored.round,
                ignored.party,
                ignored.code,
                f"{what}: tx {ignored.tx_id} claims {ignored.party!r} round {ignored.round} "
                f"({ignored.reason}); signed by {', '.join(signers) or 'nobody'}",
                ignored.tx_id,
                signers,
            )
        )
    return rules, head_id, found


def _first_reference(
    stores: Mapping[str, UpdateStore], entries: list[ConfirmedAnnouncement]
) -> dict[str, torch.Tensor] | None:
    """Round 1 without a start: the first update (in aggregation order) that reads and loads.

    The workers screen round 1 against their initial weights, which the audit does not rebuild;
    the others must fit this one. A first member whose tensors do not fit the model makes the
    honest ones look unfit: the audit then fails (their starts differ), it never passes.
    """
    for entry in entries:
        ann = entry.announcement
        store = stores.get(ann.party)
        if store is None:
            continue
        _, bucket, key = storage.split_uri(ann.uri)
        try:
            data = storage.read_verified(store, bucket, key, ann.sha256, max_bytes=MAX_FIRST_UPDATE_BYTES)
            return dict(safetensors.torch.load(data))
        except Exception as exc:  # unreadable, or not safetensors: the screening names it
            log.debug("round 1: %s's update is no reference: %s", ann.party, exc)
    return None


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


def _agreed_start(round_no: int, entries: list[ConfirmedAnnouncement]) -> tuple[str | None, list[Finding]]:
    """The start the round's members agree on (a unique majority), and who started elsewhere.

    Used where no re-derived aggregate exists to compare with: round 1 (the initial model) and
    a round after one the audit could not re-derive.
    """
    found = [_no_start(round_no, e) for e in entries if not e.announcement.start_sha256]
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
                    f"round {round_no}'s members started from different weights ({party}: {named[party]}) "
                    "and no digest has a majority",
                )
            )
        return None, found
    agreed = counts[0][0]
    for party in sorted(p for p, digest in named.items() if digest != agreed):
        found.append(
            Finding(
                round_no,
                party,
                "StartMismatch",
                f"{party} started round {round_no} from {named[party]}; the other members from {agreed}",
            )
        )
    return agreed, found


def _judge(
    expected: str, round_no: int, entries: list[ConfirmedAnnouncement], *, initial: bool = False
) -> tuple[bool | None, list[Finding], list[Finding]]:
    """Judge the weights round ``round_no`` must start from by what its members announced.

    ``expected`` is the re-derived aggregate of the round before, or (``initial``) the initial
    model rebuilt from the spec. Returns whether some member started from it, findings about
    its source (nobody did) and findings about this round (each member that started elsewhere).
    """
    source = "the initial model rebuilt from the spec" if initial else f"round {round_no - 1}'s aggregate"
    about_this = [_no_start(round_no, e) for e in entries if not e.announcement.start_sha256]
    named = [e for e in entries if e.announcement.start_sha256]
    if not named:
        return None, [], about_this
    differ = [e for e in named if e.announcement.start_sha256 != expected]
    if len(differ) == len(named):
        starts = ", ".join(sorted({e.announcement.start_sha256 for e in differ}))
        message = (
            f"{source} re-derived from the ledger is {expected}, but every member of round "
            f"{round_no} started from something else ({starts})"
        )
        if initial:
            return False, [Finding(round_no, "", "InitialMismatch", message)], about_this
        return False, [Finding(round_no - 1, "", "NotReproduced", message)], about_this
    for entry in differ:
        party = entry.announcement.party
        blame = "" if initial else f": {party} aggregated round {round_no - 1} differently"
        about_this.append(
            Finding(
                round_no,
                party,
                "StartMismatch",
                f"{party} started round {round_no} from {entry.announcement.start_sha256}; {source} "
                f"re-derived from the ledger is {expected}{blame}",
                entry.tx_id,
            )
        )
    return True, [], about_this


class _Auditor:
    """The audit's walk through the rounds; holds the previous round's re-derived state."""

    def __init__(self, inputs: AuditInput, work_dir: Path) -> None:
        self.inputs = inputs
        self.work_dir = work_dir
        self.aggregator = get_aggregator(inputs.spec.training.aggregation, inputs.spec.training.robust)
        self.seconds = {"download": 0.0, "verify": 0.0, "aggregate": 0.0}

    def _screen(
        self, round_no: int, entries: list[ConfirmedAnnouncement], start: Mapping[str, torch.Tensor] | None
    ) -> tuple[list[Update] | None, dict[str, str], list[Finding]]:
        """The round's usable updates: ``party.screen_update`` of each against the round's start.

        An update that fails the sha256 or the gate is excluded, as every party excluded it: a
        finding, and the round goes on. One that cannot be read at all (missing, no access)
        leaves the round underivable: None instead of the updates.
        """
        reference = start if start is not None else _first_reference(self.inputs.stores, entries)
        updates: list[Update] = []
        outcome: dict[str, str] = {}
        found: list[Finding] = []
        derivable = True
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
                    raise errors.UnavailableError("no update of the round could be read to check it against")
                verdict = screen_update(store, entry, inbox / f"{ann.party}.safetensors", reference)
            except errors.StorageError as exc:
                code = "MissingObject" if isinstance(exc, errors.ObjectNotFoundError) else "Unreadable"
                outcome[ann.party] = code
                message = f"{ann.party}'s round {round_no} update ({ann.uri}): {exc}"
                found.append(Finding(round_no, ann.party, code, message, entry.tx_id))
                derivable = False
                continue
            self.seconds["download"] += verdict.download_seconds
            self.seconds["verify"] += verdict.verify_seconds
            outcome[ann.party] = verdict.code or "ok"
            if verdict.update is None:
                message = (
                    f"{ann.party}'s round {round_no} update ({ann.uri}) is excluded, as every party "
                    f"must have excluded it: {verdict.reason}"
                )
                found.append(Finding(round_no, ann.party, verdict.code, message, entry.tx_id))
            else:
                updates.append(verdict.update)
        return (updates if derivable else None), outcome, found

    def audit(self) -> AuditReport:
        started = time.perf_counter()
        inputs = self.inputs
        rules, head_id, findings = _read_ledger(inputs)
        total = inputs.spec.training.rounds
        audits: list[RoundAudit] = []
        previous = dict(inputs.initial_state) if inputs.initial_state is not None else None
        agg_state: dict[str, torch.Tensor] | None = None
        for round_no in range(1, total + 1):
            found: list[Finding] = []
            entries = rules.round_announcements(round_no)
            complete = rules.is_complete(round_no)
            if not complete:
                missing = sorted(set(inputs.members) - set(rules.announced(round_no)))
                message = f"round {round_no} is not complete on the ledger: no counted announcement from "
                found.append(Finding(round_no, missing[0], "IncompleteRound", message + ", ".join(missing)))
            start: str | None
            if round_no == 1 and previous is not None:  # the initial model was given
                start = state_sha256(previous)
                _, about_start, about_this = _judge(start, 1, entries, initial=True)
                found.extend([*about_start, *about_this])
            elif audits and (last_sha := audits[-1].aggregate_sha256) is not None:
                last = audits[-1]
                reproduced, about_last, about_this = _judge(last_sha, round_no, entries)
                audits[-1] = dataclasses.replace(
                    last, reproduced=reproduced, findings=[*last.findings, *about_last]
                )
                findings.extend(about_last)
                found.extend(about_this)
                start = last_sha
            else:
                start, about_this = _agreed_start(round_no, entries)
                found.extend(about_this)
            updates, outcome, screened = self._screen(round_no, entries, previous)
            found.extend(screened)
            aggregate_sha: str | None = None
            if complete and updates is not None and (updates or previous is not None):
                t0 = time.perf_counter()
                try:
                    result = aggregate_round(self.aggregator, updates, previous or {}, agg_state)
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
        if audits and claims:
            last = audits[-1]
            audits[-1] = dataclasses.replace(
                last, reproduced=len(final_found) < len(claims), findings=[*last.findings, *final_found]
            )
        findings.extend(final_found)
        seconds = {**self.seconds, "total": time.perf_counter() - started}
        return AuditReport(
            inputs.fed,
            rounds_mod.spec_hash(inputs.spec),
            head_id,
            audits,
            final_sha,
            dict(inputs.final_claims),
            _ordered(findings),
            seconds,
            sorted(inputs.members),
        )


_CODE_ORDER = {
    code: i
    for i, code in enumerate(
        [
            "OtherHead",
            *AUTHENTICITY,
            *sorted(rounds_mod.OFFENCES - {"HashMismatch", "BadUpdate"}),
            "IncompleteRound",
            "MissingObject",
            "Unreadable",
            "HashMismatch",
            "BadUpdate",
            "AggregationFailed",
            "NoStartHash",
            "StartDisagreement",
            "StartMismatch",
            "InitialMismatch",
            "NotReproduced",
            "FinalMismatch",
        ]
    )
}


def _ordered(findings: list[Finding]) -> list[Finding]:
    """By round, then by cause (the ledger's before the objects', before the aggregates')."""
    return sorted(findings, key=lambda f: (f.round, _CODE_ORDER.get(f.code, len(_CODE_ORDER)), f.party))


def use_threads() -> int:
    """Set torch's threads as ``hydrafed worker`` does (``HYDRAFED_TORCH_THREADS``, default 1).

    The audit's tensors are as small as a party's: on a busy machine two threads' barriers cost
    more than they give (4.3 s against 1.0 s for a 10-party, 20-round run measured here).
    """
    threads = max(1, int(os.environ.get("HYDRAFED_TORCH_THREADS", "1")))
    torch.set_num_threads(threads)
    return threads


def run_audit(inputs: AuditInput, *, work_dir: Path | None = None) -> AuditReport:
    """Re-derive every round of ``inputs``; ``work_dir`` holds updates too big for memory."""
    if not inputs.members:
        raise errors.ConfigError("the audit needs the federation's members: none were given")
    if work_dir is not None:
        return _Auditor(inputs, Path(work_dir)).audit()
    with tempfile.TemporaryDirectory(prefix="hydrafed-audit-") as tmp:
        return _Auditor(inputs, Path(tmp)).audit()
