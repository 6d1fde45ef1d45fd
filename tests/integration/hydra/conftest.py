"""Fixtures that start a real devnet (aiohttp sockets on loopback) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import funding, keys, messages
from hydrafed.hydra.devnet import Devnet
from hydrafed.ports import free_base_port

DevnetFactory = Callable[..., Awaitable[Devnet]]


def confirms(tx_id: str) -> Callable[[messages.ServerOutput], bool]:
    """A ``wait_for`` predicate: a SnapshotConfirmed that confirms ``tx_id``."""
    return lambda o: isinstance(o, messages.SnapshotConfirmed) and tx_id in o.confirmed_tx_ids


@pytest.fixture
async def make_devnet(tmp_path: Path) -> AsyncIterator[DevnetFactory]:
    """Start devnets that the test stops (or that stop at teardown)."""
    started: list[Devnet] = []

    async def make(**kw: Any) -> Devnet:
        kw.setdefault("parties", ["alice", "bob", "carol"])
        kw.setdefault("state_dir", tmp_path / "devnet")
        kw.setdefault("contestation_period", 1.0)
        kw.setdefault("deposit_activation", 0.05)
        names = kw["parties"]
        kw.setdefault("api_port", free_base_port(names if isinstance(names, int) else len(names)))
        net = Devnet(**kw)
        await net.start()
        started.append(net)
        return net

    yield make
    for net in started:
        await net.stop()


@pytest.fixture
async def open_head(
    make_devnet: DevnetFactory,
) -> AsyncIterator[tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]]]:
    """A 3-party devnet with the head open, every party's funds committed and one client per node."""
    net = await make_devnet()
    clients = [client_mod.HydraClient(url) for url in net.urls]
    for c in clients:
        await c.connect()
    party_keys = [keys.load_party_keys(net.keys_dir(n), n) for n in net.names]
    await clients[0].send(messages.Init())
    for c in clients:
        await c.wait_for("HeadIsOpen", since=0)
    for c, k in zip(clients, party_keys, strict=True):
        await funding.commit_funds(c, k)
    yield net, clients, party_keys
    for c in clients:
        await c.close()
