"""simulate's party processes: a death is reported by name within seconds, a failed start with its
real error, and no child (party, fork server, resource tracker) outlives a killed parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hydrafed.worker.supervisor import PartyFailed, Supervisor

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _first_failure(supervisor: Supervisor, within: float) -> PartyFailed:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            supervisor.next_event()
        except PartyFailed as exc:
            return exc
    raise AssertionError(f"no failure reported within {within} s")


def test_a_party_killed_without_a_word_is_reported_by_name_within_seconds() -> None:
    # Prepare: one party that sleeps, one that the kernel kills
    supervisor = Supervisor()
    try:
        supervisor.start("party-01", "time:sleep", (60,))
        supervisor.start("party-02", "time:sleep", (60,))
        time.sleep(1.0)
        victim = supervisor.children["party-02"].pid
        killed = time.monotonic()

        # Execute
        os.kill(victim, signal.SIGKILL)
        failure = _first_failure(supervisor, within=10)

        # Assert
        assert time.monotonic() - killed < 5
        assert f"party party-02's process (pid {victim}) was killed by SIGKILL" in str(failure)
    finally:
        supervisor.kill()
    assert not any(p.is_alive() for p in supervisor.children.values())


def test_a_party_that_cannot_start_reports_the_real_error() -> None:
    supervisor = Supervisor()
    try:
        supervisor.start("party-03", "hydrafed_no_such_module:run", ())
        failure = _first_failure(supervisor, within=60)
    finally:
        supervisor.kill()
    expected = "party party-03 failed: ModuleNotFoundError: No module named 'hydrafed_no_such_module'"
    assert expected in str(failure)


_PARENT = """
import json, signal, sys, time
import psutil
# Ctrl-C as under a terminal: a test run started as a background job (`cmd &`) passes SIGINT on
# ignored, and Python then keeps it ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
from hydrafed.worker.supervisor import Supervisor
supervisor = Supervisor()
for name in ("party-01", "party-02"):
    supervisor.start(name, "time:sleep", (600,))
time.sleep(1.0)
print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_no_process_outlives_a_killed_parent(signum: int) -> None:
    # Prepare: a parent with two parties, the fork server and the resource tracker under it
    argv = [sys.executable, "-c", _PARENT]
    parent = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert parent.stdout is not None
        descendants = [psutil.Process(pid) for pid in json.loads(parent.stdout.readline())]
        assert len(descendants) >= 4  # two parties, the fork server, the resource tracker

        # Execute
        parent.send_signal(signum)
        parent.wait(timeout=30)
        _, alive = psutil.wait_procs(descendants, timeout=10)

        # Assert
        assert [p.pid for p in alive] == []
    finally:
        if parent.poll() is None:
            parent.kill()
        for proc in psutil.process_iter():
            if proc.pid != os.getpid() and proc.ppid() == parent.pid:
                proc.kill()
