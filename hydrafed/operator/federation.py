"""One Federation as this cluster's operator drives it: its party's keys and children, its head,
and a status computed from what the head confirmed.

Each operator drives only its own party and talks only to its own node. The first party in
sorted order sends Init; every party deposits its own funds; the rounds are read from the
node's confirmed snapshots with the same :class:`~hydrafed.rounds.RoundBook` the workers use,
so the status shows exactly the membership the workers aggregate. Nothing the status says is
kept only in memory: after a restart the node's history replay and the API objects give back
the same picture, and re-applying children (server-side apply) creates nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydrafed import errors, rounds, spec
from hydrafed.head import HeadView, close_step
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import escrow, funding, messages
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS
from hydrafed.operator import children, conditions, events, metrics, names, secrets
from hydrafed.operator.kube import Kube, KubeError, Obj
from hydrafed.operator.membership import (
    Member,
    PartyObject,
    Problem,
    check_federation,
    initiator,
    local_member,
    local_party,
    network_of,
    parse_party,
    remote_member,
)

log = logging.getLogger(__name__)

Phase = spec.FederationPhase
INIT_RETRY_SECONDS = 15.0
STICKY = (
    "headId",
    "headState",
    "startTime",
    "completionTime",
    "currentRound",
    "completedRounds",
    "partiesReady",
    "parties",
    "rounds",
    "lastSnapshot",
    "progress",
)
"""Status fields a step keeps from the last one unless it learns better (e.g. while the node is away)."""


@dataclass(frozen=True)
class Options:
    """How the operator runs its children."""

    worker_image: str = "ghcr.io/hydrafed/worker:0.1.0"
    resync_seconds: float = 5.0
    connect_timeout: float = 5.0


@dataclass
class Draft:
    """The status being computed in one reconcile step."""

    phase: Phase
    message: str
    conditions: list[spec.Condition]
    generation: int | None
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message) to post once the step is done, off the event loop."""

    def condition(self, type_: str, status: bool | None, reason: str, message: str = "") -> None:
        self.conditions = conditions.put(self.conditions, type_, status, reason, message, self.generation)


@dataclass
class Follower:
    """A node's event stream for one Federation: the round book of the current head, live."""

    client: client_mod.HydraClient
    book: rounds.RoundBook
    task: asyncio.Task[None] | None = None
    head_id: str | None = None
    tx_valid_at: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    last_snapshot: messages.SnapshotConfirmed | None = None
    live_since: int = 0
    confirmed: list[dict[str, Any]] = field(default_factory=list)
    """Every tx envelope the current head confirmed, in ledger order (for the escrow states)."""

    def start(self) -> None:
        self.live_since = self.client.position
        self.task = asyncio.create_task(self._follow(), name="hydrafed-follow")

    async def _follow(self) -> None:
        index = 0
        async for output in self.client.subscribe(0):
            index += 1
            if isinstance(output, messages.HeadIsOpen) and output.head_id != self.head_id:
                # A new head: the announcements of an earlier head on this node are not ours.
                self.head_id = output.head_id
                self.book = self.book.fresh()
                self.last_snapshot = None
                self.confirmed = []
            elif isinstance(output, messages.TxValid) and index > self.live_since:
                self.tx_valid_at[output.transaction_id] = time.monotonic()
            elif isinstance(output, messages.SnapshotConfirmed) and output.head_id in (None, self.head_id):
                self.last_snapshot = output
                self.confirmed.extend(output.confirmed)
                for entry in self.book.observe(output):
                    sent = self.tx_valid_at.pop(entry.tx_id, None)
                    if sent is not None:
                        self.latencies.append(time.monotonic() - sent)

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.client.close()


class FederationRunner:
    """Reconciles one Federation; :meth:`step` is called every few seconds by its kopf daemon."""

    def __init__(self, kube: Kube, options: Options, namespace: str, name: str) -> None:
        self.kube = kube
        self.options = options
        self.namespace = namespace
        self.name = name
        self.follower: Follower | None = None
        self._follower_key: tuple[Any, ...] | None = None
        self._deposit: asyncio.Task[str] | None = None
        self._init_sent_at = 0.0
        self._completed_seen: set[int] = set()
        self._round_clock: float | None = None
        self._ignored_seen = 0
        self._reported: tuple[str, str] | None = None
        self._last_wire: Obj | None = None

    # ------------------------------------------------------------------ the reconcile step
    async def step(self, body: Mapping[str, Any], party_bodies: Sequence[Mapping[str, Any]]) -> Draft:
        """One reconcile: children, head, status. Returns the status it wrote."""
        draft = await self._compute(body, party_bodies)
        await self._write(body, draft)
        return draft

    async def _compute(self, body: Mapping[str, Any], party_bodies: Sequence[Mapping[str, Any]]) -> Draft:
        meta = body.get("metadata", {})
        status = body.get("status") or {}
        draft = Draft(
            phase=Phase(status["phase"])
            if status.get("phase") in Phase.__members__.values()
            else Phase.PENDING,
            message="",
            conditions=conditions.parse(status.get("conditions")),
            generation=meta.get("generation"),
            fields={k: status[k] for k in STICKY if k in status},
        )
        if status.get("phase") == Phase.CLOSED:
            draft.message = status.get("message") or "the head is finalized; this Federation is a record"
            return draft
        fed_spec = spec.FederationSpec.model_validate(body.get("spec") or {})
        ready = await asyncio.to_thread(self._prepare, body, fed_spec, party_bodies, draft)
        if ready is None:
            return draft
        ctx, keys = ready
        return await self._drive_head(body, fed_spec, ctx, keys, draft)

    def _prepare(
        self,
        body: Mapping[str, Any],
        fed_spec: spec.FederationSpec,
        party_bodies: Sequence[Mapping[str, Any]],
        draft: Draft,
    ) -> tuple[children.LocalParty, keys_mod.PartyKeys] | None:
        """Parties, keys, secrets and children (blocking API calls; run in a thread)."""
        network = network_of(fed_spec.head)
        parsed = [parse_party(p) for p in party_bodies]
        problems = [p for p in parsed if isinstance(p, Problem)]
        parties = sorted((p for p in parsed if isinstance(p, PartyObject)), key=lambda p: p.name)
        local = local_party(self.name, parties)
        if isinstance(local, Problem):
            problems.insert(0, local)
        problems += check_federation(self.name, fed_spec, parties)
        if not problems and isinstance(local, PartyObject):
            problems += _node_problems(self.name, fed_spec, local)
        if problems or not isinstance(local, PartyObject):
            self._pending(draft, problems[0])
            return None
        keyed = secrets.ensure_keys(self.kube, local, network)
        if isinstance(keyed, Problem):
            self._pending(draft, keyed)
            return None
        keys, key_secret = keyed
        me = local_member(local, keys, network)
        self._write_local_party(local, me, key_secret)
        peers = [p for p in parties if p is not local]
        for peer in peers:
            self._write_remote_party(peer, network)
        owner = children.owner_reference(self.name, str(body["metadata"]["uid"]))
        credentials = secrets.storage_credentials(self.kube, local)
        if isinstance(credentials, Problem):
            self._pending(draft, credentials)
            return None
        grant = secrets.ensure_read_grant(self.kube, self.name, fed_spec, local, credentials, owner)
        if isinstance(grant, Problem):
            self._pending(draft, grant)
            return None
        for peer in peers:
            missing = secrets.grant_secret_present(self.kube, peer)
            if missing is not None:
                self._pending(draft, missing)
                return None
        ctx = children.LocalParty(
            federation=self.name,
            namespace=self.namespace,
            federation_uid=str(body["metadata"]["uid"]),
            spec=fed_spec,
            party=local,
            me=me,
            peers=tuple(remote_member(p, network) for p in peers),
            peer_parties=tuple(peers),
            key_secret=key_secret,
            protocol_parameters=dict(DEFAULT_PROTOCOL_PARAMETERS),
        )
        if not local.spec.node_api_url:
            for manifest in (
                children.node_config_map(ctx),
                children.node_stateful_set(ctx),
                *children.node_services(ctx),
                children.node_network_policy(ctx),
            ):
                self.kube.apply(manifest)
        self.kube.apply(children.worker_config_map(ctx))
        draft.condition(
            "PartiesReady",
            True,
            "PartiesReady",
            f"{len(parties)} parties: {', '.join(p.name for p in parties)}",
        )
        draft.fields["partiesReady"] = f"{len(parties)}/{len(parties)}"
        return ctx, keys

    def _pending(self, draft: Draft, problem: Problem) -> None:
        draft.phase = Phase.PENDING if draft.phase in (Phase.PENDING, Phase.PROVISIONING) else draft.phase
        draft.message = problem.message
        draft.condition("PartiesReady", False, problem.reason, problem.message)

    # ------------------------------------------------------------------ the head
    async def _client(self, ctx: children.LocalParty) -> Follower | Problem:
        members = {m.name: m.key_hash for m in (ctx.me, *ctx.peers)}
        key = (ctx.api_url, rounds.spec_hash(ctx.spec), tuple(sorted(members.items())))
        if self.follower is not None and (key != self._follower_key or not self.follower.alive()):
            await self.follower.stop()
            self.follower = None
        if self.follower is None:
            client = client_mod.HydraClient(
                ctx.api_url, snapshot_utxo=False, connect_timeout=self.options.connect_timeout
            )
            try:
                await client.connect()
            except (errors.HeadError, OSError) as exc:
                return Problem(
                    "NodeUnreachable",
                    f"the hydra-node API of Party {ctx.party.name} at {ctx.api_url} does not answer ({exc}); "
                    + (
                        "check the node at spec.nodeApiUrl"
                        if ctx.party.spec.node_api_url
                        else f"check StatefulSet {ctx.node_name} (`kubectl logs statefulset/{ctx.node_name}`)"
                    ),
                )
            book = rounds.RoundBook(
                self.name,
                key[1],
                members,
                max_samples={m.name: m.max_samples for m in (ctx.me, *ctx.peers)},
                total_rounds=ctx.spec.training.rounds,
                quorum=ctx.spec.round_policy.quorum,
            )
            self.follower = Follower(client, book)
            self.follower.start()
            self._follower_key = key
        return self.follower

    async def _drive_head(
        self,
        body: Mapping[str, Any],
        fed_spec: spec.FederationSpec,
        ctx: children.LocalParty,
        keys: keys_mod.PartyKeys,
        draft: Draft,
    ) -> Draft:
        status = body.get("status") or {}
        recorded_head = status.get("headId") or None
        follower = await self._client(ctx)
        if isinstance(follower, Problem):
            draft.phase = Phase.PROVISIONING if not recorded_head else draft.phase
            draft.message = follower.message
            draft.condition("Degraded", True, follower.reason, follower.message)
            return draft
        client = follower.client
        try:
            view = HeadView.from_api(await client.get_head())
        except errors.HeadError as exc:
            draft.message = f"GET /head failed on {ctx.api_url}: {exc}"
            draft.condition("Degraded", True, "NodeUnreachable", draft.message)
            return draft
        draft.fields["headState"] = _head_state(view)
        self._clear_degraded(draft, ("NodeUnreachable",))

        if view.tag == "Idle" and recorded_head:
            draft.phase, draft.message = (
                Phase.CLOSED,
                f"head {recorded_head} is finalized; funds are back on L1",
            )
            draft.fields["headState"] = spec.HeadState.FINAL.value
            draft.condition("HeadOpen", False, "HeadFinalized", draft.message)
            return draft
        offender = _over_offence_limit(follower.book, fed_spec)
        if offender is not None and not fed_spec.close and view.tag != "Closed":
            draft.events.append(("Warning", "ClosingForOffences", offender))
        if fed_spec.close or view.tag == "Closed" or offender is not None:
            return await self._close(client, recorded_head or view.head_id, draft)
        if view.tag in ("Idle", "Initial"):
            return await self._open(client, ctx, view, draft)
        if view.tag != "Open":
            draft.message = f"the node reports head state {view.tag}"
            return draft

        head_id = view.head_id or follower.head_id
        draft.fields["headId"] = head_id
        if not status.get("startTime"):
            draft.fields["startTime"] = conditions.now().isoformat().replace("+00:00", "Z")
        draft.condition("HeadOpen", True, "HeadIsOpen", f"head {head_id} is open")
        funded = await self._funding(client, ctx, keys, draft)
        if not funded:
            return draft
        await asyncio.to_thread(self._ensure_worker, ctx, draft)
        self._rounds(ctx, follower, draft)
        return draft

    async def _open(
        self, client: client_mod.HydraClient, ctx: children.LocalParty, view: HeadView, draft: Draft
    ) -> Draft:
        first = initiator([ctx.me, *ctx.peers])
        draft.phase = Phase.OPENING
        draft.condition("HeadOpen", False, "Opening", "the head is not open yet")
        if view.tag == "Initial":
            draft.message = f"head {view.head_id} is initialising: waiting for every party's node"
        elif first == ctx.party.name:
            if time.monotonic() - self._init_sent_at > INIT_RETRY_SECONDS:
                await client.send(messages.Init())
                self._init_sent_at = time.monotonic()
                draft.events.append(("Normal", "InitSent", "sent Init: this party opens the head"))
            draft.message = "sent Init (this party is the first in sorted order); waiting for HeadIsOpen"
        else:
            draft.message = f"waiting for {first} (the first party in sorted order) to send Init"
        return draft

    async def _funding(
        self, client: client_mod.HydraClient, ctx: children.LocalParty, keys: keys_mod.PartyKeys, draft: Draft
    ) -> bool:
        """Deposit our own funds once; True when every member has funds in the head."""
        utxo = await client.get_snapshot_utxo()
        funded = {str(out.get("address")) for out in utxo.values()}
        members = [ctx.me, *ctx.peers]
        waiting = [m.name for m in members if m.address not in funded]
        if not waiting:
            self._clear_degraded(draft, ("DepositFailed",))
            return True
        draft.phase = Phase.FUNDING
        if ctx.me.address not in funded:
            self._start_deposit(client, ctx, keys, draft)
        draft.message = f"waiting for the deposits of {', '.join(waiting)}"
        return False

    def _start_deposit(
        self, client: client_mod.HydraClient, ctx: children.LocalParty, keys: keys_mod.PartyKeys, draft: Draft
    ) -> None:
        task = self._deposit
        if task is not None and task.done():
            exc = task.exception() if not task.cancelled() else None
            self._deposit = task = None
            if exc is not None:
                message = (
                    f"the deposit of Party {ctx.party.name} failed: {exc}; fund its address "
                    f"{ctx.me.address} on L1 with at least head.depositLovelace "
                    f"({ctx.spec.head.deposit_lovelace} lovelace)"
                )
                draft.condition("Degraded", True, "DepositFailed", message)
                draft.events.append(("Warning", "DepositFailed", message))
        if task is None:
            self._deposit = asyncio.create_task(
                funding.commit_funds(
                    client,
                    keys,
                    ctx.spec.head.deposit_lovelace,
                    network=network_of(ctx.spec.head),
                    timeout=max(60.0, 3.0 * ctx.spec.head.deposit_period_seconds),
                )
            )

    def _ensure_worker(self, ctx: children.LocalParty, draft: Draft) -> None:
        """The worker Job, created once; recreated only when its config changed before it finished."""
        config_map = children.worker_config_map(ctx)
        digest = children.config_hash(config_map)
        name = names.worker(ctx.federation, ctx.party.name)
        job = self.kube.get("Job", self.namespace, name)
        if job is not None:
            current = job["metadata"].get("annotations", {}).get(names.CONFIG_HASH)
            finished = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in (job.get("status") or {}).get("conditions", [])
            )
            if current == digest or finished or job["metadata"].get("deletionTimestamp"):
                return
            self.kube.delete("Job", self.namespace, name)
            return  # created on a later step, once the old one is gone
        try:
            self.kube.create(children.worker_job(ctx, self.options.worker_image, digest))
        except KubeError as exc:
            if exc.status != 409:
                raise
        else:
            draft.events.append(("Normal", "WorkerCreated", f"created worker Job {name}"))

    def _rounds(self, ctx: children.LocalParty, follower: Follower, draft: Draft) -> None:
        book = follower.book
        total = ctx.spec.training.rounds
        complete = [r for r in range(1, total + 1) if book.is_complete(r)]
        completed = len(complete)
        current = min(completed + 1, total)
        labels = {"namespace": self.namespace, "federation": self.name}
        for round_no in complete:
            if round_no not in self._completed_seen:
                self._completed_seen.add(round_no)
                metrics.ROUNDS_COMPLETED.labels(**labels).inc()
                now = time.monotonic()
                if self._round_clock is not None:
                    metrics.ROUND_DURATION.labels(**labels).observe(now - self._round_clock)
                self._round_clock = now
                if round_no == max(complete):
                    draft.events.append(
                        (
                            "Normal",
                            "RoundCompleted",
                            f"round {round_no} of {total}: {', '.join(book.announced(round_no))} confirmed",
                        )
                    )
        if self._round_clock is None:
            self._round_clock = time.monotonic()
        while follower.latencies:
            metrics.CONFIRMATION_LATENCY.labels(**labels).observe(follower.latencies.pop())
        metrics.CURRENT_ROUND.labels(**labels).set(current if completed < total else total)

        draft.fields["currentRound"] = current
        draft.fields["completedRounds"] = completed
        draft.fields["progress"] = {"percentage": round(100 * completed / total)}
        records = []
        for round_no in range(max(1, current - 99), current + 1):
            announced = [
                e.announcement.party
                for e in sorted(book.rounds.get(round_no, {}).values(), key=lambda e: (e.snapshot, e.tx_id))
            ]
            if not announced and round_no > completed + 1:
                continue
            records.append(
                {
                    "round": round_no,
                    "phase": spec.RoundPhase.COMPLETED.value
                    if book.is_complete(round_no)
                    else spec.RoundPhase.ANNOUNCING.value,
                    "announced": announced,
                    "cutOff": round_no in book.cutoffs,
                    "ignored": [
                        {"party": i.party, "code": i.code}
                        for i in book.ignored
                        if i.round == round_no and i.party in book.members and i.code != "CutoffNotNeeded"
                    ][:64],
                }
            )
        draft.fields["rounds"] = records
        draft.fields["parties"] = self._progress(ctx, book)
        self._escrow(ctx, follower, draft.fields["parties"])
        self._flag_ignored(book, draft)
        if follower.last_snapshot is not None:
            snap = follower.last_snapshot
            draft.fields["lastSnapshot"] = {"number": snap.number, "txCount": len(snap.confirmed)}
        if completed >= total:
            draft.phase = Phase.COMPLETED
            draft.message = (
                f"all {total} rounds are complete; delete the Federation or set spec.close to close the head"
            )
            draft.condition("RoundInProgress", False, "Completed", draft.message)
            if "completionTime" not in draft.fields:
                draft.fields["completionTime"] = conditions.now().isoformat().replace("+00:00", "Z")
        else:
            draft.phase = Phase.TRAINING
            waiting = sorted(set(m.name for m in (ctx.me, *ctx.peers)) - set(book.announced(current)))
            draft.message = f"round {current} of {total}: waiting for {', '.join(waiting)}"
            draft.condition("RoundInProgress", True, "Announcing", draft.message)

    def _progress(self, ctx: children.LocalParty, book: rounds.RoundBook) -> list[Obj]:
        rows = []
        labels = {"namespace": self.namespace, "federation": self.name}
        for member in sorted((ctx.me, *ctx.peers), key=lambda m: m.name):
            last = max((r for r, entries in book.rounds.items() if member.name in entries), default=None)
            row: Obj = {"name": member.name, "local": member.name == ctx.party.name, "ready": True}
            if last is not None:
                entry = book.rounds[last][member.name]
                ann = entry.announcement
                row.update(
                    lastAnnouncedRound=last,
                    phase=spec.PartyPhase.ANNOUNCED.value,
                    update={
                        "round": last,
                        "uri": ann.uri,
                        "sha256": ann.sha256,
                        "samples": ann.samples,
                        "txId": entry.tx_id,
                    },
                    metrics=dict(list(ann.metrics.items())[:32]),
                )
                if "accuracy" in ann.metrics:
                    metrics.PARTY_ACCURACY.labels(**labels, party=member.name).set(ann.metrics["accuracy"])
            rows.append(row)
        return rows

    def _escrow(self, ctx: children.LocalParty, follower: Follower, rows: list[Obj]) -> None:
        """Each party's escrow state from the confirmed txs (spec.escrow.enabled)."""
        if not ctx.spec.escrow.enabled:
            return
        try:
            states = escrow_progress(self.name, ctx.spec.escrow, (ctx.me, *ctx.peers), follower.confirmed)
        except errors.ConfigError as exc:
            log.warning("federation %s/%s: escrow state not computed: %s", self.namespace, self.name, exc)
            return
        for row in rows:
            if row["name"] in states:
                row["escrow"] = states[row["name"]]

    def _flag_ignored(self, book: rounds.RoundBook, draft: Draft) -> None:
        labels = {"namespace": self.namespace, "federation": self.name}
        for ignored in book.ignored[self._ignored_seen :]:
            metrics.IGNORED_ANNOUNCEMENTS.labels(**labels, reason=ignored.code).inc()
            if ignored.code == "SpecMismatch":
                draft.events.append(
                    (
                        "Warning",
                        "SpecMismatch",
                        f"party {ignored.party} round {ignored.round}: {ignored.reason}; "
                        "its update is not aggregated",
                    )
                )
            elif ignored.offence and ignored.party in book.members:
                metrics.PARTY_OFFENCES.labels(**labels, party=ignored.party, code=ignored.code).inc()
                draft.events.append(
                    (
                        "Warning",
                        "PeerOffence",
                        f"party {ignored.party} round {ignored.round} ({ignored.code}): {ignored.reason}; "
                        "every party ignores it",
                    )
                )
        self._ignored_seen = len(book.ignored)
        offenders = book.offences()
        if offenders:
            draft.condition(
                "PeerOffences",
                True,
                "PeerOffence",
                "; ".join(
                    f"{party}: {', '.join(f'round {i.round} {i.code}' for i in found[-5:])}"
                    for party, found in sorted(offenders.items())
                )
                + " (ignored by every party; updates failing the sha256 or tensor checks are flagged "
                "by the workers: see their logs)",
            )
        mismatched = sorted({i.party for i in book.ignored if i.code == "SpecMismatch"})
        if mismatched:
            draft.condition(
                "Degraded",
                True,
                "SpecMismatch",
                f"{', '.join(mismatched)} announced updates for another spec (training, roundPolicy or "
                "storage differ from ours); they are not aggregated: make every organisation's "
                "Federation spec the same",
            )

    async def _close(self, client: client_mod.HydraClient, head_id: str | None, draft: Draft) -> Draft:
        step = await close_step(client, head_id)
        if step.done:
            draft.phase, draft.message = (
                Phase.CLOSED,
                f"head {head_id or ''} is finalized; funds are back on L1",
            )
            draft.fields["headState"] = spec.HeadState.FINAL.value
            draft.condition("HeadOpen", False, "HeadFinalized", draft.message)
        else:
            draft.phase, draft.message = Phase.CLOSING, f"closing the head: waiting for {step.waiting_for}"
            draft.condition("HeadOpen", False, "Closing", draft.message)
        return draft

    # ------------------------------------------------------------------ status
    def _clear_degraded(self, draft: Draft, reasons: tuple[str, ...]) -> None:
        current = next((c for c in draft.conditions if c.type == "Degraded"), None)
        if current is not None and current.status == spec.ConditionStatus.TRUE and current.reason in reasons:
            draft.condition("Degraded", False, "AsExpected", "")

    def _ref(self) -> events.ObjectRef:
        return events.ObjectRef("Federation", self.namespace, self.name)

    async def _write(self, body: Mapping[str, Any], draft: Draft) -> None:
        status = dict(draft.fields)
        status.update(
            phase=draft.phase.value,
            message=draft.message[:4096],
            observedGeneration=draft.generation,
            conditions=[spec.to_wire(c) for c in draft.conditions],
        )
        wire = spec.to_wire(spec.FederationStatus.model_validate(status))
        previous = body.get("status") or {}
        reported = (draft.phase.value, draft.message)
        # Once per state, and not again for the state a restarted operator finds in status.
        if reported not in (self._reported, (previous.get("phase"), previous.get("message"))):
            parties_ready = conditions.status_of(draft.conditions, "PartiesReady")
            warn = draft.phase == Phase.FAILED or parties_ready == spec.ConditionStatus.FALSE
            draft.events.append(("Warning" if warn else "Normal", draft.phase.value, draft.message))
        self._reported = reported
        if draft.events:
            await asyncio.to_thread(self._post, draft.events)
        metrics.set_state(metrics.PHASE, metrics.PHASES, draft.phase.value, self.namespace, self.name)
        metrics.set_state(
            metrics.HEAD_STATE, metrics.HEAD_STATES, draft.fields.get("headState"), self.namespace, self.name
        )
        if wire == self._last_wire:
            return
        await asyncio.to_thread(self.kube.patch_status, "Federation", self.namespace, self.name, wire)
        self._last_wire = wire

    def _post(self, posts: list[tuple[str, str, str]]) -> None:
        for type_, reason, message in posts:
            events.post(self.kube, self._ref(), type_, reason, message)

    def _write_local_party(self, party: PartyObject, me: Member, key_secret: str) -> None:
        wanted = {
            "phase": spec.PartyPhase.READY.value,
            "hydraVkey": me.hydra_vkey,
            "cardanoVkey": me.cardano_vkey,
            "address": me.address,
            "keySecretName": key_secret,
        }
        if any(party.status.get(k) != v for k, v in wanted.items()):
            self.kube.patch_status("Party", party.namespace, party.name, wanted)

    def _write_remote_party(self, party: PartyObject, network: keys_mod.NetworkName) -> None:
        member = remote_member(party, network)
        wanted = {"phase": spec.PartyPhase.READY.value, "address": member.address}
        if any(party.status.get(k) != v for k, v in wanted.items()):
            self.kube.patch_status("Party", party.namespace, party.name, wanted)

    async def stop(self) -> None:
        if self._deposit is not None:
            self._deposit.cancel()
        if self.follower is not None:
            await self.follower.stop()
            self.follower = None


def escrow_progress(
    fed: str, escrow_spec: spec.EscrowSpec, members: Sequence[Member], confirmed: Sequence[Mapping[str, Any]]
) -> dict[str, Obj]:
    """Member name -> its ``EscrowProgress`` status object, read from the confirmed txs."""
    terms = escrow.terms_from_spec(
        fed, [escrow.Member.parse(m.name, m.key_hash, m.address) for m in members], escrow_spec
    )
    out: dict[str, Obj] = {}
    for name, state in escrow.escrow_states(terms, confirmed).items():
        fields = (
            ("state", state.state),
            ("txId", state.tx_id),
            ("round", state.round),
            ("reason", state.reason),
        )
        out[name] = {k: v for k, v in fields if v is not None}
    return out


def _node_problems(fed: str, fed_spec: spec.FederationSpec, local: PartyObject) -> list[Problem]:
    if fed_spec.head.network != "devnet" or local.spec.node_api_url:
        return []
    return [
        Problem(
            "NoDevnetNode",
            f"Federation {fed} runs on head.network devnet, which has no real hydra-node: set Party "
            f"{local.name} spec.nodeApiUrl to a devnet node (`hydrafed devnet`) or create the Federation "
            "on preview, preprod or mainnet",
        )
    ]


def _head_state(view: HeadView) -> str:
    if view.tag == "Initial":
        return spec.HeadState.INITIALIZING.value
    if view.tag == "Closed":
        return (spec.HeadState.FANOUT_POSSIBLE if view.ready_to_fanout else spec.HeadState.CLOSED).value
    if view.tag in ("Idle", "Open"):
        return view.tag
    return spec.HeadState.IDLE.value


def _over_offence_limit(book: rounds.RoundBook, fed_spec: spec.FederationSpec) -> str | None:
    """Why the head must close under ``roundPolicy.closeAfterOffences``, or None."""
    limit = fed_spec.round_policy.close_after_offences
    if limit is None:
        return None
    for party, found in sorted(book.offences().items()):
        if len(found) >= limit:
            codes = ", ".join(f"round {i.round} {i.code}" for i in found[:5])
            return (
                f"{party} has {len(found)} offences ({codes}); roundPolicy.closeAfterOffences is {limit}: "
                "closing the head"
            )
    return None
