"""Party processes: forked from a preloaded, frozen fork server, scheduled below the parent."""

from __future__ import annotations

import gc
import multiprocessing.queues
import subprocess
import sys

import pytest

from hydrafed.worker import processes

pytestmark = pytest.mark.unit


def test_a_party_process_yields_to_the_parent() -> None:
    # In a fresh interpreter, so that this test process keeps its own priority.
    code = (
        "import os; from hydrafed.worker.processes import lower_priority; "
        "before = os.nice(0); lower_priority(); print(os.nice(0) - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == processes.PARTY_NICENESS


def _report_preloaded(results: multiprocessing.queues.Queue[tuple[list[str], int]]) -> None:
    results.put(([m for m in processes.HEAVY if m in sys.modules], gc.get_freeze_count()))


@pytest.mark.integration
def test_parties_fork_from_a_server_that_preloaded_and_froze_the_heavy_modules() -> None:
    # Prepare
    context = processes.party_context()
    if context.get_start_method() != "forkserver":
        pytest.skip("no fork server on this platform")
    results = context.Queue()
    child = context.Process(target=_report_preloaded, args=(results,))

    # Execute
    child.start()
    preloaded, frozen = results.get(timeout=120)
    child.join(timeout=30)

    # Assert: torch, the worker and boto3 came with the fork, and the heap they built is frozen
    assert preloaded == list(processes.HEAVY)
    assert frozen > 100_000
    assert child.exitcode == 0
