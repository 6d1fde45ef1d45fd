"""bench's memory sampler: smaps_rollup of a process tree, and the smaps summary of bench.memory_tree."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from bench import _measure
from bench.memory_tree import summarise_smaps

pytestmark = pytest.mark.unit


def test_tree_memory_counts_a_child_that_holds_memory() -> None:
    code = (
        "import time; block = bytearray(64 * 2**20); block[::4096] = b'x' * len(block[::4096]); "
        "print(1, flush=True); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "1"
        procs = _measure.tree_memory(psutil.Process())
    finally:
        child.kill()
        child.wait()

    held = [p for p in procs if p.pid == child.pid]
    assert len(held) == 1 and held[0].pss_anon > 60  # MiB: the 64 MiB block, touched
    assert held[0].pss >= held[0].pss_anon
    assert _measure.rollup(child.pid) is None  # gone once reaped


def test_summarise_smaps_groups_mappings_by_kind() -> None:
    smaps = "\n".join(
        [
            "55d0c0000000-55d0c4000000 rw-p 00000000 00:00 0                          [heap]",
            "Pss:               40960 kB",
            "7f0000000000-7f0002000000 rw-p 00000000 00:00 0 ",
            "Pss:               20480 kB",
            "7f0003000000-7f0003010000 rw-p 00000000 00:00 0 ",
            "Pss:                  64 kB",
            "7f0004000000-7f0004100000 r--p 00000000 08:01 42          /cache/decoded/mnist/images.npy",
            "Pss:                 512 kB",
        ]
    )

    assert summarise_smaps(smaps) == {
        "[heap]": 40.0,
        "anon >= 1 MiB": 20.0,
        "images.npy": 0.5,
        "anon < 1 MiB": 0.0625,
    }
