"""roundPolicy.closeAfterOffences: the federation stops, naming the offender, once it has K offences.

Three real workers over the in-memory ledger on scikit-learn's digits; carol's worker uploads a
NaN weight every round (the bench's way of playing a hostile party: ``outgoing_update``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from hydrafed import errors
from hydrafed.spec import FederationSpec, RoundPolicySpec, TrainingSpec
from hydrafed.worker.inprocess import run_in_process
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import PartyResult, PartyWorker

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
