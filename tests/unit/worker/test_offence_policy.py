"""Offences and quorum over the in-memory ledger: the same rules as on a Hydra head.

Three real workers on scikit-learn's digits. roundPolicy.closeAfterOffences: carol's worker
uploads a NaN weight every round (the bench's way of playing a hostile party:
``outgoing_update``) and the federation stops naming her at the limit. Quorum: carol is held
back in round 1, which is cut off without her on every party alike.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from hydrafed import errors
from hydrafed.spec import FederationSpec, RoundPolicySpec, TrainingSpec
from hydrafed.worker.inprocess import run_in_process
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import PartyResult, PartyWorker
from hydrafed.worker.task import TrainResult

pytestmark = pytest.mark.unit

NAMES = ("alice", "bob", "carol")


class NanWorker(PartyWorker):
    def outgoing_update(
        self, round_no: int, start: Mapping[str, torch.Tensor], state: dict[str, torch.Tensor], samples: int
    ) -> tuple[dict[str, torch.Tensor], int]:
        poisoned = {k: v.clone() for k, v in state.items()}
        next(iter(poisoned.values())).view(-1)[0] = float("nan")
        return poisoned, samples


def _run(tmp_path: Path, limit: int | None) -> dict[str, PartyResult]:
    training = TrainingSpec(dataset="digits", rounds=3, local_epochs=1, seed=2)
    spec = FederationSpec(training=training, round_policy=RoundPolicySpec(close_after_offences=limit))
    tasks = {n: MnistTask.from_spec(training, party_index=i, parties=3) for i, n in enumerate(NAMES)}
    return dict(run_in_process(spec, tasks, tmp_path, worker_types={"carol": NanWorker}))


def test_the_federation_stops_at_the_offence_limit_naming_the_offender(tmp_path: Path) -> None:
    with pytest.raises(
        errors.HeadError, match=r"carol has 2 offences \(round 1 BadUpdate, round 2 BadUpdate\)"
    ):
        _run(tmp_path, limit=2)


def test_without_a_limit_offences_are_flagged_and_the_rounds_go_on(tmp_path: Path) -> None:
    results = _run(tmp_path, limit=None)

    for name in ("alice", "bob"):
        result = results[name]
        assert [(i["party"], i["round"], i["code"]) for i in result.ignored] == [
            ("carol", r, "BadUpdate") for r in (1, 2, 3)
        ]
    assert len({r.final_sha256 for r in results.values()}) == 1


class _HeldBack:
    """A real task whose round 1 ends only once ``release`` is set: a straggler."""

    def __init__(self, task: MnistTask, release: threading.Event) -> None:
        self.task, self.release = task, release

    def exchanged_state(self) -> dict[str, torch.Tensor]:
        return self.task.exchanged_state()

    def load_exchanged_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.task.load_exchanged_state(state)

    def train_round(self, round_no: int) -> TrainResult:
        result = self.task.train_round(round_no)
        if round_no == 1:
            self.release.wait(60)
        return result

    def evaluate(self) -> dict[str, float]:
        return self.task.evaluate()


def test_an_in_memory_quorum_round_goes_on_without_the_straggler(tmp_path: Path) -> None:
    # Prepare: quorum 2, no grace; carol finishes round 1 only after alice has aggregated it
    training = TrainingSpec(dataset="digits", rounds=2, local_epochs=1, seed=2)
    spec = FederationSpec(training=training, round_policy=RoundPolicySpec(quorum=2, grace_seconds=0))
    tasks: dict[str, Any] = {
        n: MnistTask.from_spec(training, party_index=i, parties=3) for i, n in enumerate(NAMES)
    }
    release = threading.Event()
    tasks["carol"] = _HeldBack(tasks["carol"], release)

    def progress(event: dict[str, Any]) -> None:
        if event["party"] == "alice" and event["state"] == "aggregated":
            release.set()

    # Execute
    results = run_in_process(spec, tasks, tmp_path, progress=progress)

    # Assert
    assert results["alice"].rounds[0].members == results["carol"].rounds[0].members
    assert "carol" not in results["alice"].rounds[0].members and results["carol"].rounds[0].missed
    for index in range(2):
        assert len({r.rounds[index].global_sha256 for r in results.values()}) == 1
    late = {n: [(i["party"], i["code"]) for i in r.ignored if i["round"] == 1] for n, r in results.items()}
    assert all(("carol", "Late") in rows for rows in late.values())
    assert late["alice"] == late["bob"] == late["carol"]
