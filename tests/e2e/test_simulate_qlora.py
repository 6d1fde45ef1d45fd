"""`hydrafed simulate --model smollm2-135m --qlora --lora-rank 8`: three 4-bit parties on the devnet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hydrafed.cli import app
from hydrafed.errors import ConfigError
from hydrafed.ports import free_base_port
from hydrafed.worker.lm import smollm2

pytestmark = pytest.mark.e2e


def test_three_party_qlora_round_on_the_cpu(tmp_path: Path) -> None:
    try:
        smollm2.gguf_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate", "--model", "smollm2-135m", "--qlora", "--lora-rank", "8",
            "--aggregation", "lora-exact", "--parties", "3", "--rounds", "1", "--local-steps", "1",
            "--no-baselines", "--out", str(out), "--api-port", str(free_base_port(3)),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["identicalFinalWeights"] is True
    assert len(report["parties"]) == 3
    training = report["config"]["training"]
    assert training["lora"]["rank"] == 8 and training["aggregation"] == "lora-exact"
    assert training["model"] == "smollm2-135m" and training["dataset"] == "text"
