"""The CRDs in crds/ are generated from hydrafed/spec.py and are structural, bounded and documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from hydrafed import crds, errors
from hydrafed.cli import app
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _root(kind: crds.Kind) -> dict[str, Any]:
    root: dict[str, Any] = crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def test_committed_crds_equal_the_generated_ones() -> None:
    # Execute
    stale = crds.stale(REPO_ROOT / "crds")

    # Assert
    assert stale == [], f"regenerate with `hydrafed crds --out crds`: {stale}"


def test_cli_writes_the_files_and_check_detects_drift(tmp_path: Path) -> None:
    # Prepare
    runner = CliRunner()

    # Execute
    written = runner.invoke(app, ["crds", "--out", str(tmp_path)])
    clean = runner.invoke(app, ["crds", "--out", str(tmp_path), "--check"])
    (tmp_path / "parties.yaml").write_text("edited by hand\n")
    drifted = runner.invoke(app, ["crds", "--out", str(tmp_path), "--check"])

    # Assert
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["federations.yaml", "parties.yaml"]
    assert clean.exit_code == 0
    assert drifted.exit_code == 1
    assert "parties.yaml" in drifted.output


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description_and_a_type(kind: crds.Kind) -> None:
    for path, node in _nodes(_root(kind)):
        if path.endswith("[]") or path.endswith("{}") or path == ".metadata":
            continue
        assert node.get("description"), f"{kind.kind}{path} has no description"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{kind.kind}{path}"


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_strings_lists_and_maps_are_bounded_for_the_cel_cost_budget(kind: crds.Kind) -> None:
    for path, node in _nodes(_root(kind)):
        if path in ("", ".apiVersion", ".kind", ".metadata"):
            continue
        kind_of = node.get("type")
        if kind_of == "string":
            assert "maxLength" in node or "enum" in node or node.get("format") == "date-time", f"{path}"
        elif kind_of == "array":
            assert "maxItems" in node, path
        elif kind_of == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda k: k.kind)
def test_status_is_a_subresource_and_has_no_defaults(kind: crds.Kind) -> None:
    # Prepare
    version = crds.crd(kind)["spec"]["versions"][0]

    # Assert
    assert version["subresources"] == {"status": {}}
    status = _root(kind)["properties"]["status"]
    assert all("default" not in node for _, node in _nodes(status))
    assert status["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_printer_columns_phase_round_parties_age_then_wide() -> None:
    # Prepare
    columns = crds.crd(crds.FEDERATION)["spec"]["versions"][0]["additionalPrinterColumns"]

    # Assert
    assert [c["name"] for c in columns if "priority" not in c] == ["Phase", "Round", "Parties", "Age"]
    assert {c["name"] for c in columns if c.get("priority") == 1} >= {"Head", "Snapshot", "Network"}


def test_every_cel_rule_has_a_message_naming_a_fix() -> None:
    for kind in crds.KINDS:
        for path, node in _nodes(_root(kind)):
            for rule in node.get("x-kubernetes-validations", []):
                assert ":" in rule["message"], f"{kind.kind}{path}: {rule}"  # "<what>: <fix>"


def test_exclusive_bounds_become_openapi_booleans() -> None:
    # Prepare
    training = _root(crds.FEDERATION)["properties"]["spec"]["properties"]["training"]

    # Assert
    rate = training["properties"]["learningRate"]
    assert rate["minimum"] == 0
    assert rate["exclusiveMinimum"] is True


def test_a_field_without_docstring_is_refused() -> None:
    # Prepare
    class Undocumented(BaseModel):
        """A model whose field has no description."""

        count: int = Field(default=1, ge=0, le=3)

    # Execute / Assert
    with pytest.raises(errors.ConfigError, match=r"spec\.count: every field needs a description"):
        crds.model_schema(Undocumented, path="spec", defaults=True)


def test_a_union_is_refused() -> None:
    # Prepare
    class Union(BaseModel):
        """A model with a non-structural union."""

        value: int | str = 1
        """Either."""

    # Execute / Assert
    with pytest.raises(errors.ConfigError, match="union of 2 types"):
        crds.model_schema(Union, path="spec", defaults=True)
