"""The hydra-node reference is found, skipped with the missing path named, or fails under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import hydra_reference

pytestmark = pytest.mark.unit


def _complete(root: Path) -> Path:
    for rel in hydra_reference.REQUIRED:
        target = root / rel
        if "." in target.name:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("{}")
        else:
            target.mkdir(parents=True)
    return root


def test_complete_reference_is_returned(tmp_path: Path) -> None:
    ref = _complete(tmp_path / "ref")
    assert hydra_reference.locate(ref, {"CI": "true"}) == ref


def test_environment_overrides_the_default(tmp_path: Path) -> None:
    ref = _complete(tmp_path / "elsewhere")
    env = {hydra_reference.ENV_VAR: str(ref)}
    assert hydra_reference.locate(tmp_path / "nothing-here", env) == ref


def test_missing_reference_skips_naming_the_path(tmp_path: Path) -> None:
    ref = _complete(tmp_path / "ref")
    (ref / "cardano.json").unlink()
    with pytest.raises(pytest.skip.Exception, match=f"missing: {ref / 'cardano.json'}\\."):
        hydra_reference.locate(ref, {})


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_missing_reference_fails_under_ci(tmp_path: Path, ci: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"CI=true: .*missing: .*api\.yaml") as failed:
        hydra_reference.locate(tmp_path / "absent", {"CI": ci})
    assert str(tmp_path / "absent" / "golden" / "ServerOutput") in str(failed.value)


def test_ci_false_still_skips(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception):
        hydra_reference.locate(tmp_path / "absent", {"CI": "false"})


def test_default_is_next_to_the_checkout() -> None:
    assert hydra_reference.default_path(Path("/x/main")) == Path("/x/shared/reference/hydra")
