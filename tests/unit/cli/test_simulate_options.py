"""`hydrafed simulate`'s refusals: they name the flag typed, reject NaN and infinity as such, and
come before torch, pycardano or the fork server start (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hydrafed import errors
from hydrafed.spec import EvaluationScope
from hydrafed.worker import simulate_args

pytestmark = pytest.mark.unit

_PROBE = """
import json, sys
from hydrafed import cli
sys.argv = ["hydrafed", "simulate", *json.loads(sys.argv[1])]
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
heavy = [m for m in ("torch", "pycardano", "multiprocessing.forkserver", "hydrafed.worker.simulate")
         if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _refuse(args: list[str], tmp_path: Path) -> tuple[dict[str, object], str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([*args, "--out", str(tmp_path / "run")])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), " ".join(out.stderr.split())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--parties", "0"], "--parties 0: a Hydra head holds 1 to 29 parties"),
        (["--parties", "30"], "--parties 30"),
        (["--batch", "0"], "--batch 0: Input should be greater than or equal to 1"),
        (["--lr", "nan"], "--lr nan: NaN is not a number"),
        (["--lr", "inf"], "--lr inf: infinity is not a number"),
        (["--partition", "halves"], "--partition halves"),
        (["--evaluate-every", "0"], "--evaluate-every 0"),
        (["--store", "tape"], "--store 'tape' is unknown"),
    ],
)
def test_a_bad_option_is_refused_naming_its_flag_before_anything_heavy(
    args: list[str], words: str, tmp_path: Path
) -> None:
    # Execute
    probe, stderr = _refuse(args, tmp_path)

    # Assert
    assert probe["code"] == errors.ConfigError.exit_code
    assert words in stderr
    assert probe["heavy"] == []


def test_the_flags_become_the_spec() -> None:
    # Execute
    spec = simulate_args.federation_spec(
        {"learning_rate": 0.3, "batch_size": 32, "rounds": None},
        preset="paper",
        evaluation={"every": 5, "scope": "shared"},
    )

    # Assert: the flags override the preset, None leaves the default
    assert (spec.training.learning_rate, spec.training.batch_size, spec.training.momentum) == (0.3, 32, 0.0)
    assert spec.training.rounds == 10
    assert (spec.evaluation.every, spec.evaluation.scope) == (5, EvaluationScope.SHARED)


def test_qlora_fills_in_the_language_model_defaults_under_the_flags() -> None:
    spec = simulate_args.federation_spec({"learning_rate": 1e-3}, qlora=True)
    assert spec.training.model.value == "smollm2-135m"
    assert spec.training.learning_rate == 1e-3
    assert spec.training.lora is not None


def test_an_unknown_preset_and_a_file_as_out_are_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="--preset 'fast' is unknown"):
        simulate_args.federation_spec({}, preset="fast")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.ConfigError, match=r"--out .* is a file"):
        simulate_args.check_options(parties=3, store="local", out=tmp_path / "file", api_port=28100)
