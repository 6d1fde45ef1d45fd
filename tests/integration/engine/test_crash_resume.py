"""A worker SIGKILLed in the middle of a round, while its node restarts, resumes and agrees.

`hydrafed worker --config` processes (as the operator's Job runs them) federate over a devnet
head. Bob is frozen (SIGSTOP) once he announced round 1, so round 2 cannot complete; carol is
SIGKILLed after her round-2 announcement is confirmed, i.e. mid-round, with her update in her
bucket and her tx on the ledger. While the round hangs there, the devnet itself restarts (every
node's API connection drops; it comes back on the same ports from its state dir). Carol restarts
with the same config: she re-derives round 1 from the ledger, takes her round-2 update back
rather than training and announcing again, and everyone ends on the same weights with one
announcement per party and round. test_worker_cli.py kills a worker between rounds instead.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.ports import free_base_port
from hydrafed.rounds import RoundBook, spec_hash
from hydrafed.spec import FederationSpec
from tests.integration.engine.test_worker_cli import NAMES, ROUNDS, _configs, _final_sha, _start

pytestmark = pytest.mark.integration


def _events(text: str, party: str) -> list[tuple[int, str]]:
    """(round, state) of every progress line the worker logged (``<party> {json}``)."""
    found = []
    for line in text.splitlines():
        _, sep, rest = line.partition(f": {party} {{")
        if sep:
            event = json.loads("{" + rest)
            found.append((int(event["round"]), str(event["state"])))
    return found


def _wait(predicate: object, timeout: float, what: str, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        dead = {n: p.returncode for n, p in procs.items() if p.poll() not in (None, -signal.SIGKILL)}
        assert not dead, f"worker(s) exited while waiting for {what}: {dead}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _book(url: str, net: Devnet, federation: FederationSpec) -> RoundBook:
    async def read() -> RoundBook:
        party_keys = {n: keys.load_party_keys(net.keys_dir(n), n) for n in NAMES}
        book = RoundBook("fed", spec_hash(federation), {n: k.participant_id for n, k in party_keys.items()})
        async with client_mod.HydraClient(url) as client:
            for output in client.events:
                book.observe(output)
        return book

    return asyncio.run(read())


def test_worker_killed_mid_round_during_a_node_restart_resumes_and_agrees(tmp_path: Path) -> None:
    # Prepare: an open head and three worker processes.
    port, state = free_base_port(3), tmp_path / "devnet"
    thread = DevnetThread(
        Devnet(parties=NAMES, api_port=port, state_dir=state, open_head=True, deposit_activation=0.05)
    )
    net = thread.__enter__()
    paths, federation = _configs(tmp_path, net)
    logs = {n: tmp_path / f"{n}.log" for n in NAMES}
    procs = {"bob": _start(paths["bob"], logs["bob"])}
    try:
        # Execute: freeze bob after his round-1 announcement, made before the others start (so
        # he is still waiting: a round takes tens of milliseconds); kill carol once round 2
        # holds hers.
        _wait(
            lambda: (1, "announced") in _events(logs["bob"].read_text(), "bob"), 180, "bob's round 1", procs
        )
        procs["bob"].send_signal(signal.SIGSTOP)
        procs |= {n: _start(paths[n], logs[n]) for n in ("alice", "carol")}
        _wait(
            lambda: (2, "announced") in _events(logs["carol"].read_text(), "carol"),
            120,
            "carol's round 2",
            procs,
        )
        procs["carol"].send_signal(signal.SIGKILL)
        assert procs["carol"].wait(10) == -signal.SIGKILL
        mid = _book(net.urls[0], net, federation)
        assert "carol" in mid.announced(2) and "bob" not in mid.announced(2)  # truly mid-round

        thread.__exit__(None, None, None)  # every node's API connection drops
        time.sleep(1.0)
        thread = DevnetThread(Devnet(parties=NAMES, api_port=port, state_dir=state))
        net = thread.__enter__()
        procs["carol"] = _start(paths["carol"], logs["carol"])
        _wait(lambda: "resumes at round 2" in logs["carol"].read_text(), 120, "carol's resume", procs)
        procs["bob"].send_signal(signal.SIGCONT)
        codes = {n: p.wait(300) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait(10)

    # Assert
    try:
        texts = {n: logs[n].read_text(errors="replace") for n in NAMES}
        assert codes == dict.fromkeys(NAMES, 0), {n: t[-2000:] for n, t in texts.items()}
        finals = {n: _final_sha(logs[n]) for n in NAMES}
        assert len(set(finals.values())) == 1, finals
        carol_after = texts["carol"].split("resumes at round 2", 1)[1]
        assert '"state": "announced"' in carol_after  # rounds 3 on
        assert (2, "announced") not in _events(carol_after, "carol")  # round 2 not announced again
        book = _book(net.urls[1], net, federation)
        assert [sorted(book.announced(r)) for r in range(1, ROUNDS + 1)] == [NAMES] * ROUNDS
        assert book.ignored == []  # nobody announced any round twice
    finally:
        thread.__exit__(None, None, None)
