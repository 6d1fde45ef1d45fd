"""Head lifecycle driver: open, fund, follow rounds, close and fan out.

Used by ``hydrafed simulate`` (which holds every party's keys on one machine) and, later, by the
operator's daemon (which holds its own party's). It talks to hydra-nodes only through
``HydraClient`` and knows nothing of training or storage.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import funding, messages
from hydrafed.hydra import keys as keys_mod
from hydrafed.rounds import RoundBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutResult:
    """How the head ended: its id and the funds it returned to L1."""

    head_id: str
    finalized_utxo: Mapping[str, Any]


class HeadController:
    """Drives one head through the nodes' APIs.

    Parameters
    ----------
    clients
        Party name -> connected client of that party's node. The first one initiates.
    timeout
        Seconds to wait for each lifecycle event.
    """

    def __init__(self, clients: Mapping[str, client_mod.HydraClient], *, timeout: float = 60.0) -> None:
        if not clients:
            raise errors.ConfigError("a head needs at least one party's node")
        self.clients = dict(clients)
        self.timeout = timeout
        self.head_id: str | None = None

    @property
    def initiator(self) -> client_mod.HydraClient:
        return next(iter(self.clients.values()))

    async def open(self) -> str:
        """Send Init (unless the head is already initialising or open) and wait until every node sees it open.

        Only HeadIsOpen events of this head count: a node's history replay also holds those of
        heads that were closed and fanned out before, which must not be mistaken for this one.
        """
        positions = {name: c.position for name, c in self.clients.items()}
        state = HeadView.from_api(await self.initiator.get_head())  # now, not as of the Greetings
        if state.tag == "Idle":
            await self.initiator.send(messages.Init())
            wanted: str | None = None
        elif state.tag in ("Initial", "Open"):
            wanted = state.head_id
        else:
            raise errors.HeadError(
                f"cannot open the head: it is {state.tag}; wait for its fanout or start a new devnet"
            )

        def this_head(out: messages.ServerOutput) -> bool:
            return isinstance(out, messages.HeadIsOpen) and wanted in (None, out.head_id)

        opened = await asyncio.gather(
            *(
                c.wait_for(
                    "HeadIsOpen",
                    this_head,
                    timeout=self.timeout,
                    since=0 if wanted is not None else positions[name],
                )
                for name, c in self.clients.items()
            )
        )
        ids = {out.head_id for out in opened if isinstance(out, messages.HeadIsOpen)}
        if len(ids) != 1:
            raise errors.HeadError(f"nodes disagree on the head id: {sorted(ids)}")
        self.head_id = ids.pop()
        log.info("head %s is open with %d parties", self.head_id, len(self.clients))
        return self.head_id

    async def fund(
        self,
        keys: Mapping[str, keys_mod.PartyKeys],
        lovelace: int | None = None,
        *,
        network: keys_mod.NetworkName = "testnet",
    ) -> None:
        """Bring each party's L1 funds into the open head, every party at once."""
        missing = sorted(set(keys) - set(self.clients))
        if missing:
            raise errors.ConfigError(f"no node client for parties {missing}")
        await asyncio.gather(
            *(
                funding.commit_funds(
                    self.clients[name], party_keys, lovelace, network=network, timeout=self.timeout
                )
                for name, party_keys in keys.items()
            )
        )

    async def follow(self, book: RoundBook, rounds: int) -> None:
        """Feed confirmed snapshots into ``book`` until ``rounds`` rounds are complete."""
        async for output in self.initiator.subscribe(0):
            book.observe(output)
            if all(book.is_complete(r) for r in range(1, rounds + 1)):
                return

    async def close_and_fanout(self) -> FanoutResult:
        """Close, wait out the contestation period, fan out and wait for HeadIsFinalized.

        The wait for ReadyToFanout follows the head's contestation deadline (plus ``timeout``
        for the node to notice), however long the Federation's contestation period is.
        """
        client = self.initiator
        since = client.position
        await client.send(messages.Close())
        closed = await client.wait_for(("HeadIsClosed", "CommandFailed"), timeout=self.timeout, since=since)
        if not isinstance(closed, messages.HeadIsClosed):
            raise errors.HeadError(f"Close was refused: {closed.model_dump(by_alias=True)}")
        wait = max(0.0, seconds_until(closed.contestation_deadline)) + self.timeout
        await client.wait_for("ReadyToFanout", timeout=wait, since=since)
        await client.send(messages.Fanout())
        final = await client.wait_for("HeadIsFinalized", timeout=self.timeout, since=since)
        assert isinstance(final, messages.HeadIsFinalized)
        return FanoutResult(head_id=final.head_id, finalized_utxo=final.finalized_utxo)


def parse_time(text: str) -> dt.datetime:
    """A UTCTime as hydra-node writes it (ISO 8601 with Z, with or without fractions)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_until(text: str) -> float:
    """Seconds from now until a node's UTCTime (negative once it has passed)."""
    return (parse_time(text) - dt.datetime.now(dt.UTC)).total_seconds()


@dataclass(frozen=True)
class HeadView:
    """The head as ``GET /head`` shows it now: the state to act on, not a replayed history."""

    tag: str
    """Idle, Initial, Open or Closed."""
    head_id: str | None = None
    contestation_deadline: str | None = None
    ready_to_fanout: bool = False

    @classmethod
    def from_api(cls, head: Mapping[str, Any]) -> HeadView:
        contents = head.get("contents")
        contents = contents if isinstance(contents, Mapping) else {}
        deadline = contents.get("contestationDeadline")
        head_id = contents.get("headId")
        return cls(
            tag=str(head.get("tag", "Unknown")),
            head_id=head_id if isinstance(head_id, str) else None,
            contestation_deadline=deadline if isinstance(deadline, str) else None,
            ready_to_fanout=bool(contents.get("readyToFanoutSent", False)),
        )


@dataclass(frozen=True)
class CloseStep:
    """What one step of closing did, and what it waits for next."""

    done: bool
    """The head is finalized (or was never opened): nothing is left to close."""
    waiting_for: str
    """A sentence for status: what the next step waits for."""
    retry_in: float = 5.0
    """Seconds until the next step is worth taking."""


async def close_step(client: client_mod.HydraClient, head_id: str | None) -> CloseStep:
    """One idempotent step of closing ``head_id``, decided from the head's state now.

    Stateless, so an operator that restarts mid-close simply takes the next step: Close while
    the head is open (re-sent on every step until it is closed, as hydra-node asks clients to
    do), nothing until the contestation deadline, Fanout once it is possible, done once the head
    is idle again. ``head_id`` None means this Federation never saw its head open.
    """
    view = HeadView.from_api(await client.get_head())
    if view.tag == "Idle":
        return CloseStep(True, "nothing: the head is finalized" if head_id else "nothing: no head was opened")
    if head_id is not None and view.head_id not in (None, head_id):
        return CloseStep(True, f"nothing: the node now runs another head ({view.head_id})")
    if view.tag == "Initial":
        await client.send({"tag": "Abort"})
        return CloseStep(False, "HeadIsAborted after Abort (the head never opened)", retry_in=2.0)
    if view.tag == "Open":
        await client.send(messages.Close())
        return CloseStep(False, "HeadIsClosed after Close", retry_in=2.0)
    if view.tag == "Closed" and view.ready_to_fanout:
        await client.send(messages.Fanout())
        return CloseStep(False, "HeadIsFinalized after Fanout", retry_in=2.0)
    if view.tag == "Closed":
        remaining = seconds_until(view.contestation_deadline) if view.contestation_deadline else 5.0
        return CloseStep(
            False,
            f"the contestation deadline {view.contestation_deadline} ({max(0, round(remaining))}s), "
            "then ReadyToFanout",
            retry_in=min(30.0, max(1.0, remaining + 0.5)),
        )
    return CloseStep(False, f"a known head state (the node reports {view.tag})")
