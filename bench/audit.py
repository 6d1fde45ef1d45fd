"""How long ``hydrafed audit`` takes to re-derive a run, against the run's own time.

Usage: python -m bench.audit [--parties 10] [--rounds 20] [--skip-docs] [--render-only]

One real ``hydrafed simulate`` run (the MNIST MLP task of the other benchmarks, local buckets,
no baselines), then ``hydrafed audit`` of its output folder twice: in process (the audit's own
split: download, verify, aggregate) and as the command an outsider runs (process wall time,
imports included). The docs table (section "Audit" of docs/benchmarks.md) is printed and, unless
``--skip-docs``, written; the machine's load average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from typing import Any

import torch

from bench import _docs, _env, _hydrafed
from bench.vs_flower import task_spec
from hydrafed.worker import audit_inputs
from hydrafed.worker.audit import run_audit, use_threads

HEADING = "Audit"
OUT = _env.REPO_ROOT / "runs" / "bench" / "audit"
RESULTS = _env.REPO_ROOT / "bench" / "results" / "audit.json"


def _load() -> str:
    """The 1/5/15-minute load averages: timings on a shared machine need them beside them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def measure(parties: int, rounds: int) -> dict[str, Any]:
    """One simulate run and its audits; their seconds and verdicts."""
    out = OUT / f"n{parties}-r{rounds}"
    run = _hydrafed.simulate(task_spec(rounds), parties, out)
    if not run.ok or run.report is None:
        return {"parties": parties, "rounds": rounds, "ok": False, "simulateWall": run.wall}
    load_before = _load()
    threads = use_threads()  # as the command does
    started = time.perf_counter()
    report = run_audit(audit_inputs.from_run_dir(out))
    in_process = time.perf_counter() - started
    started = time.perf_counter()
    cli = subprocess.run(
        [str(_hydrafed.HYDRAFED), "audit", str(out), "--json", str(out / "audit.json")],
        cwd=_env.REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "dumb"},
        check=False,
    )
    cli_wall = time.perf_counter() - started
    timings = run.report["timings"]
    return {
        "parties": parties,
        "rounds": rounds,
        "ok": True,
        "auditOk": report.ok and cli.returncode == 0,
        "updates": sum(len(r.announcements) for r in report.rounds),
        "simulateWall": run.wall,
        "federationSeconds": timings["federationSeconds"],
        "auditSeconds": in_process,
        "auditSplit": {k: report.seconds[k] for k in ("download", "verify", "aggregate")},
        "auditCommandWall": cli_wall,
        "torchThreads": threads,
        "load": {"beforeAudit": load_before, "after": _load()},
    }


def render(result: dict[str, Any]) -> str:
    """The docs section: the table, what the columns mean, the machine and how to rerun."""
    if not result["ok"]:
        return f"The simulate run (N={result['parties']}, {result['rounds']} rounds) failed: no figures."
    split = result["auditSplit"]
    header = [
        "N x rounds",
        "updates",
        "run: federation (s)",
        "run: simulate wall (s)",
        "audit (s)",
        "download / verify / aggregate (s)",
        "`hydrafed audit` wall (s)",
        "audit / federation",
        "verdict",
    ]
    row = [
        f"{result['parties']} x {result['rounds']}",
        str(result["updates"]),
        f"{result['federationSeconds']:.1f}",
        f"{result['simulateWall']:.1f}",
        f"{result['auditSeconds']:.2f}",
        f"{split['download']:.2f} / {split['verify']:.2f} / {split['aggregate']:.2f}",
        f"{result['auditCommandWall']:.1f}",
        f"{result['auditSeconds'] / result['federationSeconds']:.3f}",
        "green" if result["auditOk"] else "FAILED",
    ]
    return "\n\n".join(
        [
            "`hydrafed audit RUN_DIR` re-downloads every announced update of a `hydrafed simulate` run "
            "(local buckets), checks its sha256, loads and checks it, re-runs each round's FedAvg in "
            "ledger order and compares it with the next round's announced start and the final model. "
            "Task: the MNIST MLP of the other sections (lr 0.3, batch 64, 1 local epoch), no baselines. "
            f"`audit` is the in-process audit (reading the ledger record included; "
            f"{result.get('torchThreads', 1)} torch thread, as `hydrafed worker` and the command use by "
            "default: `HYDRAFED_TORCH_THREADS`); the command's wall adds Python and torch imports. "
            "The federation column is the run's own time from the "
            "first party process start to the last result (training included); one auditor does "
            "serially what each party did for itself every round, without training or waiting.",
            _docs.table(header, [row]),
            "Threads: the first run of this benchmark used torch's default of 2 threads and took 19.5 s "
            "for the audit at a load average of 10; the same audit of the same folder took 4.3 s with "
            "2 threads and 1.0 s with 1 thread minutes later (load 7): on a shared machine the "
            "threads' barriers cost more than the small tensors gain, so the audit, like the workers, "
            "uses one.",
            f"Machine: {_docs.machine_of(result)}; torch {torch.__version__}; load average (1/5/15 min) "
            f"{result['load']['beforeAudit']} before the audit, {result['load']['after']} after. "
            "Rerun: `.venv/bin/python -m bench.audit` (`--parties`, `--rounds`); raw figures in "
            "`bench/results/audit.json`.",
        ]
    )


def main() -> None:
    """Run, print the docs section and (unless --skip-docs) write it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--skip-docs", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite docs from the results file")
    args = parser.parse_args()

    def run() -> dict[str, Any]:
        print(f"[audit] simulate N={args.parties} x {args.rounds} rounds, then audit ...", flush=True)
        return measure(args.parties, args.rounds)

    _docs.publish(HEADING, RESULTS, run, render, render_only=args.render_only, skip_docs=args.skip_docs)


if __name__ == "__main__":
    main()
