"""One party's round loop: train, upload, announce, wait for the ledger, download, aggregate.

The same code runs in a Kubernetes worker Job (``hydrafed worker``), in ``hydrafed simulate``
(one process per party) and in process for tests and benchmarks. It is given everything it talks
to: training through a ``LocalTask``, the head through a ``Ledger`` (``worker.ledger``: the party's
hydra-node in production, an in-memory head in process), its own bucket and the peers' read-only
stores. The round's members are what the confirmed ledger says, sorted by party, so every party
aggregates the same updates and ends each round with bit-identical weights.

Public API::

    Member(name, address, key_hash, bucket, grant)
    PartyConfig(fed, name, members, spec, work_dir)                       # picklable
    PartyWorker(config, task, ledger, store, peer_stores, *, progress=None).run() -> PartyResult
    load_peer_update(store, entry, dest, reference) -> Update            # verify + safetensors load
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from hydrafed import errors
from hydrafed import rounds as rounds_mod
from hydrafed.hydra import tx as tx_mod
from hydrafed.rounds import ConfirmedAnnouncement, Rounds
from hydrafed.spec import FederationSpec
from hydrafed.storage import UpdateStore, fetch_verified, read_verified, sha256_file, split_uri
from hydrafed.worker import phases
from hydrafed.worker.aggregation import AggregationResult, Update, get_aggregator
from hydrafed.worker.fit import check_fits
from hydrafed.worker.ledger import Ledger
from hydrafed.worker.phases import State
from hydrafed.worker.task import LocalTask

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

PHASES = phases.TIMED
"""The timed steps of a round (``phases.TIMED``)."""


@dataclasses.dataclass(frozen=True)
class Member:
    """A federation member as every party knows it: public facts only."""

    name: str
    address: str
    """L2 payment address; every announcement pays each peer here."""
    key_hash: str
    """Payment key hash (hex) that must have signed the member's announcements."""
    bucket: str
    grant: str = dataclasses.field(default="", repr=False)
    """Read credential the member shared for its round objects (a secret: not in repr)."""


@dataclasses.dataclass(frozen=True)
class PartyConfig:
    """What one party process needs; picklable so it crosses a spawn boundary."""

    fed: str
    name: str
    members: tuple[Member, ...]
    spec: FederationSpec
    work_dir: Path

    def __post_init__(self) -> None:
        names = [m.name for m in self.members]
        if self.name not in names:
            raise errors.ConfigError(f"party {self.name!r} is not among the members {names}")
        if len(set(names)) != len(names):
            raise errors.ConfigError(f"member names must be unique, got {names}")


@dataclasses.dataclass(frozen=True)
class RoundReport:
    """One party's view of one round: members, metrics after aggregation, seconds per phase."""

    round: int
    members: list[str]
    metrics: dict[str, float]
    train_metrics: dict[str, float]
    timings: dict[str, float]
    tx_id: str
    sha256: str
    global_sha256: str
    started_at: float = 0.0
    """Epoch seconds when this party began the round (training), and when it had evaluated."""
    finished_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class PartyResult:
    """What a party reports when its rounds are done."""

    name: str
    samples: int
    rounds: list[RoundReport]
    final_sha256: str
    announcements: list[dict[str, Any]]
    """Every counted announcement as this party's ledger saw it (round, party, txId, uri, sha256...)."""


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
    max_bytes = sum(t.numel() * t.element_size() for t in reference.values()) + 65536 + 512 * len(reference)
    started = time.perf_counter()
    data: bytes | None = None
    if max_bytes <= IN_MEMORY_BYTES:
        data = read_verified(store, bucket, key, ann.sha256, max_bytes=max_bytes)
    else:
        fetch_verified(store, bucket, key, dest, ann.sha256)
    downloaded = time.perf_counter()
    try:
        tensors = safetensors.torch.load(data) if data is not None else safetensors.torch.load_file(str(dest))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise errors.AggregationError(
            f"{ann.party}'s round {ann.round} update is not valid safetensors: {exc}"
        ) from exc
    check_fits(tensors, reference, whose=f"{ann.party}'s round {ann.round} update")
    verified = time.perf_counter()
    return Update(ann.party, ann.samples, tensors), downloaded - started, verified - downloaded


def _finite(metrics: Mapping[str, float], state: Mapping[str, torch.Tensor]) -> bool:
    """No NaN or infinity in the training metrics or in the floating-point tensors."""
    return all(math.isfinite(v) for v in metrics.values()) and all(
        bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point()
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
        self.book = Rounds(list(self.members))
        self.aggregator = get_aggregator(self.spec.training.aggregation)
        self.work_dir = Path(config.work_dir)
        self._book_changed = asyncio.Event()
        self._samples = 0
        self._follower: asyncio.Task[None] | None = None
        self._unevaluated: tuple[int, dict[str, torch.Tensor]] | None = None
        self._evaluations: dict[int, tuple[dict[str, float], float]] = {}
        self._global_digest: str | None = None
        """``state_sha256`` of the loaded global weights (the last aggregate); None: not yet hashed."""

    def _report(self, round_no: int, state: State, **extra: Any) -> None:
        self.progress({"party": self.config.name, "round": round_no, "state": state, **extra})

    async def run(self) -> PartyResult:
        """All rounds of the spec; raises on the first error (the round never goes on without it)."""
        records: list[RoundReport] = []
        async with self.ledger:
            for entry in self.ledger.history():
                self.book.add(entry)
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
        return PartyResult(self.config.name, self._samples, records, final, self._ledger())

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
            loaded = await asyncio.to_thread(self._load_round, entries, reference, round_no)
            own = next(u for u in loaded if u.party == self.config.name)
            aggregated = self.aggregator.aggregate(loaded, current=own.tensors, state=agg_state)
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
    ) -> list[Update]:
        """Every update of a completed round (our own from our bucket), verified, in ledger order."""
        inbox = self.work_dir / f"resume-{round_no}"
        inbox.mkdir(parents=True, exist_ok=True)
        updates = []
        for entry in entries:
            party = entry.announcement.party
            store = self.store if party == self.config.name else self.peer_stores.get(party)
            if store is None:
                raise errors.ConfigError(f"no read grant from {party}: ask {party} to share its bucket")
            update, _, _ = load_peer_update(store, entry, inbox / f"{party}.safetensors", reference)
            updates.append(update)
        shutil.rmtree(inbox, ignore_errors=True)
        return updates

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

    def _with_evaluation(self, record: RoundReport) -> RoundReport:
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

    async def _follow(self) -> None:
        try:
            async for entry in self.ledger.confirmed():
                if self.book.add(entry):
                    self._book_changed.set()
        finally:
            self._book_changed.set()

    def _check_follower(self) -> None:
        """A dead ledger follower would leave the round waiting forever: fail with its error."""
        follower = self._follower
        if follower is not None and follower.done():
            exc = None if follower.cancelled() else follower.exception()
            raise errors.HeadError(f"{self.config.name}: stopped following the head: {exc or 'stream ended'}")

    async def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        timeout = float(self.spec.round_policy.timeout_seconds)
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_follower()
            self._book_changed.clear()
            if condition():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.HeadError(f"{self.config.name}: {what} not confirmed within {timeout:.0f}s")
            try:
                await asyncio.wait_for(self._book_changed.wait(), remaining)
            except TimeoutError:
                continue

    def _load_peers(
        self, entries: list[ConfirmedAnnouncement], inbox: Path, reference: Mapping[str, torch.Tensor]
    ) -> list[tuple[Update, float, float]]:
        """Download and verify each peer's announced update (``load_peer_update``), in order."""
        loaded = []
        for entry in entries:
            party = entry.announcement.party
            store = self.peer_stores.get(party)
            if store is None:
                raise errors.ConfigError(f"no read grant from {party}: ask {party} to share its bucket")
            loaded.append(load_peer_update(store, entry, inbox / f"{party}.safetensors", reference))
        return loaded

    async def _gather_updates(
        self,
        round_no: int,
        local_state: Mapping[str, torch.Tensor],
        inbox: Path,
        timings: dict[str, float],
    ) -> dict[str, Update]:
        """Every peer's verified update for the round, fetched as its announcement is confirmed.

        While the round is incomplete the party evaluates the previous round's global model and
        downloads what is already confirmed, so after the last announcement only the last update
        is left to fetch. Records ``wait`` (without that work), ``download`` and ``verify``.
        """
        name = self.config.name
        loaded: dict[str, Update] = {}
        timings["download"] = timings["verify"] = 0.0
        busy = 0.0

        def unfetched() -> list[ConfirmedAnnouncement]:
            entries = self.book.round_announcements(round_no)
            return [e for e in entries if e.announcement.party not in (name, *loaded)]

        async def fetch() -> None:
            nonlocal busy
            started = time.perf_counter()
            # One worker-thread hop per batch: each hop costs a wake-up of the event loop.
            for update, download_s, verify_s in await asyncio.to_thread(
                self._load_peers, unfetched(), inbox, local_state
            ):
                loaded[update.party] = update
                timings["download"] += download_s
                timings["verify"] += verify_s
            busy += time.perf_counter() - started

        started = time.perf_counter()
        busy += await self._evaluate_pending()
        while not self.book.is_complete(round_no):
            if unfetched():
                await fetch()
            else:
                await self._wait_until(
                    lambda: self.book.is_complete(round_no) or bool(unfetched()),
                    f"round {round_no} membership",
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
        safetensors.torch.save_file(dict(state), str(path))
        digest = sha256_file(path)
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
        tx_id = await self.ledger.submit(announcement)
        await self._wait_until(
            lambda: name in self.book.announced(round_no), f"round {round_no} announcement"
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
        already = self.book.rounds.get(round_no, {}).get(name)
        if already is not None:  # announced before a restart: take it from our bucket, not again
            (own_update,) = await asyncio.to_thread(
                self._load_round, [already], self.task.exchanged_state(), round_no
            )
            local_state, samples = dict(own_update.tensors), own_update.samples
            metrics = dict(already.announcement.metrics)
            digest, uri = already.announcement.sha256, already.announcement.uri
            timings.update(train=0.0, serialize=0.0, upload=0.0)
            self._samples = samples
        else:
            if self._global_digest is None:  # round 1 of a fresh party: the initial weights
                self._global_digest = state_sha256(self.task.exchanged_state())
            start_digest = self._global_digest
            local_state, samples, metrics = await self._train(round_no, timings)
            digest, uri = self._upload(round_no, round_dir, local_state, timings)

        started = time.perf_counter()
        if already is None:
            await self._announce(round_no, uri, digest, samples, metrics, start_digest)
        timings["announce"] = time.perf_counter() - started
        if not self.book.is_complete(round_no):
            self._report(round_no, State.WAITING, announced=self.book.announced(round_no))

        peer_updates = await self._gather_updates(round_no, local_state, round_dir / "peers", timings)
        self._report(round_no, State.AGGREGATING)
        entries = self.book.round_announcements(round_no)
        for entry in entries:
            if entry.announcement.party == name and entry.announcement.sha256 != digest:
                raise errors.IntegrityError(
                    f"the ledger holds another hash for {name}'s own round {round_no} update"
                )
        own_update = Update(name, samples, local_state)
        updates = [
            own_update if e.announcement.party == name else peer_updates[e.announcement.party]
            for e in entries
        ]

        started = time.perf_counter()
        aggregated: AggregationResult = self.aggregator.aggregate(
            updates, current=local_state, state=agg_state
        )
        self.task.load_exchanged_state(aggregated.tensors)
        global_digest = state_sha256(aggregated.tensors)
        self._global_digest = global_digest
        timings["aggregate"] = time.perf_counter() - started

        self._unevaluated = (round_no, aggregated.tensors)
        shutil.rmtree(round_dir, ignore_errors=True)  # uploaded and aggregated: the bucket keeps the update
        own = self.book.rounds[round_no][name]
        self._report(
            round_no,
            State.AGGREGATED,
            timings=dict(timings),
            train_metrics=dict(metrics),
            samples=samples,
            global_sha256=global_digest,
        )
        record = RoundReport(
            round=round_no,
            members=[e.announcement.party for e in entries],
            metrics={},  # filled in once the round's global model is evaluated (_evaluate_pending)
            train_metrics=metrics,
            timings=timings,
            tx_id=own.tx_id,
            sha256=digest,
            global_sha256=global_digest,
            started_at=started_at,
            finished_at=time.time(),
        )
        return record, aggregated.state
