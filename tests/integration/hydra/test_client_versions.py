"""The client refuses a 1.x node over a real socket and never logs the Greetings env."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.ports import free_base_port

pytestmark = pytest.mark.integration

SECRET = "5820deadbeefSIGNINGKEY"


async def _old_node(port: int, version: str) -> web.AppRunner:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json(
            {
                "tag": "Greetings",
                "me": {"vkey": "ab" * 32},
                "headStatus": "Idle",
                "hydraNodeVersion": version,
                "env": {"signingKey": SECRET},
            }
        )
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_refuses_1x_node(caplog: pytest.LogCaptureFixture) -> None:
    port = free_base_port(1)
    runner = await _old_node(port, "1.3.0-abcdef")
    try:
        with (
            caplog.at_level(logging.DEBUG),
            pytest.raises(errors.HeadError, match=r"1\.3\.0.*hydra-node 2\.x"),
        ):
            await client_mod.HydraClient(f"http://127.0.0.1:{port}").connect()
    finally:
        await runner.cleanup()
    assert SECRET not in caplog.text


async def test_accepts_2x_node_without_logging_env(caplog: pytest.LogCaptureFixture) -> None:
    port = free_base_port(1)
    runner = await _old_node(port, "2.1.0-abcdef")
    try:
        with caplog.at_level(logging.DEBUG):
            async with client_mod.HydraClient(f"127.0.0.1:{port}") as c:
                assert c.greetings.hydra_node_version == "2.1.0-abcdef"
                assert c.greetings.head_status == "Idle"
    finally:
        await runner.cleanup()
    assert "2.1.0" in caplog.text  # the connection is logged...
    assert SECRET not in caplog.text  # ...but never the env


async def test_unreachable_node_is_a_clear_error() -> None:
    port = free_base_port(1)
    with pytest.raises(errors.HeadError, match="is it running"):
        await client_mod.HydraClient(f"http://127.0.0.1:{port}", connect_timeout=0.5).connect()
