"""docs/reference.md is what hydrafed.docs_reference generates from the models and the CLI."""

from __future__ import annotations

import pytest

from hydrafed import docs_reference, spec

pytestmark = pytest.mark.unit


def test_committed_reference_is_current() -> None:
    assert docs_reference.OUT.read_text(encoding="utf-8") == docs_reference.render(), (
        "docs/reference.md is stale: run `python -m hydrafed.docs_reference`"
    )


def test_every_spec_field_and_command_is_listed() -> None:
    text = docs_reference.render()
    for name in ("training", "roundPolicy", "head", "storage"):
        assert f"| `spec.{name}` |" in text
    for info in spec.PartySpec.model_fields.values():
        assert f"| `spec.{info.alias}` |" in text
    for command in ("crds", "operator", "party export", "simulate", "keys generate"):
        assert f"### `hydrafed {command}`" in text
