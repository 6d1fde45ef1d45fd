"""`hydrafed simulate --escrow --nft`: deposits locked and released in the head, the NFT minted
on the emulated L1 after fanout, and `hydrafed audit` checking the NFT against the final model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hydrafed.cli import app
from hydrafed.hydra import nft, settlement
from hydrafed.ports import free_base_port
from hydrafed.worker.data import cache_dir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    if not (cache_dir() / "mnist" / "mnist.npz").is_file():
        pytest.skip(f"MNIST digits not fetched into {cache_dir()}: run `make data`")
    out = tmp_path_factory.mktemp("sim") / "run"
    args = ["simulate", "--parties", "3", "--rounds", "1", "--local-epochs", "1", "--sample-limit", "1000"]
    args += ["--no-baselines", "--escrow", "--nft", "--out", str(out), "--api-port", str(free_base_port(3))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    record = json.loads((out / settlement.RECORD_FILE).read_text())
    return out, report, record


def test_every_deposit_was_locked_then_released_by_m_others(
    run: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    _, report, record = run
    names = sorted(p["name"] for p in report["parties"])
    assert sorted(record["escrow"]) == names
    for name, state in record["escrow"].items():
        assert state["state"] == "released"
        assert len(state["signers"]) == 2 and name not in state["signers"]  # M = ceil(2 x 2 / 3)
        assert state["lockTx"] != state["releaseTx"]


def test_the_nft_is_named_by_the_final_model_and_the_audit_checks_it(
    run: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    out, report, record = run
    final = report["parties"][0]["finalWeightsSha256"]
    assert record["nft"]["assetName"] == final
    nft.check_model(record["nft"]["envelope"], final, record["nft"]["policyId"])
    audit = CliRunner().invoke(app, ["audit", str(out)])
    assert audit.exit_code == 0, audit.output
    assert "nft-asset matches" in " ".join(audit.output.split())
    # A record whose mint tx names another model fails the audit, naming the NFT's claim.
    other = "ab" * 32
    tampered = json.loads(json.dumps(record))
    tampered["nft"]["envelope"]["cborHex"] = tampered["nft"]["envelope"]["cborHex"].replace(final, other)
    (out / settlement.RECORD_FILE).write_text(json.dumps(tampered))
    try:
        audit = CliRunner().invoke(app, ["audit", str(out)])
    finally:
        (out / settlement.RECORD_FILE).write_text(json.dumps(record))
    assert audit.exit_code == 1, audit.output
    assert f"nft-asset names final model {other}" in " ".join(audit.output.split())
