"""Where a run's memory goes: summed PSS of a command's process tree over time, and at its peak.

Usage: python -m bench.memory_tree [--every 1.0] [--out DIR] -- COMMAND...

e.g. ``python -m bench.memory_tree --out /tmp/m29 -- hydrafed simulate --parties 29 --store
seaweedfs --rounds 3 --no-baselines --out /tmp/a29``. Every ``--every`` seconds it reads every
process's ``/proc/PID/smaps_rollup`` (``_measure.tree_memory``); it prints the peak sum, each
process's share at that peak, and writes ``memory.json`` (timeline and peak) and the full
``/proc/PID/smaps`` of the median party at the peak (``party.smaps``: the mappings that hold a
party's memory, summed by ``summarise_smaps``) and of the largest one (``largest.smaps``: in a
simulate run, the fork server, whose mappings the parties inherit). Parties are the processes
sharing the most common command line (the fork server and its children all do).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from bench import _measure

_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def summarise_smaps(text: str) -> dict[str, float]:
    """PSS in MiB by kind of mapping: ``[heap]``, anonymous maps >= 1 MiB (large mallocs, thread
    arenas), smaller anonymous maps, and file mappings by file name."""
    totals: dict[str, float] = collections.defaultdict(float)
    kind = ""
    for line in text.splitlines():
        if _MAPPING.match(line):
            fields = line.split(None, 5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5].strip() if len(fields) > 5 else ""
            if not name:
                kind = "anon >= 1 MiB" if high - low >= 2**20 else "anon < 1 MiB"
            elif name.startswith("["):
                kind = name
            else:
                kind = name.rsplit("/", 1)[-1]
        elif line.startswith("Pss:"):
            totals[kind] += int(line.split()[1]) / 1024
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _parties(snapshot: list[_measure.ProcessMemory]) -> list[_measure.ProcessMemory]:
    commands = collections.Counter(p.command for p in snapshot)
    if not commands:
        return []
    common, _ = commands.most_common(1)[0]
    return [p for p in snapshot if p.command == common]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=None, help="folder for memory.json and party.smaps")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    out: Path | None = args.out
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context((out / "output.log").open("w")) if out is not None else subprocess.DEVNULL
        started = time.perf_counter()
        load_before = os.getloadavg()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    timeline: list[tuple[float, float, int]] = []
    peak: list[_measure.ProcessMemory] = []
    party_smaps = server_smaps = ""
    while proc.poll() is None:
        snapshot = _measure.tree_memory(root)
        total = sum(p.pss for p in snapshot)
        timeline.append((round(time.perf_counter() - started, 2), round(total, 1), len(snapshot)))
        if total > sum(p.pss for p in peak):
            peak = snapshot
            parties = sorted(_parties(snapshot), key=lambda p: p.pss)
            if parties and out is not None:
                with contextlib.suppress(OSError):
                    party_smaps = Path(f"/proc/{parties[len(parties) // 2].pid}/smaps").read_text()
                    server_smaps = Path(f"/proc/{parties[-1].pid}/smaps").read_text()
        time.sleep(args.every)
    wall = time.perf_counter() - started
    if out is not None:
        (out / "party.smaps").write_text(party_smaps)
        (out / "largest.smaps").write_text(server_smaps)
        (out / "memory.json").write_text(
            json.dumps(
                {
                    "command": command,
                    "returncode": proc.returncode,
                    "wall_seconds": wall,
                    "load_average": {"start": load_before, "end": os.getloadavg()},
                    "peak_pss_mib": sum(p.pss for p in peak),
                    "peak": [asdict(p) for p in peak],
                    "timeline": timeline,
                },
                indent=1,
            )
        )

    parties = _parties(peak)
    print(f"exit {proc.returncode}, wall {wall:.1f} s, load average {os.getloadavg()}")
    print(f"peak summed PSS {sum(p.pss for p in peak):.0f} MiB over {len(peak)} processes")
    if parties:
        sizes = [p.pss for p in parties]
        print(
            f"  parties (and the fork server): {len(parties)}, {sum(sizes):.0f} MiB "
            f"(median {statistics.median(sizes):.1f}, "
            f"min {min(sizes):.1f}, max {max(sizes):.1f} MiB)"
        )
    for p in sorted(peak, key=lambda p: -p.pss):
        if p not in parties:
            print(f"  {p.pss:8.1f} MiB (anon {p.pss_anon:.1f})  {p.command[:90]}")
    if party_smaps:
        print("median party at the peak, PSS by mapping (MiB):")
        for kind, mib in list(summarise_smaps(party_smaps).items())[:8]:
            print(f"  {mib:8.1f}  {kind}")


if __name__ == "__main__":
    main()
