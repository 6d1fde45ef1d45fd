"""A killed simulate leaves its partial output (keys inside); the next run removes it and says so."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from hydrafed.worker import simulate

pytestmark = pytest.mark.unit


def test_partials_of_dead_runs_are_removed_and_named_live_ones_kept(tmp_path: Path) -> None:
    # Prepare: a dead run's partial output (holding a key file), a live one, an old-style one.
    out = tmp_path / "run"
    dead = tmp_path / ".run.partial-999999999-abc"  # no such pid
    (dead / "devnet" / "parties" / "party0").mkdir(parents=True)
    (dead / "devnet" / "parties" / "party0" / "payment.sk").write_text("secret")
    live = tmp_path / f".run.partial-{os.getpid()}-def"
    live.mkdir()
    old = tmp_path / ".run.partial-ghi"
    old.mkdir()
    printed = io.StringIO()

    # Execute
    simulate._remove_stale_partials(out, Console(file=printed, width=300))

    # Assert
    assert not dead.exists()
    assert live.exists() and old.exists()
    text = printed.getvalue()
    assert f"removed {dead}" in text
    assert f"{old} is the partial output" in text and "remove it" in text
