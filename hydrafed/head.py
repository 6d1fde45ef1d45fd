"""Head lifecycle driver: open, fund, follow rounds, close and fan out.

Used by ``hydrafed simulate`` (which holds every party's keys on one machine) and, later, by the
operator's daemon (which holds its own party's). It talks to hydra-nodes only through
``HydraClient`` and knows nothing of training or storage.
"""

from __future__ import annotations

import asyncio
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
        """Send Init (unless the head is already open) and wait until every node sees HeadIsOpen."""
        status = str((await self.initiator.get_head()).get("tag"))  # now, not as of the Greetings
        if status == "Idle":
            await self.initiator.send(messages.Init())
        elif status not in ("Initial", "Open"):
            raise errors.HeadError(
                f"cannot open the head: it is {status}; wait for its fanout or start a new devnet"
            )
        opened = await asyncio.gather(
            *(c.wait_for("HeadIsOpen", timeout=self.timeout, since=0) for c in self.clients.values())
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
        """Close, wait out the contestation period, fan out and wait for HeadIsFinalized."""
        client = self.initiator
        since = client.position
        await client.send(messages.Close())
        closed = await client.wait_for(("HeadIsClosed", "CommandFailed"), timeout=self.timeout, since=since)
        if isinstance(closed, messages.CommandFailed):
            raise errors.HeadError(f"Close was refused: {closed.model_dump(by_alias=True)}")
        await client.wait_for("ReadyToFanout", timeout=self.timeout, since=since)
        await client.send(messages.Fanout())
        final = await client.wait_for("HeadIsFinalized", timeout=self.timeout, since=since)
        assert isinstance(final, messages.HeadIsFinalized)
        return FanoutResult(head_id=final.head_id, finalized_utxo=final.finalized_utxo)
