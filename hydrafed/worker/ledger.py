"""The round loop's transport: submit an announcement, stream the confirmed ones in ledger order.

``PartyWorker`` (the strategy side: train, aggregate) talks to the head only through a ``Ledger``,
the way Flower's strategies talk to a Grid. Two implementations keep the same semantics:

- ``HydraLedger``: production. Builds and signs the announcement (and round cutoff) txs, posts
  them to the party's own hydra-node and reads confirmed snapshots through a ``RoundBook``, which
  lets through only authentic items (federation, spec hash, membership, the member's signature).
- ``InMemoryLedger``: every party of one event loop shares an ``InMemoryHead``; one global order
  of announcements and cutoffs, each sent by the party whose handle submitted it. For unit tests
  and benchmarks.

Both stream every authentic item; which of them count is the party's ``rounds.RoundRules``'
business (the same rules on every party, so the same members everywhere).

Public API::

    Ledger                                   # Protocol: async with, history(), confirmed(), submit(),
                                             # submit_cutoff()
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
from hydrafed.rounds import Confirmed, ConfirmedAnnouncement, ConfirmedCutoff
from hydrafed.spec import FederationSpec


class Ledger(Protocol):
    """Where one party announces its updates and learns, in one shared order, everyone's."""

    async def __aenter__(self) -> Self:
        """Connect; afterwards ``history()`` holds everything confirmed before this moment."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def history(self) -> Sequence[Confirmed]:
        """The authentic items confirmed before the ledger was entered, in ledger order.

        A restarted worker re-derives its completed rounds from this, without waiting on anyone.
        """
        ...

    def confirmed(self) -> AsyncIterator[Confirmed]:
        """Authentic items confirmed after ``history()``, in ledger order, as they come.

        Raises HeadError when the ledger can no longer be followed.
        """
        ...

    async def submit(self, announcement: tx_mod.Announcement) -> str:
        """Post our announcement; returns its tx id. Confirmation arrives through ``confirmed()``."""
        ...

    async def submit_cutoff(self, cutoff: tx_mod.Cutoff) -> str:
        """Post our round cutoff (a quorum round may end); returns its tx id."""
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
    offline_limit
        Seconds the node may stay unreachable before ``confirmed()`` raises a HeadError naming it.
    """

    def __init__(
        self,
        api_url: str,
        keys: keys_mod.PartyKeys,
        fed: str,
        spec: FederationSpec,
        members: Mapping[str, tuple[str, str]],
        network: keys_mod.NetworkName = "testnet",
        offline_limit: float = client_mod.DEFAULT_OFFLINE_LIMIT,
        max_samples: Mapping[str, int | None] | None = None,
    ) -> None:
        self._keys = keys
        self._spec = spec
        self._network = network
        self._peers = [address for name, (address, _) in sorted(members.items()) if name != keys.name]
        self._book = rounds_mod.RoundBook(
            fed,
            rounds_mod.spec_hash(spec),
            {name: key_hash for name, (_, key_hash) in members.items()},
            max_samples=max_samples,
            total_rounds=spec.training.rounds,
            quorum=spec.round_policy.quorum,
        )
        # Snapshots' UTxO (thousands of entries late in a run) is not worth parsing: the tx builder
        # reads the UTxO over HTTP.
        self._client = client_mod.HydraClient(api_url, snapshot_utxo=False, offline_limit=offline_limit)
        self._params: dict[str, Any] = {}
        self._history: list[Confirmed] = []
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
            self._book.observe(output)
        self._history = list(self._book.stream)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()

    def history(self) -> Sequence[Confirmed]:
        return list(self._history)

    async def confirmed(self) -> AsyncIterator[Confirmed]:
        sent = len(self._history)
        async for output in self._client.subscribe(self._position):
            self._book.observe(output)
            while sent < len(self._book.stream):
                yield self._book.stream[sent]
                sent += 1
        raise errors.HeadError(f"the hydra-node stream at {self._client.ws_url} ended")

    async def submit_cutoff(self, cutoff: tx_mod.Cutoff) -> str:
        utxo = await self._client.get_snapshot_utxo()
        envelope = tx_mod.build_cutoff_tx(
            cutoff,
            keys=self._keys,
            utxo=utxo,
            protocol_parameters=self._params,
            network=self._network,
            label=self._spec.head.metadata_label,
        )
        await self._client.submit_transaction(envelope)
        return str(envelope["txId"])

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

    Like ``RoundBook`` it lets through only authentic items: a handle submits for its own party
    and federation only. Every submitted announcement and cutoff is confirmed, in order; which
    count is decided by each party's ``RoundRules``, as with a real head.
    """

    def __init__(self, fed: str, members: Sequence[str]) -> None:
        self.fed = fed
        self.members = frozenset(members)
        self.entries: list[Confirmed] = []
        self._changed = asyncio.Event()

    def ledger(self, party: str) -> InMemoryLedger:
        """The ledger handle of one member."""
        if party not in self.members:
            raise errors.ConfigError(f"party {party!r} is not a member of {sorted(self.members)}")
        return InMemoryLedger(self, party)

    def _confirm(self, item: tx_mod.Announcement | tx_mod.Cutoff) -> str:
        body = json.dumps([type(item).__name__, repr(item), len(self.entries)])
        tx_id = hashlib.sha256(body.encode()).hexdigest()
        snapshot = len(self.entries) + 1
        if isinstance(item, tx_mod.Cutoff):
            self.entries.append(ConfirmedCutoff(item, tx_id, snapshot))
        else:
            self.entries.append(ConfirmedAnnouncement(item, tx_id, snapshot))
        self._changed.set()
        self._changed = asyncio.Event()
        return tx_id

    async def _wait(self, seen: int) -> None:
        while len(self.entries) <= seen:
            await self._changed.wait()


class InMemoryLedger:
    """One member's handle on an ``InMemoryHead``; it may submit only for its own party."""

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

    def history(self) -> Sequence[Confirmed]:
        return list(self._head.entries[: self._start])

    async def confirmed(self) -> AsyncIterator[Confirmed]:
        index = self._start
        while True:
            await self._head._wait(index)
            while index < len(self._head.entries):
                yield self._head.entries[index]
                index += 1

    def _check_sender(self, item: tx_mod.Announcement | tx_mod.Cutoff) -> None:
        kind = "cutoff" if isinstance(item, tx_mod.Cutoff) else "announcement"
        if item.party != self._party:
            verb = "cut off" if kind == "cutoff" else "announce"
            raise errors.ConfigError(
                f"{self._party} cannot {verb} for {item.party!r}: a ledger handle is one party's"
            )
        if item.fed != self._head.fed:
            raise errors.ConfigError(f"{kind}.fed {item.fed!r} is not {self._head.fed!r}")

    async def submit(self, announcement: tx_mod.Announcement) -> str:
        self._check_sender(announcement)
        await asyncio.sleep(0)  # a real submit yields to the loop; so does this one
        return self._head._confirm(announcement)

    async def submit_cutoff(self, cutoff: tx_mod.Cutoff) -> str:
        self._check_sender(cutoff)
        await asyncio.sleep(0)
        return self._head._confirm(cutoff)
