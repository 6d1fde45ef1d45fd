"""The emulated head shared by all devnet nodes: state machine, ledger, L1 and event logs.

One :class:`Head` serves N node endpoints. Every input is processed once; timed outputs are
appended to each node's own event log (own ``seq``), persisted as JSON lines and pushed to that
node's clients. The head state is event-sourced: a restarted devnet rebuilds it by replaying
node 0's log, as hydra-node does from its persistence directory. This module knows nothing of
HTTP; :mod:`hydrafed.hydra.devnet.server` puts it on sockets. It is the head itself, emulated;
the head lifecycle driver that simulate and the operator use is a client of it (or of a real head).

Time: the emulated L1 makes one block per slot of ``SLOT_LENGTH`` seconds from a system start
kept in ``chain.json``; the head's current slot, like hydra-node's, is the slot of the last L1
block, so ledger validity intervals and native-script time locks are judged against it (in the
head and on the emulated L1 alike). Tests move the chain on with :meth:`Head.advance_slots`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pycardano

from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import ledger, limits, messages
from hydrafed.hydra import utxo as utxo_mod

log = logging.getLogger(__name__)

NODE_VERSION = "2.3.0-hydrafed-devnet"
JSON = dict[str, Any]

#: Seconds per slot of the emulated L1 (mainnet's and preprod's length: one slot per second).
SLOT_LENGTH = 1.0

#: The zero-fee parameters hydra-node's demo uses in a head (fees 0, min-ADA still applies).
DEFAULT_PROTOCOL_PARAMETERS: JSON = {
    "txFeeFixed": 0,
    "txFeePerByte": 0,
    "utxoCostPerByte": 4310,
    "executionUnitPrices": {"priceMemory": 0, "priceSteps": 0},
    "maxTxExecutionUnits": {"memory": 14000000, "steps": 10000000000},
    "maxTxSize": 10250,
    "maxValueSize": 5000,
    "collateralPercentage": 150,
    "maxCollateralInputs": 3,
    "minFeeRefScriptCostPerByte": 0,
    "protocolVersion": {"major": 10, "minor": 0},
    "costModels": {},
}


def now_iso(at: dt.datetime | None = None) -> str:
    """UTCTime as the node writes it (ISO-8601, Z suffix)."""
    return (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def _object_text(fields: list[tuple[str, str]]) -> str:
    """A JSON object from already-serialised values: ``json.dumps`` of the dict, to the byte."""
    return "{" + ", ".join(f"{json.dumps(key)}: {value}" for key, value in fields) + "}"


class Frame:
    """One output as a node's clients get it, serialised at most once in each of its two forms.

    ``text`` is the whole message; ``lean`` leaves out a SnapshotConfirmed's UTxO, which a
    client asks for with ``snapshot-utxo=no`` (every worker does). The head serialises the
    payload once for all nodes (``Head.emit``) and each node only splices in its ``stamp``
    (seq and timestamp) when a client wants that form: N nodes with N clients do not encode a
    snapshot N^2 times, and a form no client asks for is never built.
    """

    __slots__ = ("_body", "_lean", "_lean_body", "_stamp", "_text", "msg")

    def __init__(self, msg: JSON, body: str | None = None, lean: str | None = None, stamp: str = "") -> None:
        self.msg = msg
        self._body, self._lean_body, self._stamp = body, lean, stamp
        self._text: str | None = None
        self._lean: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self.msg) if self._body is None else self._body[:-1] + self._stamp + "}"
        return self._text

    @property
    def lean(self) -> str:
        if self.msg.get("tag") != "SnapshotConfirmed":
            return self.text
        if self._lean is None:
            if self._lean_body is not None:
                self._lean = self._lean_body[:-1] + self._stamp + "}"
            else:
                snapshot = {k: v for k, v in self.msg["snapshot"].items() if k != "utxo"}
                self._lean = json.dumps({**self.msg, "snapshot": snapshot})
        return self._lean


Sink = Callable[[Frame], None]


def _write_all(fh: BinaryIO, parts: list[memoryview | bytes]) -> None:
    """Write ``parts`` in order to an unbuffered file, as few system calls as the kernel allows."""
    views = [memoryview(part) for part in parts]
    while views:
        written = os.writev(fh.fileno(), views)
        if written <= 0:
            raise OSError(f"{fh.name}: the event log takes no more bytes")
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views:
            views[0] = views[0][written:]


def _stamp(seq: int, stamp: str) -> str:
    """A node's seq and timestamp as the last members of a serialised object."""
    return f', "seq": {seq}, "timestamp": "{stamp}"'


@dataclasses.dataclass
class NodeLog:
    """One node's persisted timed outputs, its seq counter and its live listeners."""

    index: int
    path: Path
    history: list[JSON] = dataclasses.field(default_factory=list)
    next_seq: int = 0
    sinks: set[Sink] = dataclasses.field(default_factory=set)

    def load(self) -> None:
        if self.path.exists():
            with self.path.open() as fh:
                self.history = [json.loads(line) for line in fh if line.strip()]
            if self.history:
                self.next_seq = int(self.history[-1]["seq"]) + 1
        if self._watermark.exists():  # seqs given to live-only outputs after the last persisted one
            self.next_seq = max(self.next_seq, int(self._watermark.read_text() or 0))

    @property
    def _watermark(self) -> Path:
        return self.path.with_name("next-seq")

    def append_live(self, payload: JSON, body: str) -> None:
        """A timed output sent to the current clients but neither kept nor replayed.

        For outputs anyone with API access can cause for free (TxInvalid): history and the
        event log then grow only with valid traffic. The seq is still unique: the counter's
        high-water mark is saved, so a restarted node never hands the same seq out twice.
        """
        seq, stamp = self.next_seq, now_iso()
        self.next_seq += 1
        self._watermark.write_text(str(self.next_seq))
        msg = {**payload, "seq": seq, "timestamp": stamp}
        frame = Frame(msg, body, None, _stamp(seq, stamp))
        for sink in list(self.sinks):
            sink(frame)

    def append(
        self, payload: JSON, body: str, fh: BinaryIO, lean: str | None = None, encoded: bytes | None = None
    ) -> None:
        """Stamp seq and timestamp onto a payload serialised once for all nodes, persist, send.

        ``lean`` is the payload serialised without a snapshot's UTxO (``Frame.lean``), if known;
        ``encoded`` is ``body`` as bytes, encoded once for all nodes (``fh`` is unbuffered).
        """
        seq, stamp = self.next_seq, now_iso()
        self.next_seq += 1
        msg = {**payload, "seq": seq, "timestamp": stamp}
        self.history.append(msg)
        stamped = _stamp(seq, stamp)
        frame = Frame(msg, body, lean, stamped)
        data = memoryview(body.encode() if encoded is None else encoded)
        # One system call from the shared bytes: a stamped, encoded copy of a 200 KB snapshot
        # per node cost 4x the write itself at N=29 (and every node logs every snapshot).
        _write_all(fh, [data[:-1], (stamped + "}\n").encode()])
        for sink in list(self.sinks):
            sink(frame)

    def broadcast(self, msg: JSON) -> None:
        frame = Frame(msg)
        for sink in list(self.sinks):
            sink(frame)


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """Head parameters every node shares."""

    parties: tuple[keys_mod.PartyKeys, ...]
    network: pycardano.Network
    contestation_period: float
    deposit_activation: float
    deposit_period: float
    protocol_parameters: JSON


class Head:
    """The single emulated head behind all node endpoints."""

    def __init__(self, config: HeadConfig, state_dir: Path) -> None:
        self.config = config
        self.params = ledger.LedgerParams.from_json(config.protocol_parameters)
        self.state_dir = state_dir
        self.status = "Idle"
        self.head_id: str | None = None
        self.ever_opened = False
        self.utxo: utxo_mod.UTxO = {}
        self._utxo_json: dict[str, JSON] = {}  # JSON mirror of self.utxo, kept in step
        self._utxo_text: str | None = None  # its serialised form, until the next change
        self.l1: utxo_mod.UTxO = {}
        self.snapshot_number = 0
        self.version = 0
        self.last_snapshot: JSON | None = None
        self.contestation_deadline: dt.datetime | None = None
        self.pending_txs: list[JSON] = []
        self.drafted_deposits: dict[str, JSON] = {}
        self.deposits: dict[str, JSON] = {}
        self.nodes = [
            NodeLog(i, state_dir / "nodes" / str(i) / "events.jsonl") for i in range(len(config.parties))
        ]
        self._files: list[BinaryIO] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._snapshot_scheduled = False
        self._settled: asyncio.Event | None = None
        self.system_start = dt.datetime.now(dt.UTC)
        self.slot_offset = 0  # slots added by advance_slots, persisted in chain.json
        self._confirmed_json: dict[str, JSON] = {}  # UTxO of the last confirmed snapshot
        self.committed_assets: dict[ledger.AssetKey, int] = {}  # what deposits brought in
        #: Parties whose emulated node withholds its snapshot signature (AckSn): no snapshot
        #: is confirmed while this is non-empty, as in a real head.
        self.withholding: set[int] = set()

    # ------------------------------------------------------------------ lifecycle
    def open_logs(self) -> None:
        """Load persisted logs, rebuild the state from node 0's, and open the logs for append."""
        for node in self.nodes:
            node.path.parent.mkdir(parents=True, exist_ok=True)
            node.load()
        l1_path = self.state_dir / "l1.json"
        if l1_path.exists():
            self.l1 = utxo_mod.utxo_from_json(json.loads(l1_path.read_text()))
        self._load_chain()
        for msg in self.nodes[0].history:
            self._replay(msg)
        self._files = [node.path.open("ab", buffering=0) for node in self.nodes]

    def resume_timers(self) -> None:
        """Re-arm the timers a restart interrupted (deposits, contestation deadline)."""
        for tx_id, dep in self.deposits.items():
            self._schedule_deposit(tx_id, dep["activated"])
        if self.status == "Closed" and self.contestation_deadline is not None:
            self._schedule_fanout()

    def close_logs(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for fh in self._files:
            fh.close()
        self._files = []

    def fund_l1(self, address: pycardano.Address, lovelace: int, seed: str) -> None:
        """Put a genesis output on the emulated L1 (only when the state dir is new)."""
        tx_id = blake2b256(f"hydrafed-devnet-genesis:{seed}".encode()).hex()
        self.l1[utxo_mod.txin_key(tx_id, 0)] = pycardano.TransactionOutput(address, lovelace)
        self._save_l1()

    def _load_chain(self) -> None:
        """The emulated chain's clock: its system start and the slots tests added (chain.json)."""
        path = self.state_dir / "chain.json"
        if path.exists():
            data = json.loads(path.read_text())
            self.system_start = dt.datetime.strptime(data["systemStart"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=dt.UTC
            )
            self.slot_offset = int(data.get("slotOffset", 0))
        else:
            self._save_chain()

    def _save_chain(self) -> None:
        data = {
            "systemStart": now_iso(self.system_start),
            "slotLength": SLOT_LENGTH,
            "slotOffset": self.slot_offset,
        }
        path = self.state_dir / "chain.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(path)

    def current_slot(self) -> int:
        """The slot of the emulated L1's latest block: the head's "now" for validity intervals."""
        elapsed = (dt.datetime.now(dt.UTC) - self.system_start).total_seconds()
        return self.slot_offset + int(elapsed // SLOT_LENGTH)

    def advance_slots(self, slots: int) -> int:
        """Move the emulated chain ``slots`` ahead (tests of time locks); returns the new slot."""
        if slots < 0:
            raise ValueError("slots: the chain only moves forward")
        self.slot_offset += slots
        self._save_chain()
        return self.current_slot()

    def _save_l1(self) -> None:
        path = self.state_dir / "l1.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(utxo_mod.utxo_to_json(self.l1)))
        tmp.replace(path)

    # ------------------------------------------------------------------ event log
    def emit(self, payload: JSON, body: str | None = None, lean: str | None = None) -> None:
        """A timed output on every node; ``body`` (and ``lean``, ``Frame.lean``) if already serialised."""
        self._replay(payload, live=True)
        body = json.dumps(payload) if body is None else body
        encoded = body.encode()
        for node, fh in zip(self.nodes, self._files, strict=True):
            node.append(payload, body, fh, lean, encoded)

    def emit_live(self, payload: JSON) -> None:
        """A timed output on every node that changes no state and is not replayed (TxInvalid)."""
        body = json.dumps(payload)
        for node in self.nodes:
            node.append_live(payload, body)

    def _replay(self, msg: JSON, live: bool = False) -> None:
        """Apply one timed output to the head state (live and on restart)."""
        tag = msg.get("tag")
        if tag == "HeadIsOpen":
            self.status, self.head_id, self.ever_opened = "Open", msg["headId"], True
            self.utxo, self.snapshot_number, self.version, self.last_snapshot = {}, 0, 0, None
            self._utxo_json, self._utxo_text = {}, None
            self._confirmed_json, self.committed_assets = {}, {}
        elif tag == "SnapshotConfirmed":
            snap = msg["snapshot"]
            self.snapshot_number = snap["number"]
            self.version = snap["version"]
            if not live:  # live, self.utxo already is this snapshot's UTxO
                self.utxo = utxo_mod.utxo_from_json(snap["utxo"])
                self._utxo_json, self._utxo_text = dict(snap["utxo"]), None
            self._confirmed_json = dict(snap["utxo"])
            self.last_snapshot = msg
        elif tag == "CommitRecorded":
            self.deposits[msg["pendingDeposit"]] = {
                "utxo": msg["utxoToCommit"],
                "deadline": msg["deadline"],
                "activated": False,
            }
        elif tag == "DepositActivated":
            if msg["depositTxId"] in self.deposits:
                self.deposits[msg["depositTxId"]]["activated"] = True
        elif tag == "CommitFinalized":
            dep = self.deposits.pop(msg["depositTxId"], None)
            if not self.deposits and self._settled is not None:
                self._settled.set()
            if dep is not None:
                entering = utxo_mod.utxo_from_json(dep["utxo"])
                self.utxo.update(entering)
                self._utxo_json.update(dep["utxo"])
                self._confirmed_json.update(dep["utxo"])
                for key, q in _assets(entering.values()).items():
                    self.committed_assets[key] = self.committed_assets.get(key, 0) + q
                self._utxo_text = None
                self.version += 1
        elif tag == "HeadIsClosed":
            self.status = "Closed"
            self.contestation_deadline = dt.datetime.strptime(
                msg["contestationDeadline"], "%Y-%m-%dT%H:%M:%S.%fZ"
            ).replace(tzinfo=dt.UTC)
        elif tag == "ReadyToFanout":
            self.status = "FanoutPossible"
        elif tag == "HeadIsFinalized":
            self.status, self.head_id = "Idle", None
            self.deposits.clear()

    def send_local(self, node: int, payload: JSON) -> None:
        """A non-timed output (no seq, never persisted) to one node's clients."""
        self.nodes[node].broadcast(payload)

    # ------------------------------------------------------------------ views
    def party_json(self, i: int) -> JSON:
        return {"vkey": self.config.parties[i].hydra_vkey_hex}

    def head_state(self) -> JSON:
        """The HeadState of GET /head and CommandFailed.state (shaped as api.yaml's HeadState)."""
        if self.status == "Idle":
            return {"tag": "Idle", "contents": {"chainState": {}}}
        common: JSON = {
            "parameters": {
                "contestationPeriod": self.config.contestation_period,
                "depositPeriod": self.config.deposit_period,
                "parties": [self.party_json(i) for i in range(len(self.config.parties))],
            },
            "chainState": {},
            "headId": self.head_id,
            "headSeed": (self.head_id or "")[:32],
        }
        if self.status == "Open":
            seen: JSON = (
                {"tag": "LastSeenSnapshot", "lastSeen": self.snapshot_number}
                if self.snapshot_number
                else {"tag": "NoSeenSnapshot"}
            )
            common["coordinatedHeadState"] = {
                "localUTxO": self.utxo_json(),
                "localTxs": list(self.pending_txs),
                "allTxs": {},
                "confirmedSnapshot": self.confirmed_snapshot(),
                "seenSnapshot": seen,
                "currentDepositTxId": next(iter(self.deposits), None),
                "decommitTx": None,
                "version": self.version,
            }
            return {"tag": "Open", "contents": common}
        common.update(
            confirmedSnapshot=self.confirmed_snapshot(),
            contestationDeadline=now_iso(self.contestation_deadline),
            readyToFanoutSent=self.status == "FanoutPossible",
            version=self.version,
        )
        return {"tag": "Closed", "contents": common}

    def confirmed_snapshot(self) -> JSON:
        if self.last_snapshot is None:
            return {"tag": "InitialSnapshot", "headId": self.head_id}
        return {
            "tag": "ConfirmedSnapshot",
            "snapshot": self.last_snapshot["snapshot"],
            "signatures": self.last_snapshot["signatures"],
        }

    def utxo_json(self) -> JSON:
        return {key: self._utxo_json[key] for key in sorted(self._utxo_json)}

    def utxo_text(self) -> str:
        """``utxo_json()`` serialised, kept until the UTxO changes: every party reads it each round."""
        if self._utxo_text is None:
            self._utxo_text = json.dumps(self.utxo_json())
        return self._utxo_text

    def env(self, i: int) -> JSON:
        parties = self.config.parties
        return {
            "party": self.party_json(i),
            "otherParties": [self.party_json(j) for j in range(len(parties)) if j != i],
            "participants": [p.participant_id for p in parties],
            "contestationPeriod": max(1, round(self.config.contestation_period)),
            "depositPeriod": max(1, round(self.config.deposit_period)),
            "depositActivation": max(1, round(self.config.deposit_activation)),
            "unsyncedPeriod": 21600,
            "configuredPeers": "",
        }

    def greetings(self, i: int, snapshot_utxo: bool) -> JSON:
        msg: JSON = {
            "tag": "Greetings",
            "me": self.party_json(i),
            "headStatus": self.status,
            "hydraNodeVersion": NODE_VERSION,
            "env": self.env(i),
            "networkInfo": {"networkConnected": True, "peersInfo": {}},
            "chainSyncedStatus": "InSync",
            "currentSlot": self.current_slot(),
        }
        if self.status != "Idle":
            msg["hydraHeadId"] = self.head_id
            if snapshot_utxo:
                msg["snapshotUtxo"] = self.utxo_json()
        return msg

    # ------------------------------------------------------------------ inputs
    def handle_text(self, node: int, text: str) -> None:
        """One WebSocket frame from a client of ``node``."""
        try:
            data = json.loads(text)
            parsed = messages.parse_input(data)
        except (ValueError, RecursionError) as exc:  # json, pydantic; nesting deeper than the stack
            reason = limits.cut((str(exc).splitlines() or [type(exc).__name__])[0])
            self.send_local(node, {"tag": "InvalidInput", "reason": reason, "input": limits.cut(text)})
            return
        self.handle_input(node, parsed)

    def _command_failed(self, node: int, parsed: messages.ClientInput) -> None:
        self.send_local(
            node, {"tag": "CommandFailed", "clientInput": parsed.to_json(), "state": self.head_state()}
        )

    def handle_input(self, node: int, parsed: messages.ClientInput) -> None:
        """Dispatch a parsed client input according to the head state."""
        if isinstance(parsed, messages.Init) and self.status == "Idle":
            self.init()
        elif isinstance(parsed, messages.NewTx) and self.status == "Open":
            self.new_tx(parsed.transaction)
        elif isinstance(parsed, messages.Close | messages.SafeClose) and self.status == "Open":
            self.close()
        elif isinstance(parsed, messages.Fanout) and self.status == "FanoutPossible":
            self.fanout(node)
        else:
            self._command_failed(node, parsed)

    def init(self) -> None:
        seed = os.urandom(28).hex()
        self.emit(
            {
                "tag": "HeadIsOpen",
                "headId": seed,
                "parties": [self.party_json(i) for i in range(len(self.config.parties))],
            }
        )

    def new_tx(self, envelope: JSON) -> tuple[bool, str]:
        """Validate, apply and broadcast one tx; returns (valid, txId or reason)."""
        cbor_hex = envelope.get("cborHex")
        try:
            if not isinstance(cbor_hex, str):
                raise ledger.LedgerRuleError("DecoderFailure: transaction.cborHex is missing")
            claimed = envelope.get("txId")
            valid = ledger.validate_tx(
                cbor_hex,
                self.utxo,
                self.params,
                self.config.network,
                claimed if isinstance(claimed, str) else None,
                current_slot=self.current_slot(),
            )
        except ledger.LedgerRuleError as exc:
            # Bounded and not replayed: an invalid tx costs its sender's bytes, not the head's
            # UTxO (hydra-node sends its whole local UTxO here) times every node and client.
            reason = limits.cut(str(exc))
            self.emit_live(
                {
                    "tag": "TxInvalid",
                    "headId": self.head_id,
                    "utxo": {},
                    "transaction": _shown_envelope(envelope),
                    "validationError": {"reason": reason},
                }
            )
            return False, reason
        ledger.apply_tx(self.utxo, valid)
        for key in valid.spent:
            del self._utxo_json[key]
        self._utxo_json.update({key: utxo_mod.txout_to_json(out) for key, out in valid.produced.items()})
        self._utxo_text = None
        self.pending_txs.append(valid.envelope())
        self.emit({"tag": "TxValid", "headId": self.head_id, "transactionId": valid.tx_id})
        if not self._snapshot_scheduled:
            self._snapshot_scheduled = True
            asyncio.get_running_loop().call_soon(self._snapshot)
        return True, valid.tx_id

    def _sign_snapshot(self, snapshot_text: str) -> JSON:
        """Every party's Hydra key signs the snapshot (a devnet-specific message: hash of its JSON)."""
        message = blake2b256(snapshot_text.encode())
        return {"multiSignature": [p.sign_hydra(message).hex() for p in self.config.parties]}

    def withhold_snapshot_signature(self, party: int, withhold: bool = True) -> None:
        """Emulate party ``party``'s node refusing (or again sending) its snapshot signature.

        Every snapshot needs every party's signature, so while any party withholds, txs are
        still validated (TxValid) but never confirmed, and Close takes the last confirmed
        snapshot: the only way on is closing the head and acting on L1 after fanout.
        """
        if withhold:
            self.withholding.add(party)
            return
        self.withholding.discard(party)
        if not self.withholding and self.pending_txs and self.status == "Open":
            self._snapshot()

    def _snapshot(self, utxo_to_commit: JSON | None = None) -> None:
        self._snapshot_scheduled = False
        if self.status != "Open" or (not self.pending_txs and utxo_to_commit is None) or self.withholding:
            return
        confirmed, self.pending_txs = self.pending_txs, []
        snapshot = {
            "headId": self.head_id,
            "version": self.version,
            "number": self.snapshot_number + 1,
            "confirmed": confirmed,
            "utxo": self.utxo_json(),
            "utxoToCommit": utxo_to_commit,
            "utxoToDecommit": None,
        }
        # Serialised once from its parts, the UTxO's text shared with GET /snapshot/utxo: the
        # same text is signed, sent and logged on every node, and its lean form (no UTxO, what
        # the workers read) costs only the small parts.
        parts = [(k, self.utxo_text() if k == "utxo" else json.dumps(v)) for k, v in snapshot.items()]
        snapshot_text = _object_text(parts)
        signatures = self._sign_snapshot(snapshot_text)
        head = [("tag", '"SnapshotConfirmed"'), ("headId", json.dumps(self.head_id))]
        tail = [("signatures", json.dumps(signatures))]
        lean = _object_text([*head, ("snapshot", _object_text([p for p in parts if p[0] != "utxo"])), *tail])
        self.emit(
            {
                "tag": "SnapshotConfirmed",
                "headId": self.head_id,
                "snapshot": snapshot,
                "signatures": signatures,
            },
            _object_text([*head, ("snapshot", snapshot_text), *tail]),
            lean,
        )

    def close(self) -> None:
        if self.pending_txs:  # never confirmed (a party withheld its signature): not closed with
            self.pending_txs = []
            self.utxo = utxo_mod.utxo_from_json(self._confirmed_json)
            self._utxo_json, self._utxo_text = dict(self._confirmed_json), None
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.config.contestation_period)
        self.emit(
            {
                "tag": "HeadIsClosed",
                "headId": self.head_id,
                "snapshotNumber": self.snapshot_number,
                "contestationDeadline": now_iso(deadline),
            }
        )
        self._schedule_fanout()

    def _schedule_fanout(self) -> None:
        assert self.contestation_deadline is not None
        delay = max(0.0, (self.contestation_deadline - dt.datetime.now(dt.UTC)).total_seconds())
        head_id = self.head_id

        def ready() -> None:
            if self.status == "Closed" and self.head_id == head_id:
                self.emit({"tag": "ReadyToFanout", "headId": head_id})

        self._timers.append(asyncio.get_running_loop().call_later(delay, ready))

    def net_mint(self) -> dict[ledger.AssetKey, int]:
        """Tokens minted (positive) or burned (negative) inside the head and not undone there.

        The head's L1 output holds exactly what deposits brought in, and a fanout never mints
        or burns, so the fanout can only balance when this is empty.
        """
        held = _assets(self.utxo.values())
        keys = set(held) | set(self.committed_assets)
        diff = {k: held.get(k, 0) - self.committed_assets.get(k, 0) for k in keys}
        return {k: q for k, q in sorted(diff.items()) if q}

    def fanout_refusal(self) -> str | None:
        """Why the fanout cannot succeed, or None."""
        minted = self.net_mint()
        if not minted:
            return None
        assets = ", ".join(f"{p.hex()}.{n.hex()} {q:+d}" for (p, n), q in minted.items())
        return (
            f"FanoutTx cannot balance: the head holds a net mint of {assets} that its L1 output "
            "does not have (a fanout never mints or burns); burn those tokens inside the head, and "
            "mint on L1 after the fanout instead"
        )

    def fanout(self, node: int = 0) -> None:
        refusal = self.fanout_refusal()
        if refusal is not None:
            log.warning("devnet: refusing Fanout: %s", refusal)
            self.send_local(
                node,
                {
                    "tag": "PostTxOnChainFailed",
                    "postChainTx": {
                        "tag": "FanoutTx",
                        "utxo": self.utxo_json(),
                        "utxoToCommit": None,
                        "utxoToDecommit": None,
                        "utxoForProof": self.utxo_json(),
                        "headSeed": (self.head_id or "")[:32],
                        "contestationDeadline": now_iso(self.contestation_deadline),
                    },
                    "postTxError": {"tag": "FailedToConstructFanoutTx"},
                    "devnetReason": refusal,
                },
            )
            return
        final = self.utxo_json()
        self.l1.update(self.utxo)
        self._save_l1()
        self.emit({"tag": "HeadIsFinalized", "headId": self.head_id, "finalizedUTxO": final})

    # ------------------------------------------------------------------ deposits (L1)
    def draft_deposit(self, utxo_to_commit: JSON) -> JSON:
        """POST /commit: an unsigned L1 tx that moves the given L1 outputs into the head."""
        if self.status != "Open":
            raise ledger.LedgerRuleError("Head is not open")
        if not utxo_to_commit:
            raise ledger.LedgerRuleError("FailedToConstructDepositTx: nothing to commit")
        inputs, outputs = [], []
        for key in sorted(utxo_to_commit):
            out = self.l1.get(key)
            if out is None:
                raise ledger.LedgerRuleError(f"FailedToConstructDepositTx: {key} is not an unspent L1 output")
            inputs.append(utxo_mod.parse_txin(key))
            outputs.append(out)
        body = pycardano.TransactionBody(inputs=inputs, outputs=outputs, fee=0)
        tx = pycardano.Transaction(body, pycardano.TransactionWitnessSet())
        tx_id = str(tx.id)
        self.drafted_deposits[tx_id] = {
            key: utxo_mod.txout_to_json(self.l1[key]) for key in sorted(utxo_to_commit)
        }
        return {"type": "Tx ConwayEra", "description": "", "cborHex": tx.to_cbor_hex(), "txId": tx_id}

    def submit_l1(self, envelope: JSON) -> str:
        """POST /cardano-transaction: check an L1 tx with the same rules and apply it."""
        cbor_hex = envelope.get("cborHex")
        if not isinstance(cbor_hex, str):
            raise ledger.LedgerRuleError("DecoderFailure: cborHex is missing")
        valid = ledger.validate_tx(
            cbor_hex, self.l1, self.params, self.config.network, current_slot=self.current_slot()
        )
        deposit = self.drafted_deposits.get(valid.tx_id)
        if deposit is not None and self.status != "Open":
            raise ledger.LedgerRuleError("Head is not open")  # refused before any L1 output is spent
        self.drafted_deposits.pop(valid.tx_id, None)
        for key in valid.spent:
            del self.l1[key]
        if deposit is None:
            self.l1.update(valid.produced)
        self._save_l1()
        if deposit is not None:
            self._record_deposit(valid.tx_id, deposit)
        return valid.tx_id

    def _record_deposit(self, tx_id: str, deposit: JSON) -> None:
        """A deposit was observed on L1: CommitRecorded now, activation after the configured delay."""
        period = self.config.deposit_activation + 2 * self.config.deposit_period
        deadline = now_iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=period))
        self.emit(
            {
                "tag": "CommitRecorded",
                "headId": self.head_id,
                "utxoToCommit": deposit,
                "pendingDeposit": tx_id,
                "deadline": deadline,
            }
        )
        self._schedule_deposit(tx_id, activated=False)

    async def wait_deposits_settled(self) -> None:
        """Return once no deposit is pending."""
        if self.deposits:
            self._settled = asyncio.Event()
            await self._settled.wait()

    def open_with_l1_funds(self) -> None:
        """Offline-mode start: Init, then every L1 output enters the head as one simulated deposit."""
        self.init()
        deposit = utxo_mod.utxo_to_json(self.l1)
        self.l1.clear()
        self._save_l1()
        if deposit:
            tx_id = blake2b256(("hydrafed-devnet-initial-utxo:" + ",".join(sorted(deposit))).encode()).hex()
            self._record_deposit(tx_id, deposit)

    def _schedule_deposit(self, tx_id: str, activated: bool) -> None:
        delay = 0.0 if activated else self.config.deposit_activation

        def activate() -> None:
            dep = self.deposits.get(tx_id)
            if dep is None or self.status != "Open" or self.withholding:
                return  # a withheld signature blocks the deposit's snapshot too
            if not dep["activated"]:
                self.emit(
                    {
                        "tag": "DepositActivated",
                        "headId": self.head_id,
                        "depositTxId": tx_id,
                        "deadline": dep["deadline"],
                        "chainTime": now_iso(),
                    }
                )
            self._snapshot(utxo_to_commit=dep["utxo"])
            self.emit({"tag": "CommitApproved", "headId": self.head_id, "utxoToCommit": dep["utxo"]})
            self.emit({"tag": "CommitFinalized", "headId": self.head_id, "depositTxId": tx_id})

        self._timers.append(asyncio.get_running_loop().call_later(delay, activate))


def _assets(outputs: Any) -> dict[ledger.AssetKey, int]:
    """Native assets summed over pycardano outputs (ADA left out)."""
    total: dict[ledger.AssetKey, int] = {}
    for out in outputs:
        amount = out.amount
        if isinstance(amount, pycardano.Value):
            for policy, named in amount.multi_asset.items():
                for name, q in named.items():
                    key = (bytes(policy.payload), bytes(name.payload))
                    total[key] = total.get(key, 0) + q
    return total


def _shown_envelope(envelope: JSON) -> JSON:
    """A rejected tx's envelope as TxInvalid shows it: the known string fields, each bounded."""
    shown: JSON = {"type": "Tx ConwayEra", "description": "", "cborHex": ""}
    for key, limit in (
        ("type", 64),
        ("description", 256),
        ("cborHex", 2 * limits.MAX_TX_BYTES),
        ("txId", 64),
    ):
        value = envelope.get(key)
        if isinstance(value, str):
            shown[key] = limits.cut(value, limit)
    return shown
