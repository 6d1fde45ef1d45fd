"""hydrafed.pages: a process's mappings read from /proc, and their file pages handed back."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hydrafed import pages

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and process_madvise"),
]


def _file_pages_mib(pid: int) -> float:
    """Pss_File of the process: its mapped file pages, shared ones split among their mappers."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_File:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Pss_File in smaps_rollup")


_MAP_AND_READ = """
import mmap, sys
with open(sys.argv[1], "rb") as fh:
    view = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
sum(view[i] for i in range(0, len(view), 4096))  # every page resident
print("mapped", flush=True)
sys.stdin.readline()
"""


def test_file_pages_only_one_process_maps_are_handed_back(tmp_path: Path) -> None:
    # Prepare: a process that maps a 64 MiB file of its own and has read every page of it
    # (weed's binary is no such file while another weed runs, as the session's does)
    data = tmp_path / "pages.bin"
    data.write_bytes(os.urandom(64 << 20))
    os.sync()  # clean pages: reclaimable without a write-back
    child = subprocess.Popen(
        [sys.executable, "-c", _MAP_AND_READ, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "mapped"
        before = _file_pages_mib(child.pid)

        # Execute
        advised = pages.page_out_file_pages(child.pid)
        after = _file_pages_mib(child.pid)
    finally:
        child.communicate("\n", timeout=30)

    # Assert: every mapping was advised, the file's 64 MiB included, and its pages left memory
    assert before > 60
    assert advised >= 64 << 20
    assert after < before - 48


def test_mappings_name_each_mapped_file_with_its_offset_and_size(tmp_path: Path) -> None:
    data = tmp_path / "mapped.bin"
    data.write_bytes(bytes(3 * mmap.PAGESIZE))
    with (
        data.open("rb") as fh,
        mmap.mmap(fh.fileno(), 2 * mmap.PAGESIZE, prot=mmap.PROT_READ, offset=mmap.PAGESIZE),
    ):
        found = [r for r in pages.mappings() if r.path == str(data)]
        anonymous = [r for r in pages.mappings(os.getpid()) if not r.path]

    assert [(r.offset, r.size) for r in found] == [(mmap.PAGESIZE, 2 * mmap.PAGESIZE)]
    assert anonymous  # the same process read by pid: its heap and arenas have no path
