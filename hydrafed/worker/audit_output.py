"""How ``hydrafed audit`` shows its result: a rich table per round, the findings, the JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hydrafed.worker.audit import AuditReport


def _short(digest: str | None) -> str:
    return "-" if not digest else digest[:12]


def print_report(report: AuditReport, console: Console) -> None:
    """One row per round (members, start, aggregate, verdict), then every finding."""
    table = Table(
        title=f"hydrafed audit: {report.fed} (spec {report.spec_hash}, head {_short(report.head_id)})"
    )
    for column in ("round", "members", "objects", "started from", "aggregate", "verdict"):
        table.add_column(column, justify="right" if column == "round" else "left")
    everyone = report.members
    for entry in report.rounds:
        objects = [a for a in entry.announcements if a.object != "ok"]
        absent = [m for m in everyone if m not in entry.members]
        members = f"all {len(everyone)}" if not absent else f"{len(entry.members)}, not {', '.join(absent)}"
        verdict = "[green]ok[/]" if entry.ok else "[bold red]FAIL[/]"
        if entry.ok and entry.reproduced is None:
            verdict = "[yellow]ok (unclaimed)[/]"
        table.add_row(
            str(entry.round),
            members if entry.members else "-",
            "all verified" if not objects else ", ".join(f"{a.party}: {a.object}" for a in objects),
            _short(entry.start_sha256),
            _short(entry.aggregate_sha256),
            verdict,
        )
    console.print(table)
    final = report.final_sha256 or "not re-derived"
    claims = ", ".join(
        f"{label} {'matches' if sha == report.final_sha256 else 'DIFFERS'}"
        for label, sha in sorted(report.final_claims.items())
    )
    console.print(f"final model sha256 {final}" + (f" ({claims})" if claims else " (nothing claims it)"))
    for finding in report.findings:
        who = f", {finding.party}" if finding.party else ""
        console.print(f"[red]round {finding.round}{who}: {finding.code}[/]: {finding.message}")
    seconds = report.seconds
    console.print(
        f"audit {seconds.get('total', 0.0):.1f}s (download {seconds.get('download', 0.0):.1f}s, "
        f"verify {seconds.get('verify', 0.0):.1f}s, aggregate {seconds.get('aggregate', 0.0):.1f}s): "
        + ("[green]every round re-derives bit for bit[/]" if report.ok else "[bold red]failed[/]")
    )


def write_json(report: AuditReport, path: Path) -> None:
    """The report as JSON (schema ``hydrafed.audit/v1``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report.to_json(), indent=2) + "\n")


def failure_line(report: AuditReport) -> str | None:
    """The one line naming the first round and party where anything differs; None when green."""
    first = report.first_failure
    if first is None:
        if report.ok:
            return None
        bad = next(r for r in report.rounds if not r.ok)
        return f"audit failed at round {bad.round}: it could not be re-derived"
    who = f", party {first.party}" if first.party else ""
    return f"audit failed at round {first.round}{who}: {first.code}: {first.message}"
