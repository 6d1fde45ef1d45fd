"""Synchronous callers run the devnet in a thread and reach it over real sockets."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from hydrafed.hydra.devnet import Devnet, DevnetThread
from tests.integration.hydra.conftest import free_base_port

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
