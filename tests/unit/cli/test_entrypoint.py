"""The console script's entry point: exit codes kept, atexit handlers run, threads waited for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hydrafed import __version__

pytestmark = pytest.mark.unit

_RUN = """
import atexit, sys, threading, time
from hydrafed import cli
atexit.register(lambda: print("atexit ran", flush=True))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
sys.argv = ["hydrafed", *sys.argv[2:]]
cli.run()
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=60)


def test_a_command_that_returns_exits_zero_after_its_atexit_handlers() -> None:
    done = _run("plain", "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [__version__, "atexit ran"]


def test_a_refused_option_keeps_its_exit_code_and_message() -> None:
    done = _run("plain", "simulate", "--parties", "0")
    assert done.returncode == 2
    assert "--parties 0" in done.stderr
    assert done.stdout.strip() == "atexit ran"


def test_a_running_thread_is_waited_for() -> None:
    done = _run("thread", "version")
    assert done.returncode == 0, done.stderr
    *before_exit, last = done.stdout.splitlines()
    # The version and the thread's line race (on a loaded machine the thread may print first);
    # what counts is that the process waited for the thread before its atexit handlers.
    assert sorted(before_exit) == sorted([__version__, "thread finished"])
    assert last == "atexit ran"
