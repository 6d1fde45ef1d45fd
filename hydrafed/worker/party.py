"""One party's round loop: train, upload, announce, wait for the ledger, download, aggregate.

The same code runs in a Kubernetes worker Job (``hydrafed worker``), in ``hydrafed simulate``
(one process per party) and in process for tests and benchmarks. It is given everything it talks
to: training through a ``LocalTask``, the head through a ``Ledger`` (``worker.ledger``: the party's
hydra-node in production, an in-memory head in process), its own bucket and the peers' read-only
stores. The round's members are what the confirmed ledger says (``rounds.RoundRules``: the same rule on
every party), sorted by party; an update whose bytes fail the sha256 or the ``fit.check_fits``
gate is excluded by every party alike (``screen_update``) and the round goes on with the rest, so
every party aggregates the same updates and ends each round with bit-identical weights.

Public API::

    Member(name, address, key_hash, bucket, grant)
    PartyConfig(fed, name, members, spec, work_dir)                       # picklable
    PartyWorker(config, task, ledger, store, peer_stores, *, progress=None).run() -> PartyResult
    load_peer_update(store, entry, dest, reference) -> Update            # verify + safetensors load
    screen_update(store, entry, dest, reference) -> Screened             # the same, as a verdict
    aggregate_round(aggregator, updates, start, state) -> AggregationResult  # none usable: start stays
    state_sha256(tensors) -> str                                          # digest of a global state
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from hydrafed import errors
from hydrafed import rounds as rounds_mod
from hydrafed.hydra import tx as tx_mod
from hydrafed.rounds import Confirmed, ConfirmedAnnouncement, RoundRules
from hydrafed.spec import EvaluationScope
from hydrafed.storage import UpdateStore, fetch_verified, read_verified, split_uri
from hydrafed.worker import aggregation, phases
from hydrafed.worker.aggregation import AggregationResult, Aggregator, Update, get_aggregator
from hydrafed.worker.fit import all_finite, check_fits
from hydrafed.worker.ledger import Ledger
from hydrafed.worker.phases import State
from hydrafed.worker.records import Member as Member
from hydrafed.worker.records import PartyConfig as PartyConfig
from hydrafed.worker.records import PartyResult as PartyResult
from hydrafed.worker.records import Progress as Progress
from hydrafed.worker.records import RoundReport as RoundReport
from hydrafed.worker.safetensors_header import check_header, header_limit
from hydrafed.worker.task import LocalTask

log = logging.getLogger(__name__)

PHASES = phases.TIMED
"""The timed steps of a round (``phases.TIMED``)."""


def state_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Digest of a state's names, dtypes, shapes and raw bytes: equal digests, bit-identical weights.

    Hashes the tensors' memory in place (no serialisation): every party digests every round.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


IN_MEMORY_BYTES = 256 << 20
"""Updates up to this size are downloaded into memory; larger ones stream through a file."""


def load_peer_update(
    store: UpdateStore, entry: ConfirmedAnnouncement, dest: Path, reference: Mapping[str, torch.Tensor]
) -> tuple[Update, float, float]:
    """Download an announced object, verify its sha256, load it as safetensors, check its tensors.

    Returns the update and the seconds spent downloading and verifying. Raises IntegrityError on
    a hash mismatch or an object larger than the model (nothing is loaded) and AggregationError
    when the tensors do not pass ``fit.check_fits`` against ``reference`` (the local state).
    ``dest`` is used only for updates over IN_MEMORY_BYTES.
    """
    ann = entry.announcement
    _, bucket, key = split_uri(ann.uri)
    # The tensors' bytes plus room for the safetensors header (names, dtypes, shapes, offsets).
    max_bytes = (
        sum(t.numel() * t.element_size() for t in reference.values()) + 8 + header_limit(len(reference))
    )
    started = time.perf_counter()
    data: bytes | None = None
    if max_bytes <= IN_MEMORY_BYTES:
        data = read_verified(store, bucket, key, ann.sha256, max_bytes=max_bytes)
    else:
        fetch_verified(store, bucket, key, dest, ann.sha256)
    downloaded = time.perf_counter()
    whose = f"{ann.party}'s round {ann.round} update"
    if data is not None:  # header length, tensor count and offsets bounded before safetensors parses
        check_header(data[: 8 + header_limit(len(reference))], len(data), len(reference), whose)
    else:
        with dest.open("rb") as fh:
            check_header(
                fh.read(8 + header_limit(len(reference))), dest.stat().st_size, len(reference), whose
            )
    try:
        tensors = safetensors.torch.load(data) if data is not None else safetensors.torch.load_file(str(dest))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise errors.AggregationError(
            f"{ann.party}'s round {ann.round} update is not valid safetensors: {exc}"
        ) from exc
    check_fits(tensors, reference, whose=f"{ann.party}'s round {ann.round} update")
    verified = time.perf_counter()
    return Update(ann.party, ann.samples, tensors), downloaded - started, verified - downloaded


@dataclasses.dataclass(frozen=True)
class Screened:
    """The verdict on one counted announcement's bytes: its update, or why it is excluded."""

    party: str
    update: Update | None
    """None when excluded, or once folded into the round's running sum (``RoundFold``)."""
    code: str = ""
    """"" when accepted; HashMismatch (bytes differ from the announced sha256, or too large) or
    BadUpdate (not safetensors, or fails ``fit.check_fits``: names, shapes, dtypes, NaN/inf)."""
    reason: str = ""
    download_seconds: float = 0.0
    verify_seconds: float = 0.0


def screen_update(
    store: UpdateStore, entry: ConfirmedAnnouncement, dest: Path, reference: Mapping[str, torch.Tensor]
) -> Screened:
    """``load_peer_update`` as a verdict: the same on every party for the same announced object.

    An object that matches the on-ledger sha256 is the same bytes for every reader, and the gate
    is a pure function of those bytes and the model's shapes, so every party excludes the same
    updates. A missing or unreachable object is not a verdict: its StorageError propagates.
    """
    party = entry.announcement.party
    started = time.perf_counter()
    try:
        update, download_s, verify_s = load_peer_update(store, entry, dest, reference)
    except errors.IntegrityError as exc:
        return Screened(party, None, "HashMismatch", str(exc), time.perf_counter() - started)
    except errors.AggregationError as exc:
        return Screened(party, None, "BadUpdate", str(exc), time.perf_counter() - started)
    return Screened(party, update, download_seconds=download_s, verify_seconds=verify_s)


def aggregate_round(
    aggregator: Aggregator,
    updates: Sequence[Update],
    start: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor] | None,
) -> AggregationResult:
    """A round's aggregate from its usable updates, from the round's start; with none left the
    global model stays. Every party and ``hydrafed audit`` derive each round through this."""
    if not updates:
        return AggregationResult(dict(start), dict(state or {}))
    return aggregator.aggregate(updates, current=start, state=state)


@dataclasses.dataclass(frozen=True)
class _Spilled:
    """A screened update waiting for its turn in a file (``RoundFold``'s ``spill_dir``)."""

    party: str
    samples: int
    path: Path

    def load(self) -> Update:
        """The update back from its file, which is removed (the tensors no longer need it)."""
        tensors = safetensors.torch.load_file(str(self.path))
        self.path.unlink()
        return Update(self.party, self.samples, tensors)


class RoundFold:
    """A round's FedAvg folded as its updates are screened, in the aggregation (party) order.

    Holding every peer's update until the round's last one arrives cost each party N-1 updates
    of memory (at N=29, 28 x 797 KB in a worker thread's malloc arena). Here an accepted update
    is folded into the running sum (``aggregation.fold``) as soon as every member before it in
    party order has been folded, excluded or, once the round is complete, found not counted; then
    it is freed. The order is the one ``aggregate_round`` uses, so the result is bit for bit the
    same. An update that arrives before one of its predecessors waits, and the order in which the
    head confirms announcements is not party order (at N=29, 14-21 of 28 waited at once): with
    ``spill_dir`` a waiting update beyond the first ``in_memory`` is written there as
    safetensors and read back when its turn comes (0.4 + 0.15 ms of CPU for the MLP's 797 KB,
    against 2.7 ms to download it again), so it waits in the page cache instead of the party's
    heap. Spilling every waiting update (``in_memory=0``) cost 0.533 s of party CPU a round at
    N=10 where holding them all took 0.475 s (on a VM where page faults and file writes are
    dear); 8 in memory took 0.485-0.498 s, and at N=29 (SeaweedFS) peaked at 2759 MiB of summed
    PSS against 2855 MiB holding them all.
    """

    def __init__(
        self,
        fold: aggregation.Fold,
        members: Sequence[str],
        spill_dir: Path | None = None,
        *,
        in_memory: int = 8,
    ) -> None:
        self.fold = fold
        self.in_memory = in_memory
        """How many waiting updates stay in memory before the next ones are spilled."""
        self._order = sorted(members)
        self._next = 0
        self._decided: dict[str, Update | _Spilled | None] = {}
        self._absent: set[str] = set()
        self._spill_dir = spill_dir
        self.seconds = 0.0
        """CPU time spent folding and spilling (the calling thread's ``time.thread_time``): 28
        short folds on a loaded machine would otherwise count every wait for a core between them."""
        self.most_held = 0
        """The most accepted updates waiting for a predecessor at once (in memory or on disk)."""
        self.spilled = 0
        """Updates that waited on disk."""

    def offer(self, verdict: Screened, *, spill: bool = True) -> Screened:
        """Take a member's verdict; returns it without its tensors (held or folded from here).

        ``spill=False``: the caller keeps the tensors anyway (our own update), so a copy on disk
        would free nothing.
        """
        self._decided[verdict.party] = verdict.update
        self._drain()
        update = self._decided.get(verdict.party)
        held = sum(isinstance(u, Update) for u in self._decided.values())  # this one included
        if spill and self._spill_dir is not None and isinstance(update, Update) and held > self.in_memory:
            started = time.thread_time()
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            path = self._spill_dir / f"{update.party}.waiting.safetensors"
            safetensors.torch.save_file(dict(update.tensors), str(path))
            self._decided[verdict.party] = _Spilled(update.party, update.samples, path)
            self.spilled += 1
            self.seconds += time.thread_time() - started
        return dataclasses.replace(verdict, update=None) if verdict.update is not None else verdict

    def absent(self, party: str) -> None:
        """``party`` is known not to be counted in the round: the fold does not wait for it."""
        self._absent.add(party)
        self._drain()

    def settle(self, counted: Sequence[str]) -> None:
        """The round is complete with ``counted`` as its members: fold what is left."""
        if self._absent & set(counted):
            raise errors.AggregationError(
                f"{sorted(self._absent & set(counted))} counted in the round after being taken as absent"
            )
        self._absent.update(set(self._order) - set(counted))
        self._drain()
        if self._next < len(self._order):
            raise errors.AggregationError(
                f"round fold stopped at {self._order[self._next]!r}: its update was never screened"
            )

    def _drain(self) -> None:
        started = time.thread_time()
        while self._next < len(self._order):
            party = self._order[self._next]
            if party in self._decided:
                update = self._decided.pop(party)
                if isinstance(update, _Spilled):
                    update = update.load()
                if update is not None:
                    self.fold.add(update, screened=True)  # screened: check_fits refused NaN/inf
            elif party not in self._absent:
                break
            self._next += 1
        self.most_held = max(self.most_held, sum(u is not None for u in self._decided.values()))
        self.seconds += time.thread_time() - started


def _finite(metrics: Mapping[str, float], state: Mapping[str, torch.Tensor]) -> bool:
    """No NaN or infinity in the training metrics or in the floating-point tensors."""
    return all(math.isfinite(v) for v in metrics.values()) and all(
        all_finite(t) for t in state.values() if t.is_floating_point()
    )


class PartyWorker:
    """Runs the rounds of one party.

    Parameters
    ----------
    config
        Identity, members and the federation spec.
    task
        The model, shard and optimiser; the worker only calls the LocalTask protocol.
    ledger
        Where the party announces and reads the confirmed announcements (``worker.ledger``).
    store
        The party's own bucket (read-write); it also reads its own earlier updates back from it.
    peer_stores
        One read-only store per peer, opened from the grant the peer shared.
    progress
        Called with small dicts (``{"party", "round", "state", ...}``) as the round advances.
    """

    def __init__(
        self,
        config: PartyConfig,
        task: LocalTask,
        ledger: Ledger,
        store: UpdateStore,
        peer_stores: Mapping[str, UpdateStore],
        *,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.spec = config.spec
        self.task = task
        self.ledger = ledger
        self.progress = progress or (lambda _msg: None)
        self.store = store
        self.members = {m.name: m for m in config.members}
        missing = sorted(set(self.members) - {config.name} - set(peer_stores))
        if missing:
            raise errors.ConfigError(
                f"no read grant from {', '.join(missing)}: ask them to share their bucket"
            )
        self.peer_stores = dict(peer_stores)
        self.spec_hash = rounds_mod.spec_hash(self.spec)
        self.book = RoundRules.for_spec(
            list(self.members), self.spec, {m.name: m.max_samples for m in config.members}
        )
        self.aggregator = get_aggregator(self.spec.training.aggregation, self.spec.training.robust)
        self.work_dir = Path(config.work_dir)
        self._book_changed = asyncio.Event()
        self._samples = 0
        self._follower: asyncio.Task[None] | None = None
        self._unevaluated: tuple[int, dict[str, torch.Tensor]] | None = None
        self._evaluations: dict[int, tuple[dict[str, float], float]] = {}
        self._global_digest: str | None = None
        """``state_sha256`` of the loaded global weights (the last aggregate); None: not yet hashed."""
        self._seen_tx: set[str] = set()
        self._pending_tx: set[str] = set()
        """Our cutoff txs not yet seen confirmed: the next tx must not spend the same outputs."""
        self._quorum_at: dict[int, float] = {}
        """Round -> when (our monotonic clock) we first saw its quorum of counted announcements."""
        self._cut: set[int] = set()
        """Rounds we submitted a cutoff for."""
        self._screened: list[tuple[int, Screened]] = []
        """Every exclusion after download, in the order we decided them (round, verdict)."""

    def _report(self, round_no: int, state: State, **extra: Any) -> None:
        self.progress({"party": self.config.name, "round": round_no, "state": state, **extra})

    async def run(self) -> PartyResult:
        """All rounds of the spec; raises on the first error (the round never goes on without it)."""
        records: list[RoundReport] = []
        async with self.ledger:
            for entry in self.ledger.history():
                self._take(entry)
            follower = asyncio.create_task(self._follow())
            self._follower = follower
            try:
                first, agg_state = await self._resume()
                for round_no in range(first, self.spec.training.rounds + 1):
                    record, agg_state = await self._round(round_no, agg_state)
                    records.append(record)
                await self._evaluate_pending()
            finally:
                follower.cancel()
        records = [self._with_evaluation(record) for record in records]
        final = records[-1].global_sha256 if records else state_sha256(self.task.exchanged_state())
        self._report(len(records), State.DONE, final_sha256=final)
        return PartyResult(
            self.config.name, self._samples, records, final, self._ledger(), self._ignored_rows()
        )

    def outgoing_update(
        self, round_no: int, start: Mapping[str, torch.Tensor], state: dict[str, torch.Tensor], samples: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        """Bench tool, not an option: what this party uploads and claims; here what it trained.

        ``bench/robust.py`` subclasses the worker to play a hostile party (its update scaled,
        sign-flipped, NaN, or its samples inflated after its own checks); nothing configures it.
        """
        return state, samples

    async def _resume(self) -> tuple[int, dict[str, torch.Tensor] | None]:
        """Where a restarted party picks up: the first round the ledger has not completed.

        The ledger's history holds every confirmed announcement, so every round the ledger
        completed is re-derived exactly as the others derived it (download, verify, aggregate in
        ledger order) and nothing is trained or announced twice. A fresh party starts at round 1.
        """
        agg_state: dict[str, torch.Tensor] | None = None
        round_no = 1
        while round_no <= self.spec.training.rounds and self.book.is_complete(round_no):
            reference = self.task.exchanged_state()
            entries = self.book.round_announcements(round_no)
            screened = await asyncio.to_thread(self._load_round, entries, reference, round_no)
            loaded = [v.update for v in screened if v.update is not None]
            for verdict in screened:
                self._exclude(round_no, verdict)
            aggregated = self._aggregate(round_no, loaded, reference, agg_state)
            self.task.load_exchanged_state(aggregated.tensors)
            agg_state = aggregated.state
            self._global_digest = state_sha256(aggregated.tensors)
            self._report(round_no, State.RESUMED, global_sha256=self._global_digest)
            round_no += 1
        if round_no > 1:
            log.info("%s resumes at round %d from the ledger", self.config.name, round_no)
        return round_no, agg_state

    def _load_round(
        self, entries: list[ConfirmedAnnouncement], reference: Mapping[str, torch.Tensor], round_no: int
    ) -> list[Screened]:
        """Every update of a completed round (our own from our bucket), screened, in ledger order."""
        inbox = self.work_dir / f"resume-{round_no}"
        inbox.mkdir(parents=True, exist_ok=True)
        verdicts = []
        for entry in entries:
            party = entry.announcement.party
            store = self.store if party == self.config.name else self.peer_stores.get(party)
            if store is None:
                raise errors.ConfigError(f"no read grant from {party}: ask {party} to share its bucket")
            verdicts.append(screen_update(store, entry, inbox / f"{party}.safetensors", reference))
        shutil.rmtree(inbox, ignore_errors=True)
        return verdicts

    def _take(self, item: Confirmed) -> None:
        """One authentic item from the ledger, through the round rules."""
        self._seen_tx.add(item.tx_id)
        self._pending_tx.discard(item.tx_id)
        self.book.apply(item)

    def _exclude(self, round_no: int, verdict: Screened) -> None:
        """Record, log and report an update excluded after download (nothing if it was accepted)."""
        if not verdict.code:
            return
        self._screened.append((round_no, verdict))
        log.warning(
            "%s: round %d: %s's update is excluded (%s): %s",
            self.config.name,
            round_no,
            verdict.party,
            verdict.code,
            verdict.reason,
        )
        self._report(
            round_no, State.EXCLUDED, offender=verdict.party, code=verdict.code, reason=verdict.reason
        )

    def _aggregate(
        self,
        round_no: int,
        updates: list[Update],
        start: Mapping[str, torch.Tensor],
        agg_state: dict[str, torch.Tensor] | None,
        fold: RoundFold | None = None,
    ) -> AggregationResult:
        """The round's aggregate from its usable updates (``aggregate_round``), or from the settled
        ``fold`` they went into: the same bits."""
        if fold is not None and fold.fold.count:
            return fold.fold.result()
        if not updates:
            log.warning(
                "%s: round %d has no usable update: the global model stays", self.config.name, round_no
            )
        return aggregate_round(self.aggregator, updates, start, agg_state)

    def _round_fold(self, spill_dir: Path) -> RoundFold | None:
        """A fresh fold of the round over every member, or None: the aggregator holds all updates."""
        fold = aggregation.fold(self.aggregator)
        return None if fold is None else RoundFold(fold, list(self.members), spill_dir)

    async def _evaluate_pending(self) -> float:
        """Evaluate the last aggregated global model, if not done yet; returns the seconds spent.

        Evaluation waits for no peer, so a party runs it while it waits for the next round's
        announcements instead of before training that round: off the round's critical path.
        """
        if self._unevaluated is None:
            return 0.0
        round_no, global_state = self._unevaluated
        self._unevaluated = None
        started = time.perf_counter()
        evaluation = await asyncio.to_thread(self._evaluate_state, global_state)
        seconds = time.perf_counter() - started
        self._evaluations[round_no] = (evaluation, seconds)
        self._report(round_no, State.EVALUATED, metrics=dict(evaluation))
        return seconds

    def _evaluate_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Metrics of ``state`` on the held-out data; the model's own weights are put back after."""
        current = self.task.exchanged_state()
        self.task.load_exchanged_state(state)
        try:
            return {k: float(v) for k, v in self.task.evaluate().items()}
        finally:
            self.task.load_exchanged_state(current)

    def evaluates(self, round_no: int) -> bool:
        """Whether this party evaluates round ``round_no``'s global model (``spec.evaluation``).

        Every K-th round and the last; with scope shared only the first member (in name order).
        """
        evaluation = self.spec.evaluation
        if evaluation.scope == EvaluationScope.SHARED and self.config.name != min(self.members):
            return False
        return round_no % evaluation.every == 0 or round_no == self.spec.training.rounds

    def _with_evaluation(self, record: RoundReport) -> RoundReport:
        """The record with its evaluation; a round this party did not evaluate keeps empty metrics."""
        if record.round not in self._evaluations:
            return record
        metrics, seconds = self._evaluations[record.round]
        return dataclasses.replace(record, metrics=metrics, timings={**record.timings, "evaluate": seconds})

    def _ledger(self) -> list[dict[str, Any]]:
        """The counted announcements in round, then party order."""
        rows = []
        for round_no in sorted(self.book.rounds):
            for entry in self.book.round_announcements(round_no):
                ann = entry.announcement
                rows.append(
                    {
                        "round": ann.round,
                        "party": ann.party,
                        "txId": entry.tx_id,
                        "snapshot": entry.snapshot,
                        "uri": ann.uri,
                        "sha256": ann.sha256,
                        "samples": ann.samples,
                        "metrics": dict(ann.metrics),
                        "startSha256": ann.start_sha256,
                    }
                )
        return rows

    def _ignored_rows(self) -> list[dict[str, Any]]:
        """What did not count: the ledger's ignored txs, then the updates excluded after download."""
        rows = [
            {
                "txId": i.tx_id,
                "party": i.party,
                "round": i.round,
                "code": i.code,
                "reason": i.reason,
                "offence": i.offence,
            }
            for i in self.book.ignored
        ]
        for round_no, verdict in self._screened:
            entry = self.book.rounds[round_no][verdict.party]
            rows.append(
                {
                    "txId": entry.tx_id,
                    "party": verdict.party,
                    "round": round_no,
                    "code": verdict.code,
                    "reason": verdict.reason,
                    "offence": True,
                }
            )
        return rows

    async def _follow(self) -> None:
        try:
            async for entry in self.ledger.confirmed():
                self._take(entry)
                self._book_changed.set()
        finally:
            self._book_changed.set()

    def _check_follower(self) -> None:
        """A dead ledger follower would leave the round waiting forever: fail with its error."""
        follower = self._follower
        if follower is not None and follower.done():
            exc = None if follower.cancelled() else follower.exception()
            raise errors.HeadError(f"{self.config.name}: stopped following the head: {exc or 'stream ended'}")

    async def _wait_until(
        self, condition: Callable[[], bool], what: str, *, wake_at: float | None = None
    ) -> None:
        """Until ``condition()`` holds, or (our monotonic clock) ``wake_at``; HeadError at the timeout."""
        timeout = float(self.spec.round_policy.timeout_seconds)
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_follower()
            self._book_changed.clear()
            if condition():
                return
            now = time.monotonic()
            if wake_at is not None and now >= wake_at:
                return
            remaining = deadline - now
            if remaining <= 0:
                raise errors.HeadError(f"{self.config.name}: {what} not confirmed within {timeout:.0f}s")
            if wake_at is not None:
                remaining = min(remaining, wake_at - now)
            try:
                await asyncio.wait_for(self._book_changed.wait(), remaining)
            except TimeoutError:
                continue

    def _cutoff_due(self, round_no: int) -> float | None:
        """When we should submit the round's cutoff (monotonic), or None: no quorum policy, no
        quorum yet, or already sent. Only the time is ours: the ledger's order decides the members."""
        quorum = self.spec.round_policy.quorum
        if quorum is None or round_no in self._cut or len(self.book.announced(round_no)) < quorum:
            return None
        seen = self._quorum_at.setdefault(round_no, time.monotonic())
        return seen + self.spec.round_policy.grace_seconds

    async def _submit_cutoff(self, round_no: int) -> None:
        """Ask the head to end the round; the first confirmed cutoff fixes its members for all."""
        self._cut.add(round_no)
        cutoff = tx_mod.Cutoff(self.config.fed, round_no, self.config.name, self.spec_hash)
        try:
            tx_id = await self.ledger.submit_cutoff(cutoff)
        except errors.HydrafedError as exc:  # another party's cutoff may well end the round
            log.warning("%s: round %d cutoff not submitted: %s", self.config.name, round_no, exc)
            return
        if tx_id not in self._seen_tx:
            self._pending_tx.add(tx_id)
        log.info(
            "%s: round %d cut off after %d announcements",
            self.config.name,
            round_no,
            len(self.book.announced(round_no)),
        )

    def _load_peers(
        self,
        entries: list[ConfirmedAnnouncement],
        inbox: Path,
        reference: Mapping[str, torch.Tensor],
        fold: RoundFold | None = None,
    ) -> list[Screened]:
        """Download and screen each peer's announced update (``screen_update``), in order; with
        ``fold``, each verdict goes through it as it is made (its tensors folded or held there)."""
        loaded = []
        for entry in entries:
            party = entry.announcement.party
            store = self.peer_stores.get(party)
            if store is None:
                raise errors.ConfigError(f"no read grant from {party}: ask {party} to share its bucket")
            verdict = screen_update(store, entry, inbox / f"{party}.safetensors", reference)
            loaded.append(verdict if fold is None else fold.offer(verdict))
        return loaded

    async def _gather_updates(
        self,
        round_no: int,
        reference: Mapping[str, torch.Tensor],
        inbox: Path,
        timings: dict[str, float],
        fold: RoundFold | None = None,
    ) -> dict[str, Screened]:
        """Every peer's screened update for the round, fetched as its announcement is confirmed.

        While the round is incomplete the party evaluates the previous round's global model and
        downloads what is already confirmed, so after the last announcement only the last update
        is left to fetch. With a quorum policy it submits the round's cutoff once the quorum has
        stood for ``graceSeconds``. Records ``wait`` (without that work), ``download`` and ``verify``.
        With ``fold`` the verdicts come back without their tensors: those are in the fold.
        """
        name = self.config.name
        loaded: dict[str, Screened] = {}
        timings["download"] = timings["verify"] = 0.0
        busy = 0.0

        def unfetched() -> list[ConfirmedAnnouncement]:
            entries = self.book.round_announcements(round_no)
            return [e for e in entries if e.announcement.party not in (name, *loaded)]

        async def fetch() -> None:
            nonlocal busy
            started = time.perf_counter()
            # One worker-thread hop per batch: each hop costs a wake-up of the event loop.
            for verdict in await asyncio.to_thread(self._load_peers, unfetched(), inbox, reference, fold):
                loaded[verdict.party] = verdict
                timings["download"] += verdict.download_seconds
                timings["verify"] += verdict.verify_seconds
            busy += time.perf_counter() - started

        started = time.perf_counter()
        busy += await self._evaluate_pending()
        while not self.book.is_complete(round_no):
            if unfetched():
                await fetch()
                continue
            due = self._cutoff_due(round_no)
            if due is not None and due <= time.monotonic():
                await self._submit_cutoff(round_no)
                continue
            await self._wait_until(
                lambda: self.book.is_complete(round_no) or bool(unfetched()),
                f"round {round_no} membership",
                wake_at=due,
            )
        timings["wait"] = time.perf_counter() - started - busy
        if unfetched():
            await fetch()
        return loaded

    async def _train(
        self, round_no: int, timings: dict[str, float]
    ) -> tuple[dict[str, torch.Tensor], int, dict[str, float]]:
        """One round of local training: the exchanged tensors, their FedAvg weight and the metrics.

        One party's diverged SGD must not end the federation or poison the average: on a
        non-finite loss or weights the party keeps the weights it started from, with 0 samples.
        """
        self._report(round_no, State.TRAINING)
        started = time.perf_counter()
        start_state = self.task.exchanged_state()
        result = await asyncio.to_thread(self.task.train_round, round_no)
        timings["train"] = time.perf_counter() - started
        self._samples = result.samples
        local_state = self.task.exchanged_state()
        metrics = {k: float(v) for k, v in result.metrics.items()}
        if _finite(metrics, local_state):
            return local_state, result.samples, metrics
        log.warning(
            "%s: local training diverged in round %d (non-finite loss or weights); "
            "its update is left out of the round; consider a lower learning rate",
            self.config.name,
            round_no,
        )
        self.task.load_exchanged_state(start_state)
        self._report(round_no, State.DIVERGED)
        return start_state, 0, {"diverged": 1.0}

    def _upload(
        self, round_no: int, round_dir: Path, state: Mapping[str, torch.Tensor], timings: dict[str, float]
    ) -> tuple[str, str]:
        """Write the update as safetensors into our bucket; returns its sha256 and URI."""
        name = self.config.name
        self._report(round_no, State.UPLOADING)
        started = time.perf_counter()
        path = round_dir / f"{name}.safetensors"
        # Serialised and hashed in memory, then written: save_file and a second read to hash
        # cost 1.1 ms of the ~2 ms an 800 KB update took, paid by every party every round. (The
        # store's put still copies or hashes the file once more.)
        blob = safetensors.torch.save(dict(state))
        digest = hashlib.sha256(blob).hexdigest()
        path.write_bytes(blob)
        del blob
        timings["serialize"] = time.perf_counter() - started
        started = time.perf_counter()
        key = f"{self.config.fed}/rounds/{round_no}/{name}.safetensors"
        bucket = self.members[name].bucket
        self.store.put(bucket, key, path)
        timings["upload"] = time.perf_counter() - started
        return digest, self.store.uri(bucket, key)

    async def _announce(
        self,
        round_no: int,
        uri: str,
        digest: str,
        samples: int,
        metrics: dict[str, float],
        start_sha256: str,
    ) -> None:
        """Submit our announcement for the round and wait until the head confirms it.

        ``start_sha256`` names the global weights the round trained from: the ledger then closes
        the chain of rounds, and ``hydrafed audit`` can check every round's aggregate against it.
        """
        name = self.config.name
        announcement = tx_mod.Announcement(
            fed=self.config.fed,
            round=round_no,
            party=name,
            uri=uri,
            sha256=digest,
            samples=samples,
            metrics=metrics,
            spec_hash=self.spec_hash,
            start_sha256=start_sha256,
        )
        if self._pending_tx:  # our last cutoff spent the outputs this tx would spend: let it land
            await self._wait_until(lambda: not self._pending_tx, f"round {round_no - 1} cutoff")
        tx_id = await self.ledger.submit(announcement)
        await self._wait_until(
            lambda: self.book.outcome(round_no, name) is not None, f"round {round_no} announcement"
        )
        self._report(round_no, State.ANNOUNCED, txId=tx_id)

    async def _round(
        self,
        round_no: int,
        agg_state: dict[str, torch.Tensor] | None,
    ) -> tuple[RoundReport, dict[str, torch.Tensor]]:
        name = self.config.name
        timings: dict[str, float] = {}
        round_dir = self.work_dir / f"round-{round_no}"
        round_dir.mkdir(parents=True, exist_ok=True)

        started_at = time.time()
        start_state = self.task.exchanged_state()  # the round's starting global model
        if self._global_digest is None:  # round 1 of a fresh party: the initial weights
            self._global_digest = state_sha256(start_state)
        start_digest = self._global_digest
        already = self.book.rounds.get(round_no, {}).get(name)
        own_update: Update | None = None
        digest, uri, samples = "", "", 0
        metrics: dict[str, float] = {}
        if already is not None:  # announced before a restart: take it from our bucket, not again
            (verdict,) = await asyncio.to_thread(self._load_round, [already], start_state, round_no)
            own_update = verdict.update
            samples = already.announcement.samples
            metrics = dict(already.announcement.metrics)
            digest = already.announcement.sha256
            timings.update(train=0.0, serialize=0.0, upload=0.0)
            self._samples = samples
            if own_update is None:
                self._exclude(round_no, verdict)
        elif self.book.is_complete(round_no):  # cut off before we trained: take the aggregate
            timings.update(train=0.0, serialize=0.0, upload=0.0)
        else:
            local_state, samples, metrics = await self._train(round_no, timings)
            local_state, samples = self.outgoing_update(round_no, start_state, local_state, samples)
            digest, uri = self._upload(round_no, round_dir, local_state, timings)
            own_update = Update(name, samples, local_state)

        started = time.perf_counter()
        if already is None and own_update is not None:
            await self._announce(round_no, uri, digest, samples, metrics, start_digest)
        timings["announce"] = time.perf_counter() - started
        if not self.book.is_complete(round_no):
            self._report(round_no, State.WAITING, announced=self.book.announced(round_no))

        own_verdict = (
            self._own_verdict(round_no, own_update, start_state)
            if already is None
            else Screened(name, own_update, "BadUpdate" if own_update is None else "")
        )
        fold = self._round_fold(round_dir / "waiting")
        if fold is not None:  # our own update takes its place in the order like any other
            if name in self.book.rounds.get(round_no, {}):
                own_verdict = fold.offer(own_verdict, spill=False)  # own_update keeps the tensors
            else:  # cut off without us, or our announcement not counted: that is final
                fold.absent(name)
        peer_updates = await self._gather_updates(round_no, start_state, round_dir / "peers", timings, fold)
        self._report(round_no, State.AGGREGATING)
        entries = self.book.round_announcements(round_no)
        own = self.book.rounds.get(round_no, {}).get(name)
        if own is not None and own.announcement.sha256 != digest:
            raise errors.IntegrityError(
                f"the ledger holds another hash for {name}'s own round {round_no} update"
            )
        updates: list[Update] = []
        excluded: dict[str, str] = {}
        for entry in entries:
            party = entry.announcement.party
            if party == name:
                verdict = own_verdict
                if already is None and own_update is not None:  # a restart recorded it when loading
                    self._exclude(round_no, verdict)
            else:
                verdict = peer_updates[party]
                self._exclude(round_no, verdict)
            if verdict.code:
                excluded[party] = verdict.code
            elif verdict.update is not None:  # None: in the fold already
                updates.append(verdict.update)

        started = time.perf_counter()
        folded = 0.0  # the CPU time of the folds made while the updates came in
        if fold is not None:
            folded = fold.seconds
            fold.settle([e.announcement.party for e in entries])
            log.debug("%s: round %d folded, at most %d updates held", name, round_no, fold.most_held)
        aggregated = self._aggregate(round_no, updates, start_state, agg_state, fold)
        self.task.load_exchanged_state(aggregated.tensors)
        global_digest = state_sha256(aggregated.tensors)
        self._global_digest = global_digest
        timings["aggregate"] = time.perf_counter() - started + folded

        if self.evaluates(round_no):
            self._unevaluated = (round_no, aggregated.tensors)
        self._check_offences()
        shutil.rmtree(round_dir, ignore_errors=True)  # uploaded and aggregated: the bucket keeps the update
        missed = own is None
        if missed:
            log.info("%s: round %d was cut off without our update: we take its aggregate", name, round_no)
        self._report(
            round_no,
            State.AGGREGATED,
            timings=dict(timings),
            train_metrics=dict(metrics),
            samples=samples,
            global_sha256=global_digest,
            members=[e.announcement.party for e in entries],
            excluded=dict(excluded),
            missed=missed,
        )
        record = RoundReport(
            round=round_no,
            members=[e.announcement.party for e in entries],
            metrics={},  # filled in once the round's global model is evaluated (_evaluate_pending)
            train_metrics=metrics,
            timings=timings,
            tx_id=own.tx_id if own is not None else "",
            sha256=digest,
            global_sha256=global_digest,
            started_at=started_at,
            finished_at=time.time(),
            excluded=excluded,
            missed=missed,
        )
        return record, aggregated.state

    def _check_offences(self) -> None:
        """HeadError naming the first member over ``roundPolicy.closeAfterOffences``, if any."""
        limit = self.spec.round_policy.close_after_offences
        if limit is None:
            return
        counts: dict[str, list[str]] = {}
        for party, found in self.book.offences().items():
            counts.setdefault(party, []).extend(f"round {i.round} {i.code}" for i in found)
        for round_no, verdict in self._screened:
            counts.setdefault(verdict.party, []).append(f"round {round_no} {verdict.code}")
        for party in sorted(counts):
            if len(counts[party]) >= limit:
                raise errors.HeadError(
                    f"{party} has {len(counts[party])} offences ({', '.join(counts[party][:5])}); "
                    f"roundPolicy.closeAfterOffences is {limit}: the federation stops"
                )

    def _own_verdict(
        self, round_no: int, update: Update | None, reference: Mapping[str, torch.Tensor]
    ) -> Screened:
        """Our own update through the same gate the peers apply to it, so we exclude it as they do
        (recorded by the caller, in the round's order)."""
        if update is None:
            return Screened(self.config.name, None, "BadUpdate", "no update")
        try:
            check_fits(update.tensors, reference, whose=f"{self.config.name}'s round {round_no} update")
        except errors.AggregationError as exc:
            return Screened(self.config.name, None, "BadUpdate", str(exc))
        return Screened(self.config.name, update)
