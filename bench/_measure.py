"""Measuring a benchmarked run from outside: process wall time, peak memory of its process tree.

Every compared system (Flower, ``hydrafed simulate``) runs as a child process started the same
way, so import time, Ray start-up and party spawning all count in its wall time. Memory is the
peak over time (sampled every half second, or less often for large trees) of the summed PSS
(proportional set size) of the child and all its descendants: shared libraries such as torch are
counted once across processes, not once per process. PSS is read from ``/proc/PID/smaps_rollup``
(one line per field, ~0.1 ms a process) rather than psutil's full ``smaps`` walk (~2.5 ms a torch
process), so that 32 processes can be sampled every second without slowing the run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class ProcessRun:
    """Outcome of one measured child process."""

    returncode: int
    wall_seconds: float
    peak_pss_mib: float
    peak_processes: int
    output: str


@dataclass(frozen=True)
class ProcessMemory:
    """One process's share of memory at a sample, in MiB (``smaps_rollup``)."""

    pid: int
    command: str
    pss: float
    pss_anon: float
    pss_file: float


def rollup(pid: int) -> ProcessMemory | None:
    """``/proc/PID/smaps_rollup`` of one process; None if it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    if "Pss" not in fields:
        return None
    return ProcessMemory(
        pid,
        command.strip()[:160],
        fields["Pss"] / 1024,
        fields.get("Pss_Anon", 0) / 1024,
        fields.get("Pss_File", 0) / 1024,
    )


def tree_memory(root: psutil.Process) -> list[ProcessMemory]:
    """Every live process of ``root``'s tree with its PSS (psutil's full smaps walk as a fallback)."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    found: list[ProcessMemory] = []
    for proc in procs:
        memory = rollup(proc.pid)
        if memory is None:
            try:
                info = proc.memory_full_info()
                command = " ".join(proc.cmdline())[:160]
            except psutil.Error:  # gone, a zombie, or not ours
                continue
            memory = ProcessMemory(proc.pid, command, getattr(info, "pss", info.rss) / 2**20, 0.0, 0.0)
        found.append(memory)
    return found


def _tree_pss(root: psutil.Process) -> tuple[float, int]:
    procs = tree_memory(root)
    return sum(p.pss for p in procs), len(procs)


def run_measured(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 3600,
    log: Path | None = None,
) -> ProcessRun:
    """Run ``argv`` to completion, sampling its process tree's memory every half second."""
    merged_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=merged_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0.0, 0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            began = time.perf_counter()
            pss, count = _tree_pss(root)
            peak[0] = max(peak[0], pss)
            peak[1] = max(peak[1], count)
            # Keep the sampler under ~5% of a core so that it does not slow the measured run on
            # a 2-core machine (smaps_rollup: ~3 ms for 32 processes, so every half second).
            done.wait(max(SAMPLE_SECONDS, 20 * (time.perf_counter() - began)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        output += f"\n[bench] killed after {timeout:.0f} s"
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
    return ProcessRun(proc.returncode, wall, peak[0], int(peak[1]), output)


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals: the wall time during which any party trained."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total
