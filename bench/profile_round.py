"""Where a steady round's CPU time goes in ``hydrafed simulate``, every process of it sampled.

Usage: python -m bench.profile_round [--parties 10] [--rounds 2 8] [--skip-docs]

Runs the reference task (bench.vs_flower's: MLP, lr 0.3, batch 64, E=1) twice, once with few
rounds and once with more; the difference divided by the extra rounds is what one steady round
costs, without start-up and shut-down. Three views of it: the CPU seconds of the parent and of
the parties (psutil, every process of the tree), the parties' seconds per phase (report.json),
and the parent's CPU by category from py-spy samples, each sample going to the innermost frame
that names one (devnet, head client, event loop, ...). py-spy does not follow processes forked
by a fork server, so the parties are seen through their phases. py-spy comes from PyPI
(``pip install py-spy``); set PY_SPY to its path if it is not on PATH. Prints the docs table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from bench import _docs, _env, _hydrafed
from bench.vs_flower import task_spec
from hydrafed.ports import free_base_port

HEADING = "Where a round's time goes"
OUT = _env.REPO_ROOT / "runs" / "bench" / "profile_round"
RESULTS = _env.REPO_ROOT / "bench" / "results" / "profile_round.json"
RATE = 50
"""Samples per second per process (100 Hz fell behind on 2 busy cores)."""

CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("imports", re.compile(r"importlib|<frozen importlib")),
    ("hashing", re.compile(r"\(hashlib|sha256|\bstate_sha256\b")),
    ("serialisation", re.compile(r"safetensors|\bcbor2\b|hydra/cbor\.py")),
    ("training", re.compile(r"\btrain_round\b")),
    ("evaluation", re.compile(r"\bevaluate\b|_evaluate_state")),
    ("aggregation", re.compile(r"worker/aggregation/|\baggregate_round\b|check_fits")),
    ("storage", re.compile(r"hydrafed/storage/|\bload_peer_update\b|boto|botocore")),
    ("devnet", re.compile(r"hydrafed/hydra/devnet/|hydrafed/hydra/ledger\.py")),
    ("head client", re.compile(r"hydrafed/hydra/|hydrafed/worker/ledger\.py|hydrafed/rounds\.py")),
    ("event loop", re.compile(r"asyncio/|aiohttp/|selectors\.py")),
)
"""Category -> a frame pattern; the innermost frame of a sample that matches one decides."""


def _py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: `pip install py-spy` (PyPI) or set PY_SPY to its path")
    return found


def categorise(frames: list[str]) -> str:
    """The category of one sampled stack (root first), decided by its innermost matching frame."""
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if pattern.search(frame):
                return name
    return "other"


def read_raw(path: Path) -> dict[tuple[str, str], int]:
    """(role, category) -> samples, from py-spy's raw (collapsed) output."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        process, *frames = stack.split(";")
        role = "party" if "forkserver" in process else "parent"
        counts[(role, categorise(frames))] += int(count)
    return dict(counts)


def profile(parties: int, rounds: int) -> dict[str, object]:
    """One simulate run under py-spy; its samples by (role, category) and its report's timings."""
    out = OUT / f"n{parties}-r{rounds}"
    shutil.rmtree(out, ignore_errors=True)
    raw = OUT / f"n{parties}-r{rounds}.txt"
    argv = [
        str(_hydrafed.HYDRAFED),
        "simulate",
        "--parties",
        str(parties),
        *_hydrafed.cli_args(task_spec(rounds)),
        "--out",
        str(out),
        "--api-port",
        str(free_base_port(parties)),
        "--no-baselines",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    spy = subprocess.Popen(
        [_py_spy(), "record", "-r", str(RATE), "-f", "raw", "-o", str(raw), "--", *argv],
        cwd=_env.REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "dumb"},
    )
    cpu = _tree_cpu(spy)
    stderr = spy.stderr.read() if spy.stderr else ""
    done = subprocess.CompletedProcess(spy.args, spy.wait(), "", stderr)
    if not raw.is_file() or not (out / "report.json").is_file():
        raise SystemExit(f"profiling failed (exit {done.returncode}): {done.stderr[-2000:]}")
    behind = [line for line in done.stderr.splitlines() if "behind in sampling" in line]
    wall = time.perf_counter() - started
    report = json.loads((out / "report.json").read_text())
    walls = [r.wall for r in _hydrafed.round_figures(report)]
    phases = {
        phase: sum(p[phase] for r in report["timings"]["perRound"] for p in r["parties"].values())
        for phase in _hydrafed.PHASES
    }
    samples = read_raw(raw)
    return {
        "rounds": rounds,
        "wall": wall,
        "round_walls": walls,
        "behind": behind[-1] if behind else "",
        "cpu": cpu,
        "phases": phases,
        "samples": [[role, cat, n] for (role, cat), n in sorted(samples.items())],
    }


def _role(cmd: str) -> str | None:
    if not cmd or "py-spy" in cmd:
        return None
    return "party" if "forkserver" in cmd else ("parent" if "simulate" in cmd else "other")


def _tree_cpu(spy: subprocess.Popen[str]) -> dict[str, float]:
    """CPU seconds (user + system) of the simulate tree by role, polled until it ends."""
    last: dict[int, tuple[str, float]] = {}
    roles: dict[int, str] = {}
    root = psutil.Process(spy.pid)
    while spy.poll() is None:
        try:
            procs = root.children(recursive=True)
        except psutil.Error:
            break
        for proc in procs:
            try:
                times = proc.cpu_times()
                role = roles.get(proc.pid) or _role(" ".join(proc.cmdline()))
            except psutil.Error:
                continue
            if role is None:  # py-spy itself, or a process not yet exec'd (no cmdline)
                continue
            roles[proc.pid] = role  # a zombie's cmdline is empty: the role is fixed at first sight
            last[proc.pid] = (role, times.user + times.system)
        time.sleep(0.25)
    out: collections.Counter[str] = collections.Counter()
    for role, seconds in last.values():
        out[role] += seconds
    return dict(out)


def _steady(short: dict[str, float], long: dict[str, float], extra: int) -> dict[str, float]:
    return {k: (long.get(k, 0.0) - short.get(k, 0.0)) / extra for k in sorted(set(short) | set(long))}


def steady_round(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per steady round: CPU by role, the parties' phase seconds, the parent's CPU by category."""
    short, long = data["short"], data["long"]
    extra = int(long["rounds"]) - int(short["rounds"])
    samples = [{c: n / RATE for role, c, n in run["samples"] if role == "parent"} for run in (short, long)]
    return {
        "cpu": _steady(short["cpu"], long["cpu"], extra),
        "phases": _steady(short["phases"], long["phases"], extra),
        "parent": _steady(samples[0], samples[1], extra),
    }


def render(data: dict[str, Any]) -> str:
    """The docs section: three tables of one steady round, and how to rerun."""
    parties = int(data["parties"])
    steady = steady_round(data)
    cpu = steady["cpu"]
    cpu_rows = [
        ["parties (all)", f"{cpu.get('party', 0.0):.3f}", f"{cpu.get('party', 0.0) / parties:.3f}"],
        ["parent (devnet, live view)", f"{cpu.get('parent', 0.0):.3f}", ""],
        ["other (resource tracker)", f"{cpu.get('other', 0.0):.3f}", ""],
    ]
    phases = steady["phases"]
    phase_total = sum(phases.values())
    phase_rows = [
        [phase, f"{seconds:.3f}", f"{seconds / parties:.4f}", f"{seconds / phase_total * 100:.0f}%"]
        for phase, seconds in phases.items()
    ]
    # The parent's samples are few (it is mostly idle) and its start-up varies between runs, so
    # its categories come from the longer run alone, start-up imports left out.
    parent = {c: n / RATE for role, c, n in data["long"]["samples"] if role == "parent" and c != "imports"}
    parent_total = sum(parent.values())
    parent_rows = [
        [category, f"{seconds:.2f}", f"{seconds / parent_total * 100:.0f}%"]
        for category, seconds in sorted(parent.items(), key=lambda kv: -kv[1])
    ]
    long = data["long"]
    walls = long["round_walls"][1:]
    mean_wall = sum(walls) / len(walls) if walls else float("nan")
    return "\n\n".join(
        [
            f"One steady round of `hydrafed simulate` at N={parties} on the reference task of Flower "
            f"side by side: a run of {long['rounds']} rounds minus a run of {data['short']['rounds']}, "
            "divided by the extra rounds, so start-up and shut-down cancel out. CPU seconds of every "
            "process of the tree (psutil):",
            _docs.table(["process", "CPU s per round", "per party"], cpu_rows),
            "The parties' seconds per phase (report.json, summed over parties; wall time inside each "
            "party, so `wait` is idle and `train` is CPU; the phases of docs/simulate.md):",
            _docs.table(["phase", "all parties (s)", "per party (s)", "share"], phase_rows),
            f"The parent's CPU by category over the whole longer run, start-up imports left out "
            f"(py-spy at {RATE} Hz; each sample goes to the innermost frame that names a category; "
            "py-spy does not follow the fork server's children):",
            _docs.table(["parent category", "CPU s (whole run)", "share"], parent_rows),
            f"Mean round wall (rounds 2..) of the longer run, py-spy attached: {mean_wall:.3f} s. "
            f"Machine: {_docs.machine_of(data)}; load average while measured: {data.get('load', 'n/a')}.",
            *([str(data["note"])] if data.get("note") else []),
            "Rerun: `.venv/bin/python -m bench.profile_round` (needs py-spy from PyPI); raw figures in "
            "`bench/results/profile_round.json`, stacks under `runs/bench/profile_round/`.",
        ]
    )


def main() -> None:
    """Profile both runs, write the results, print (and write) the docs section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, default=10)
    parser.add_argument("--rounds", type=int, nargs=2, default=[2, 8])
    parser.add_argument("--skip-docs", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite docs from the results file")
    args = parser.parse_args()

    def run() -> dict[str, Any]:
        short = profile(args.parties, args.rounds[0])
        long = profile(args.parties, args.rounds[1])
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        data: dict[str, Any] = {"parties": args.parties, "short": short, "long": long, "load": load}
        if RESULTS.is_file():  # a hand-written note on an earlier run (before/after) is kept
            data["note"] = json.loads(RESULTS.read_text()).get("note", "")
        return data

    _docs.publish(HEADING, RESULTS, run, render, render_only=args.render_only, skip_docs=args.skip_docs)


if __name__ == "__main__":
    main()
