"""Party processes are scheduled below the parent that runs the devnet."""

from __future__ import annotations

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
