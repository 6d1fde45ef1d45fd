"""`hydrafed audit` on a real `hydrafed simulate` run: devnet head, local buckets, party processes.

A clean run audits green from its output folder alone; a copy with one object changed after
the run (tampered, or deleted) fails, naming the round and the party.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hydrafed.cli import app
from hydrafed.ports import free_base_port
from hydrafed.spec import FederationSpec, TrainingSpec
from hydrafed.worker import simulate as sim

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 3-party, 2-round federation on scikit-learn's digits (no download), no baselines."""
    out = tmp_path_factory.mktemp("audit") / "run"
    spec = FederationSpec(training=TrainingSpec(dataset="digits", rounds=2, local_epochs=1))
    options = sim.SimulateOptions(parties=3, out=out, api_port=free_base_port(3), baselines=False)
    report = sim.run_simulation(spec, options, Console(record=True, width=120))
    return out, report


def _audit(*args: str) -> Any:
    return CliRunner().invoke(app, ["audit", *args], catch_exceptions=False)


def test_a_clean_run_audits_green(run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    # Prepare
    out, report = run

    # Execute
    result = _audit(str(out), "--json", str(tmp_path / "audit.json"), "--rebuild-initial")

    # Assert: round 1 started from the seeded model, and every later round from the one before
    assert result.exit_code == 0, result.output
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["ok"] is True and audit["findings"] == [] and audit["firstFailure"] is None
    assert audit["headId"] == report["head"]["headId"] and audit["specHash"] == report["config"]["specHash"]
    digests = report["parties"][0]["globalWeightsSha256"]
    assert [r["aggregateSha256"] for r in audit["rounds"]] == digests
    assert [r["reproduced"] for r in audit["rounds"]] == [True, True]
    assert audit["rounds"][1]["startSha256"] == digests[0]
    assert audit["finalSha256"] == report["parties"][0]["finalWeightsSha256"]
    assert {c["matches"] for c in audit["finalClaims"].values()} == {True} and len(audit["finalClaims"]) == 3
    assert "every round re-derives bit for bit" in " ".join(result.output.split())
    # The ledger the parties kept names each round's start: round 2's is round 1's global state.
    ledger = json.loads((out / "ledger.json").read_text())
    assert {row["startSha256"] for row in ledger if row["round"] == 2} == {digests[0]}


@pytest.mark.parametrize("change", ["tampered", "deleted"])
def test_a_changed_object_fails_naming_round_and_party(
    run: tuple[Path, dict[str, Any]], tmp_path: Path, change: str
) -> None:
    # Prepare: a copy of the run with party-02's round-2 update changed after the fact
    out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    obj = copy / "buckets" / "party-02" / "simulate" / "rounds" / "2" / "party-02.safetensors"
    if change == "tampered":
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0x10
        obj.write_bytes(bytes(data))
    else:
        obj.unlink()

    # Execute
    result = _audit(str(copy), "--json", str(tmp_path / "audit.json"))

    # Assert
    code = "HashMismatch" if change == "tampered" else "MissingObject"
    assert result.exit_code == 1
    assert f"audit failed at round 2, party party-02: {code}" in " ".join(result.output.split())
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["ok"] is False
    assert (audit["firstFailure"]["round"], audit["firstFailure"]["party"]) == (2, "party-02")
    assert audit["rounds"][0]["verdict"] == "ok" and audit["rounds"][1]["verdict"] == "fail"


def test_a_final_claim_that_differs_fails(run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = run
    result = _audit(str(out), "--nft-asset", "ab" * 32)
    assert result.exit_code == 1
    assert "FinalMismatch" in result.output and "nft-asset" in result.output
