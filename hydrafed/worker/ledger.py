"""The round loop's transport: submit an announcement, stream the confirmed ones in ledger order.

``PartyWorker`` (the strategy side: train, aggregate) talks to the head only through a ``Ledger``,
the way Flower's strategies talk to a Grid. Two implementations keep the same semantics:

- ``HydraLedger``: production. Builds and signs the announcement tx, posts it to the party's own
  hydra-node and reads confirmed snapshots through a ``RoundBook`` (federation, spec hash,
  membership, the member's signature, first announcement per party and round).
- ``InMemoryLedger``: every party of one event loop shares an ``InMemoryHead``; one global order
  of announcements, first per party and round counted. For unit tests and benchmarks.

Public API::

    Ledger                                   # Protocol: async with, history(), confirmed(), submit()
    HydraLedger(api_url, keys, fed, spec, members, network="testnet")
    InMemoryHead(fed, members).ledger(party) -> InMemoryLedger
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from hydrafed import errors
from hydrafed import rounds as rounds_mod
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import tx as tx_mod
from hydrafed.rounds import ConfirmedAnnouncement
from hydrafed.spec import FederationSpec


class Ledger(Protocol):
    """Where one party announces its updates and learns, in one shared order, everyone's."""

    async def __aenter__(self) -> Self:
        """Connect; afterwards ``history()`` holds everything confirmed before this moment."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def history(self) -> Sequence[ConfirmedAnnouncement]:
        """The counted announcements confirmed before the ledger was entered, in ledger order.

        A restarted worker re-derives its completed rounds from this, without waiting on anyone.
        """
        ...

    def confirmed(self) -> AsyncIterator[ConfirmedAnnouncement]:
        """Counted announcements confirmed after ``history()``, in ledger order, as they come.

        Raises HeadError when the ledger can no longer be followed.
        """
        ...

    async def submit(self, announcement: tx_mod.Announcement) -> str:
        """Post our announcement; returns its tx id. Confirmation arrives through ``confirmed()``."""
        ...


class HydraLedger:
    """The production ledger: the party's own hydra-node, read through a ``RoundBook``.

    Parameters
    ----------
    api_url
        The party's hydra-node API (http:// or ws://).
    keys
        The party's keys; the payment key signs announcements (never logged).
    fed, spec
        Federation name and spec: announcements of others, or of another spec, do not count.
    members
        Every member's name -> (L2 payment address, payment key hash hex).
    """

    def __init__(
        self,
        api_url: str,
        keys: keys_mod.PartyKeys,
        fed: str,
        spec: FederationSpec,
        members: Mapping[str, tuple[str, str]],
        network: keys_mod.NetworkName = "testnet",
    ) -> None:
        self._keys = keys
        self._spec = spec
        self._network = network
        self._peers = [address for name, (address, _) in sorted(members.items()) if name != keys.name]
        self._book = rounds_mod.RoundBook(
            fed, rounds_mod.spec_hash(spec), {name: key_hash for name, (_, key_hash) in members.items()}
        )
        # Snapshots' UTxO (thousands of entries late in a run) is not worth parsing: the tx builder
        # reads the UTxO over HTTP.
        self._client = client_mod.HydraClient(api_url, snapshot_utxo=False)
        self._params: dict[str, Any] = {}
        self._history: list[ConfirmedAnnouncement] = []
        self._position = 0

    @property
    def book(self) -> rounds_mod.RoundBook:
        """The round book behind the stream (ignored announcements and their reasons included)."""
        return self._book

    async def __aenter__(self) -> Self:
        await self._client.connect()  # returns after Greetings: the history replay is in
        self._params = await self._client.get_protocol_parameters()
        self._position = self._client.position
        for output in self._client.events[: self._position]:
            self._history.extend(self._book.observe(output))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()

    def history(self) -> Sequence[ConfirmedAnnouncement]:
        return list(self._history)

    async def confirmed(self) -> AsyncIterator[ConfirmedAnnouncement]:
        async for output in self._client.subscribe(self._position):
            for entry in self._book.observe(output):
                yield entry
        raise errors.HeadError(f"the hydra-node stream at {self._client.ws_url} ended")

    async def submit(self, announcement: tx_mod.Announcement) -> str:
        utxo = await self._client.get_snapshot_utxo()
        envelope = tx_mod.build_announcement_tx(
            announcement,
            keys=self._keys,
            utxo=utxo,
            peer_addresses=self._peers,
            lovelace_per_peer=self._spec.head.announce_lovelace,
            protocol_parameters=self._params,
            network=self._network,
            label=self._spec.head.metadata_label,
        )
        await self._client.submit_transaction(envelope)
        return str(envelope["txId"])


class InMemoryHead:
    """One ledger order shared by the parties of one event loop: the in-process twin of a head.

    Counts like ``RoundBook``: announcements of another federation or a non-member are refused,
    and only a party's first announcement of a round counts (a second is recorded as ignored).
    """

    def __init__(self, fed: str, members: Sequence[str]) -> None:
        self.fed = fed
        self.members = frozenset(members)
        self.entries: list[ConfirmedAnnouncement] = []
        self.ignored: list[str] = []
        """Tx ids of announcements that did not count (a party's second for a round)."""
        self._counted: set[tuple[int, str]] = set()
        self._changed = asyncio.Event()

    def ledger(self, party: str) -> InMemoryLedger:
        """The ledger handle of one member."""
        if party not in self.members:
            raise errors.ConfigError(f"party {party!r} is not a member of {sorted(self.members)}")
        return InMemoryLedger(self, party)

    def _confirm(self, announcement: tx_mod.Announcement) -> str:
        a = announcement
        body = json.dumps([a.fed, a.round, a.party, a.uri, a.sha256, len(self.entries), len(self.ignored)])
        tx_id = hashlib.sha256(body.encode()).hexdigest()
        key = (announcement.round, announcement.party)
        if key in self._counted:
            self.ignored.append(tx_id)
            return tx_id
        self._counted.add(key)
        self.entries.append(ConfirmedAnnouncement(announcement, tx_id, len(self.entries) + 1))
        self._changed.set()
        self._changed = asyncio.Event()
        return tx_id

    async def _wait(self, seen: int) -> None:
        while len(self.entries) <= seen:
            await self._changed.wait()


class InMemoryLedger:
    """One member's handle on an ``InMemoryHead``; it may announce only for its own party."""

    def __init__(self, head: InMemoryHead, party: str) -> None:
        self._head = head
        self._party = party
        self._start = 0

    async def __aenter__(self) -> Self:
        self._start = len(self._head.entries)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def history(self) -> Sequence[ConfirmedAnnouncement]:
        return list(self._head.entries[: self._start])

    async def confirmed(self) -> AsyncIterator[ConfirmedAnnouncement]:
        index = self._start
        while True:
            await self._head._wait(index)
            while index < len(self._head.entries):
                yield self._head.entries[index]
                index += 1

    async def submit(self, announcement: tx_mod.Announcement) -> str:
        if announcement.party != self._party:
            raise errors.ConfigError(
                f"{self._party} cannot announce for {announcement.party!r}: a ledger handle is one party's"
            )
        if announcement.fed != self._head.fed:
            raise errors.ConfigError(f"announcement.fed {announcement.fed!r} is not {self._head.fed!r}")
        await asyncio.sleep(0)  # a real submit yields to the loop; so does this one
        return self._head._confirm(announcement)
