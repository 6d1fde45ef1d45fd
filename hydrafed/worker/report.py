"""The simulate report: report.json (schema in docs/simulate.md), accuracy.png and ledger.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hydrafed.spec import FederationSpec
from hydrafed.worker.phases import TIMED as PHASES
from hydrafed.worker.records import PartyResult

SCHEMA = "hydrafed.simulate/v1"


def build_report(
    *,
    spec: FederationSpec,
    options: Mapping[str, Any],
    spec_digest: str,
    head_id: str,
    results: Mapping[str, PartyResult],
    local_only: Mapping[str, list[float]],
    centralized: list[float],
    fanout: Mapping[str, Any],
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """Everything a reader needs to judge the run, as plain JSON data."""
    parties = []
    shared = _evaluations(results)
    for name, result in results.items():
        # A round this party did not evaluate shows the accuracy of the party that did: the
        # weights are the same (identicalWeightsEveryRound); a round nobody evaluated is None.
        federated = [r.metrics.get("accuracy", shared.get(r.round)) for r in result.rounds]
        local = list(local_only.get(name, []))
        parties.append(
            {
                "name": name,
                "samples": result.samples,
                "divergedRounds": [r.round for r in result.rounds if r.train_metrics.get("diverged")],
                "federatedAccuracy": federated,
                "localOnlyAccuracy": local,
                "final": {
                    "federated": federated[-1] if federated else None,
                    "localOnly": local[-1] if local else None,
                    "gain": (federated[-1] - local[-1])
                    if federated and federated[-1] is not None and local
                    else None,
                },
                "finalWeightsSha256": result.final_sha256,
                "globalWeightsSha256": [r.global_sha256 for r in result.rounds],
                "missedRounds": [r.round for r in result.rounds if r.missed],
                "evaluatedRounds": [r.round for r in result.rounds if "accuracy" in r.metrics],
            }
        )
    membership = _membership(results)
    per_round: list[dict[str, Any]] = []
    for index in range(spec.training.rounds):
        per_round.append(
            {
                "round": index + 1,
                "parties": {
                    name: {
                        **{phase: result.rounds[index].timings.get(phase, 0.0) for phase in PHASES},
                        "startedAt": result.rounds[index].started_at,
                        "finishedAt": result.rounds[index].finished_at,
                        "globalSha256": result.rounds[index].global_sha256,
                    }
                    for name, result in results.items()
                    if index < len(result.rounds)
                },
            }
        )
    train_seconds = sum(r.timings.get("train", 0.0) for res in results.values() for r in res.rounds)
    return {
        "schema": SCHEMA,
        "config": {
            **dict(options),
            "specHash": spec_digest,
            "training": spec.training.model_dump(mode="json", by_alias=True),
            "head": spec.head.model_dump(mode="json", by_alias=True),
            # With these two the spec behind specHash can be rebuilt (``hydrafed audit``); the
            # local buckets' root is a path of this run's machine, not part of the agreement.
            "roundPolicy": spec.round_policy.model_dump(mode="json", by_alias=True),
            "storage": spec.storage.model_dump(mode="json", by_alias=True, exclude={"root"}),
        },
        "head": {"headId": head_id, "finalizedOutputs": len(fanout.get("finalizedUTxO", {}))},
        "parties": parties,
        "evaluation": {
            **spec.evaluation.model_dump(mode="json", by_alias=True),
            "evaluators": [p["name"] for p in parties if p["evaluatedRounds"]],
            "rounds": sorted(shared),
        },
        "rounds": membership,
        "offences": _offences(results),
        "centralizedAccuracy": list(centralized),
        "identicalFinalWeights": len({r.final_sha256 for r in results.values()}) == 1,
        "identicalWeightsEveryRound": all(
            len({p["globalSha256"] for p in row["parties"].values()}) == 1
            and len(row["parties"]) == len(results)
            for row in per_round
        ),
        "timings": {
            **dict(timings),
            "trainSecondsAllParties": train_seconds,
            "perRound": per_round,
        },
    }


def _evaluations(results: Mapping[str, PartyResult]) -> dict[int, float]:
    """Round -> the accuracy of its global model, from the first party (by name) that evaluated it."""
    found: dict[int, float] = {}
    for name in sorted(results):
        for record in results[name].rounds:
            if "accuracy" in record.metrics:
                found.setdefault(record.round, float(record.metrics["accuracy"]))
    return found


def _membership(results: Mapping[str, PartyResult]) -> list[dict[str, Any]]:
    """Per round, as the first party saw it (every party sees the same ledger): who counted,
    who was excluded after download (party -> code), whose txs were ignored, and whether every
    party agrees on that membership."""
    if not results:
        return []
    first = next(iter(results.values()))
    rows = []
    for index, record in enumerate(first.rounds):
        views = {
            (tuple(r.rounds[index].members), tuple(sorted(r.rounds[index].excluded.items())))
            for r in results.values()
            if index < len(r.rounds)
        }
        rows.append(
            {
                "round": record.round,
                "members": list(record.members),
                "excluded": dict(record.excluded),
                "ignored": [
                    {"party": i["party"], "code": i["code"]}
                    for i in first.ignored
                    if i["round"] == record.round and i["code"] not in ("HashMismatch", "BadUpdate")
                ],
                "identicalMembership": len(views) == 1,
            }
        )
    return rows


def _offences(results: Mapping[str, PartyResult]) -> dict[str, list[dict[str, Any]]]:
    """Party -> its offences (round, code, reason) as the first party flagged them."""
    if not results:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for row in next(iter(results.values())).ignored:
        if row.get("offence"):
            found.setdefault(str(row["party"]), []).append(
                {"round": row["round"], "code": row["code"], "reason": row["reason"]}
            )
    return found


def write_outputs(report: Mapping[str, Any], results: Mapping[str, PartyResult], out: Path) -> None:
    """report.json, ledger.json (the confirmed announcements, as party 1 saw them) and the plot."""
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    first = next(iter(results.values()))
    (out / "ledger.json").write_text(json.dumps(first.announcements, indent=2) + "\n")
    plot_accuracy(report, out / "accuracy.png")


def plot_accuracy(report: Mapping[str, Any], path: Path) -> None:
    """Per-party federated curves (solid), local-only (dashed, same colour), centralized (black)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colours = plt.get_cmap("tab10")
    for index, party in enumerate(report["parties"]):
        colour = colours(index % 10)
        rounds = range(1, len(party["federatedAccuracy"]) + 1)
        ax.plot(
            rounds,
            [math.nan if a is None else 100 * a for a in party["federatedAccuracy"]],
            color=colour,
            label=f"{party['name']} federated",
        )
        if party["localOnlyAccuracy"]:
            ax.plot(
                rounds, [100 * a for a in party["localOnlyAccuracy"]], color=colour, linestyle="--", alpha=0.7
            )
    if report["centralizedAccuracy"]:
        rounds = range(1, len(report["centralizedAccuracy"]) + 1)
        ax.plot(
            rounds,
            [100 * a for a in report["centralizedAccuracy"]],
            color="black",
            linestyle="--",
            label="centralized (pooled data)",
        )
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"hydrafed simulate: {len(report['parties'])} parties (dashed: local-only)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(report: Mapping[str, Any], console: Console) -> None:
    """party, samples, local-only, federated, gain; then the centralized line."""
    table = Table(title="hydrafed simulate: final test accuracy")
    for column in ("party", "samples", "local-only", "federated", "gain"):
        table.add_column(column, justify="left" if column == "party" else "right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    for party in report["parties"]:
        final = party["final"]
        gain = final["gain"]
        table.add_row(
            party["name"],
            str(party["samples"]),
            pct(final["localOnly"]),
            pct(final["federated"]),
            "-" if gain is None else f"{100 * gain:+.2f}",
        )
    console.print(table)
    if report["centralizedAccuracy"]:
        console.print(f"centralized (all data pooled, same budget): {pct(report['centralizedAccuracy'][-1])}")
    timings = report["timings"]
    console.print(
        f"wall {timings['wallSeconds']:.1f}s: federation {timings['federationSeconds']:.1f}s "
        f"(local training {timings['trainSecondsAllParties']:.1f}s summed over parties), "
        f"baselines {timings['baselinesSeconds']:.1f}s; "
        f"identical final weights: {report['identicalFinalWeights']}"
    )
