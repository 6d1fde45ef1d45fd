"""``hydrafed simulate``'s options checked and turned into a spec, before anything heavy starts.

The CLI calls ``federation_spec`` and ``check_options`` before it starts the fork server or
imports torch, pycardano or the devnet, so a refused option costs a fraction of a second.
Errors name the flag the user typed (``--batch: ...``), never the spec field behind it. This
module imports only the spec models and the errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pydantic

from hydrafed import errors
from hydrafed import spec as spec_mod

PAPER_PRESET: dict[str, object] = {"learning_rate": 0.5, "batch_size": 64, "local_epochs": 1, "momentum": 0.0}
"""The source paper's table: plain SGD, lr 0.5, batch 64, one local epoch per round."""

LM_DEFAULTS: dict[str, object] = {
    "model": "smollm2-135m",
    "dataset": "text",
    "rounds": 3,
    "local_steps": 4,
    "batch_size": 4,
    "learning_rate": 2e-3,
    "momentum": 0.0,
    "partition": "dirichlet:0.5",
}
"""Quick CPU-sized defaults with ``--qlora``; every one can be overridden by its flag."""

FLAGS: dict[str, str] = {
    "rounds": "--rounds",
    "dataset": "--dataset",
    "dataset_path": "--dataset-path",
    "model": "--model",
    "model_path": "--model-path",
    "local_epochs": "--local-epochs",
    "local_steps": "--local-steps",
    "learning_rate": "--lr",
    "batch_size": "--batch",
    "partition": "--partition",
    "seed": "--seed",
    "sample_limit": "--sample-limit",
    "aggregation": "--aggregation",
    "lora": "--lora-rank",
    "momentum": "--preset",
}
"""TrainingSpec field -> the simulate flag that sets it."""

EVALUATION_FLAGS: dict[str, str] = {"every": "--evaluate-every", "scope": "--evaluation"}
"""EvaluationSpec field -> the simulate flag that sets it."""

MAX_PARTIES = 29
"""A Hydra head holds at most 29 parties."""

STORES = ("local", "seaweedfs", "storj")


def _flag_error(exc: pydantic.ValidationError, flags: Mapping[str, str], given: Mapping[str, object]) -> str:
    """One line per problem, each naming the flag and the value it was given."""
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        field = str(loc[0]) if loc else ""
        flag = flags.get(field)
        message = str(error["msg"]).removeprefix("Value error, ")
        if flag is None:
            lines.append(message)
        elif field in given:
            lines.append(f"{flag} {given[field]}: {message}")
        else:
            lines.append(f"{flag}: {message}")
    return "; ".join(lines)


def _check_finite(flag: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        kind = "NaN" if math.isnan(value) else "infinity"
        raise errors.ConfigError(f"{flag} {value}: {kind} is not a number it can take; give a finite number")


def federation_spec(
    given: Mapping[str, object],
    *,
    preset: str | None = None,
    qlora: bool = False,
    evaluation: Mapping[str, object] | None = None,
) -> spec_mod.FederationSpec:
    """The FederationSpec the flags describe: ``given`` maps TrainingSpec fields to what was typed.

    None values are left to the spec's defaults; ``preset`` (only ``paper``) and ``qlora`` fill in
    defaults that the flags override. Raises ConfigError naming the flag.
    """
    for field, value in given.items():
        if isinstance(value, float):
            _check_finite(FLAGS.get(field, field), value)
    overrides: dict[str, object] = {}
    if preset is not None:
        if preset != "paper":
            raise errors.ConfigError(f"--preset {preset!r} is unknown: the only preset is paper")
        overrides.update(PAPER_PRESET)
    typed = {k: v for k, v in given.items() if v is not None}
    if qlora or "lora" in typed:
        for key, value in LM_DEFAULTS.items():
            overrides.setdefault(key, value)
        overrides.setdefault("lora", {})
    overrides.update(typed)
    try:
        training = spec_mod.TrainingSpec.model_validate(overrides)
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(_flag_error(exc, FLAGS, typed)) from None
    evaluation_given = {k: v for k, v in (evaluation or {}).items() if v is not None}
    try:
        evaluation_spec = spec_mod.EvaluationSpec.model_validate(evaluation_given)
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(_flag_error(exc, EVALUATION_FLAGS, evaluation_given)) from None
    try:
        return spec_mod.FederationSpec(training=training, evaluation=evaluation_spec)
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(spec_mod.describe_validation_error(exc, "spec")) from None


def check_options(*, parties: int, store: str, out: Path, api_port: int) -> None:
    """The run's options other than the spec: party count, store, ports and the output folder."""
    if not 1 <= parties <= MAX_PARTIES:
        raise errors.ConfigError(
            f"--parties {parties}: a Hydra head holds 1 to {MAX_PARTIES} parties; choose one in that range"
        )
    if store not in STORES:
        raise errors.ConfigError(f"--store {store!r} is unknown: use one of {', '.join(STORES)}")
    if not 1024 <= api_port <= 65535 - parties:
        raise errors.ConfigError(
            f"--api-port {api_port}: party i listens on api-port+i, so it must be between 1024 and "
            f"{65535 - parties}"
        )
    check_replaceable(out.resolve())


def check_replaceable(out: Path) -> None:
    """A finished run replaces ``out``: allow that only for an empty dir or an earlier run's output."""
    if not out.exists():
        return
    if not out.is_dir():
        raise errors.ConfigError(f"--out {out} is a file: choose a directory for the report")
    if any(out.iterdir()) and not (out / "report.json").is_file():
        raise errors.ConfigError(
            f"--out {out} is a non-empty directory that holds no earlier simulate report; "
            "choose a new or empty directory (it is replaced when the run completes)"
        )
