"""Ways to start a devnet: from sync code in a thread, and already open with funds."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.ports import free_base_port
from tests.integration.hydra.conftest import DevnetFactory

pytestmark = pytest.mark.integration


def test_devnet_thread_serves_http_from_sync_code(tmp_path: Path) -> None:
    base = free_base_port(2)
    with DevnetThread(Devnet(parties=2, api_port=base, state_dir=tmp_path)) as net:
        with urllib.request.urlopen(net.urls[1] + "/head", timeout=5) as resp:  # noqa: S310 - loopback
            assert json.loads(resp.read())["tag"] == "Idle"
        with urllib.request.urlopen(net.urls[0] + "/protocol-parameters", timeout=5) as resp:  # noqa: S310
            assert json.loads(resp.read())["utxoCostPerByte"] == 4310
    manifest = json.loads((tmp_path / "devnet.json").read_text())
    assert [p["name"] for p in manifest["parties"]] == ["party0", "party1"]
    assert (tmp_path / "parties" / "party1" / "payment.sk").stat().st_mode & 0o077 == 0


async def test_open_head_starts_with_every_partys_funds(make_devnet: DevnetFactory) -> None:
    # Execute
    net = await make_devnet(parties=["a", "b"], open_head=True, funds_per_party=7_000_000)

    # Assert: the head is open, the funds are in it (not on L1), and the history says how.
    async with client_mod.HydraClient(net.urls[1]) as c:
        assert c.greetings.head_status == "Open"
        utxo = await c.get_snapshot_utxo()
        assert sorted(o["value"]["lovelace"] for o in utxo.values()) == [7_000_000, 7_000_000]
        assert [e.tag for e in c.events] == [
            "HeadIsOpen", "CommitRecorded", "DepositActivated",
            "SnapshotConfirmed", "CommitApproved", "CommitFinalized",
        ]  # fmt: skip
        assert await c.devnet_l1_utxo(utxo[next(iter(utxo))]["address"]) == {}
