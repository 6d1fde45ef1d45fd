"""Typed models of the hydra-node 2.x API messages (api.yaml, master after 2.3.0).

Server outputs parse into one model per tag; an unknown tag becomes :class:`RawOutput` with
the whole object kept, so a newer node never crashes the client. Models allow extra fields for
the same reason. UTxO maps, head states and snapshots stay plain JSON (``dict``): callers turn
them into pycardano objects with :mod:`hydrafed.hydra.utxo` when they need to.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic
from pydantic.alias_generators import to_camel

JSON = dict[str, Any]


class _Model(pydantic.BaseModel):
    # Wire names are the camelCase of the field names; only "...UTxO" fields (to_camel would
    # give "...Utxo") declare an explicit alias.
    model_config = pydantic.ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, alias_generator=to_camel
    )

    def to_json(self) -> JSON:
        """The wire form of this message."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- client inputs
class ClientInput(_Model):
    """Base of every client input."""

    tag: str


class Init(ClientInput):
    tag: Literal["Init"] = "Init"


class NewTx(ClientInput):
    tag: Literal["NewTx"] = "NewTx"
    transaction: JSON


class Recover(ClientInput):
    tag: Literal["Recover"] = "Recover"
    recover_tx_id: str


class Decommit(ClientInput):
    tag: Literal["Decommit"] = "Decommit"
    decommit_tx: JSON


class Close(ClientInput):
    tag: Literal["Close"] = "Close"


class SafeClose(ClientInput):
    tag: Literal["SafeClose"] = "SafeClose"


class Contest(ClientInput):
    tag: Literal["Contest"] = "Contest"


class Fanout(ClientInput):
    tag: Literal["Fanout"] = "Fanout"


class PartialFanout(ClientInput):
    tag: Literal["PartialFanout"] = "PartialFanout"
    utxo_to_fanout: JSON


class SideLoadSnapshot(ClientInput):
    tag: Literal["SideLoadSnapshot"] = "SideLoadSnapshot"
    snapshot: JSON


CLIENT_INPUTS: dict[str, type[ClientInput]] = {
    cls.model_fields["tag"].default: cls
    for cls in (
        Init,
        NewTx,
        Recover,
        Decommit,
        Close,
        SafeClose,
        Contest,
        Fanout,
        PartialFanout,
        SideLoadSnapshot,
    )
}


def parse_input(data: Any) -> ClientInput:
    """Parse one client input; raises ``pydantic.ValidationError`` or ``ValueError``."""
    if not isinstance(data, dict) or not isinstance(data.get("tag"), str):
        raise ValueError("expected a JSON object with a string 'tag'")
    cls = CLIENT_INPUTS.get(data["tag"])
    if cls is None:
        raise ValueError(f"unknown tag {data['tag']!r}; expected one of {sorted(CLIENT_INPUTS)}")
    return cls.model_validate(data)


# --------------------------------------------------------------------------- server outputs
class ServerOutput(_Model):
    """Base of every server output; ``seq``/``timestamp`` only on timed outputs."""

    tag: str
    seq: int | None = None
    timestamp: str | None = None
    timed: ClassVar[bool] = True


class RawOutput(ServerOutput):
    """An output whose tag this client does not know; all fields kept as extras."""


class Party(_Model):
    vkey: str


class Greetings(ServerOutput):
    tag: Literal["Greetings"] = "Greetings"
    timed: ClassVar[bool] = False
    me: Party
    head_status: str
    hydra_head_id: str | None = None
    snapshot_utxo: JSON | None = None
    hydra_node_version: str
    env: JSON | None = pydantic.Field(default=None, repr=False)
    network_info: JSON | None = None

    def __repr__(self) -> str:
        # env may hold the node's signing key (hydra-node 1.0-2.1): never print it.
        return (
            f"Greetings(me={self.me.vkey}, headStatus={self.head_status}, version={self.hydra_node_version})"
        )

    __str__ = __repr__


class NetworkConnected(ServerOutput):
    tag: Literal["NetworkConnected"] = "NetworkConnected"


class NetworkDisconnected(ServerOutput):
    tag: Literal["NetworkDisconnected"] = "NetworkDisconnected"


class PeerConnected(ServerOutput):
    tag: Literal["PeerConnected"] = "PeerConnected"
    peer: Any


class PeerDisconnected(ServerOutput):
    tag: Literal["PeerDisconnected"] = "PeerDisconnected"
    peer: Any


class NetworkVersionMismatch(ServerOutput):
    tag: Literal["NetworkVersionMismatch"] = "NetworkVersionMismatch"
    our_version: Any = None
    their_version: Any = None


class NetworkClusterIDMismatch(ServerOutput):
    tag: Literal["NetworkClusterIDMismatch"] = "NetworkClusterIDMismatch"
    cluster_peers: Any = None
    misconfigured_peers: Any = None


class HeadIsOpen(ServerOutput):
    tag: Literal["HeadIsOpen"] = "HeadIsOpen"
    head_id: str
    parties: list[Party] = []


class HeadIsClosed(ServerOutput):
    tag: Literal["HeadIsClosed"] = "HeadIsClosed"
    head_id: str
    snapshot_number: int
    contestation_deadline: str


class HeadIsContested(HeadIsClosed):
    tag: Literal["HeadIsContested"] = "HeadIsContested"  # type: ignore[assignment]


class ReadyToFanout(ServerOutput):
    tag: Literal["ReadyToFanout"] = "ReadyToFanout"
    head_id: str


class HeadPartiallyFannedOut(ServerOutput):
    tag: Literal["HeadPartiallyFannedOut"] = "HeadPartiallyFannedOut"
    head_id: str
    distributed_utxo: JSON = pydantic.Field(alias="distributedUTxO")
    remaining_utxo: JSON = pydantic.Field(alias="remainingUTxO")


class HeadIsFinalized(ServerOutput):
    tag: Literal["HeadIsFinalized"] = "HeadIsFinalized"
    head_id: str
    finalized_utxo: JSON = pydantic.Field(alias="finalizedUTxO")


class TxValid(ServerOutput):
    tag: Literal["TxValid"] = "TxValid"
    head_id: str
    transaction_id: str


class TxInvalid(ServerOutput):
    tag: Literal["TxInvalid"] = "TxInvalid"
    head_id: str
    utxo: JSON
    transaction: JSON
    validation_error: JSON

    @property
    def reason(self) -> str:
        """The ledger's reason, as text."""
        return str(self.validation_error.get("reason", self.validation_error))


class SnapshotConfirmed(ServerOutput):
    tag: Literal["SnapshotConfirmed"] = "SnapshotConfirmed"
    head_id: str
    snapshot: JSON
    signatures: JSON | None = None

    @property
    def number(self) -> int:
        return int(self.snapshot["number"])

    @property
    def confirmed(self) -> list[JSON]:
        """The full envelopes of the txs this snapshot confirms."""
        return list(self.snapshot.get("confirmed") or [])

    @property
    def confirmed_tx_ids(self) -> list[str]:
        return [str(tx.get("txId")) for tx in self.confirmed]


class InvalidInput(ServerOutput):
    tag: Literal["InvalidInput"] = "InvalidInput"
    timed: ClassVar[bool] = False
    reason: str
    input: str


class PostTxOnChainFailed(ServerOutput):
    tag: Literal["PostTxOnChainFailed"] = "PostTxOnChainFailed"
    timed: ClassVar[bool] = False
    post_chain_tx: JSON
    post_tx_error: JSON


class CommandFailed(ServerOutput):
    tag: Literal["CommandFailed"] = "CommandFailed"
    timed: ClassVar[bool] = False
    client_input: JSON
    state: JSON | None = None


class RejectedInputBecauseUnsynced(ServerOutput):
    tag: Literal["RejectedInputBecauseUnsynced"] = "RejectedInputBecauseUnsynced"
    timed: ClassVar[bool] = False
    client_input: JSON
    drift: Any = None


class SideLoadSnapshotRejected(ServerOutput):
    tag: Literal["SideLoadSnapshotRejected"] = "SideLoadSnapshotRejected"
    timed: ClassVar[bool] = False
    client_input: JSON
    requirement_failure: Any = None


class IgnoredHeadInitializing(ServerOutput):
    tag: Literal["IgnoredHeadInitializing"] = "IgnoredHeadInitializing"
    head_id: str


class DecommitInvalid(ServerOutput):
    tag: Literal["DecommitInvalid"] = "DecommitInvalid"
    head_id: str
    decommit_tx: JSON
    decommit_invalid_reason: JSON


class DecommitRequested(ServerOutput):
    tag: Literal["DecommitRequested"] = "DecommitRequested"
    head_id: str
    decommit_tx: JSON
    utxo_to_decommit: JSON


class DecommitApproved(ServerOutput):
    tag: Literal["DecommitApproved"] = "DecommitApproved"
    head_id: str
    decommit_tx_id: str
    utxo_to_decommit: JSON


class DecommitFinalized(ServerOutput):
    tag: Literal["DecommitFinalized"] = "DecommitFinalized"
    head_id: str
    distributed_utxo: JSON = pydantic.Field(alias="distributedUTxO")


class CommitRecorded(ServerOutput):
    tag: Literal["CommitRecorded"] = "CommitRecorded"
    head_id: str
    utxo_to_commit: JSON
    pending_deposit: str
    deadline: str


class DepositActivated(ServerOutput):
    tag: Literal["DepositActivated"] = "DepositActivated"
    head_id: str
    deposit_tx_id: str
    deadline: str
    chain_time: str


class DepositExpired(DepositActivated):
    tag: Literal["DepositExpired"] = "DepositExpired"  # type: ignore[assignment]


class CommitApproved(ServerOutput):
    tag: Literal["CommitApproved"] = "CommitApproved"
    head_id: str
    utxo_to_commit: JSON


class CommitFinalized(ServerOutput):
    tag: Literal["CommitFinalized"] = "CommitFinalized"
    head_id: str
    deposit_tx_id: str


class CommitRecovered(ServerOutput):
    tag: Literal["CommitRecovered"] = "CommitRecovered"
    head_id: str
    recovered_utxo: JSON = pydantic.Field(alias="recoveredUTxO")
    recovered_tx_id: str


class SnapshotSideLoaded(ServerOutput):
    tag: Literal["SnapshotSideLoaded"] = "SnapshotSideLoaded"
    head_id: str
    snapshot_number: int


class EventLogRotated(ServerOutput):
    tag: Literal["EventLogRotated"] = "EventLogRotated"
    checkpoint: JSON


class NodeUnsynced(ServerOutput):
    tag: Literal["NodeUnsynced"] = "NodeUnsynced"
    chain_slot: Any = None
    chain_time: Any = None
    drift: Any = None


class NodeSynced(NodeUnsynced):
    tag: Literal["NodeSynced"] = "NodeSynced"  # type: ignore[assignment]


SERVER_OUTPUTS: dict[str, type[ServerOutput]] = {
    cls.model_fields["tag"].default: cls
    for cls in (
        Greetings, NetworkConnected, NetworkDisconnected, PeerConnected, PeerDisconnected,
        NetworkVersionMismatch, NetworkClusterIDMismatch, HeadIsOpen, HeadIsClosed, HeadIsContested,
        ReadyToFanout, HeadPartiallyFannedOut, HeadIsFinalized, TxValid, TxInvalid, SnapshotConfirmed,
        InvalidInput, PostTxOnChainFailed, CommandFailed, RejectedInputBecauseUnsynced,
        SideLoadSnapshotRejected, IgnoredHeadInitializing, DecommitInvalid, DecommitRequested,
        DecommitApproved, DecommitFinalized, CommitRecorded, DepositActivated, DepositExpired,
        CommitApproved, CommitFinalized, CommitRecovered, SnapshotSideLoaded, EventLogRotated,
        NodeUnsynced, NodeSynced,
    )
}  # fmt: skip


def parse_output(data: Any) -> ServerOutput:
    """Parse one server output; never raises (the node's frames are input like any other).

    Unknown tags, and shapes a model rejects, become RawOutput with every field kept; a ``seq``
    or ``timestamp`` of the wrong type is dropped (the output then counts as untimed).
    """
    if not isinstance(data, dict):
        return RawOutput(tag="<not an object>", value=data)
    tag = data.get("tag")
    cls = SERVER_OUTPUTS.get(tag) if isinstance(tag, str) else None
    if cls is not None:
        try:
            return cls.model_validate(data)
        except (pydantic.ValidationError, RecursionError):
            pass
    fields = {str(k): v for k, v in data.items()}
    fields["tag"] = tag if isinstance(tag, str) else "<tag is not a string>"
    if not (isinstance(fields.get("seq"), int) and not isinstance(fields.get("seq"), bool)):
        fields.pop("seq", None)
    if not isinstance(fields.get("timestamp"), str):
        fields.pop("timestamp", None)
    return RawOutput.model_validate(fields)
