"""Engine fixtures: a real devnet (aiohttp sockets on loopback) with clients on every node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys
from hydrafed.hydra.devnet import Devnet
from hydrafed.ports import free_base_port

Net = tuple[Devnet, dict[str, client_mod.HydraClient], dict[str, keys.PartyKeys]]


@pytest.fixture
async def devnet(
    tmp_path: Path,
) -> AsyncIterator[tuple[Devnet, dict[str, client_mod.HydraClient], dict[str, keys.PartyKeys]]]:
    """An idle 3-party devnet (head not yet initialised) and a connected client per node."""
    names = ["alice", "bob", "carol"]
    net = Devnet(
        parties=names,
        api_port=free_base_port(3),
        state_dir=tmp_path / "devnet",
        contestation_period=0.5,
        deposit_activation=0.05,
    )
    await net.start()
    clients = {n: client_mod.HydraClient(u) for n, u in zip(names, net.urls, strict=True)}
    try:
        for c in clients.values():
            await c.connect()
        party_keys = {n: keys.load_party_keys(net.keys_dir(n), n) for n in names}
        yield net, clients, party_keys
    finally:
        for c in clients.values():
            await c.close()
        await net.stop()
