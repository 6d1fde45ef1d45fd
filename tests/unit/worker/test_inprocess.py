"""Every party's real PartyWorker over the in-memory ledger: the round is FedAvg of what was uploaded.

The expected global weights are recomputed here from the objects in the buckets (the announced
sha256 checked, FedAvg by announced samples in float64), so a worker that skipped, reordered or
mis-weighted an update fails, and so does one that left a party with other weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from hydrafed.spec import FederationSpec, TrainingSpec
from hydrafed.storage import sha256_file, split_uri
from hydrafed.worker.baselines import local_only
from hydrafed.worker.inprocess import run_in_process
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import state_sha256

pytestmark = pytest.mark.unit


def _expected_global(buckets: Path, rows: list[dict[str, object]]) -> dict[str, torch.Tensor]:
    """FedAvg of the announced objects: sum of samples x tensor in float64, in party order, / total."""
    total = sum(int(r["samples"]) for r in rows)  # type: ignore[call-overload]
    acc: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for row in sorted(rows, key=lambda r: str(r["party"])):
        _, bucket, key = split_uri(str(row["uri"]))
        path = buckets / bucket / key
        assert sha256_file(path) == row["sha256"]
        for name, tensor in safetensors.torch.load_file(str(path)).items():
            weighted = tensor.to(torch.float64) * float(row["samples"])  # type: ignore[arg-type]
            acc[name] = acc[name] + weighted if name in acc else weighted
            dtypes[name] = tensor.dtype
    return {name: (value / total).to(dtypes[name]) for name, value in acc.items()}


def test_three_workers_end_every_round_on_fedavg_of_the_uploaded_updates(tmp_path: Path) -> None:
    # Prepare
    training = TrainingSpec(dataset="digits", rounds=2, seed=1, test_fraction=0.25)
    tasks = {f"p{i}": MnistTask.from_spec(training, party_index=i, parties=3) for i in range(3)}
    initial = state_sha256(tasks["p0"].exchanged_state())
    # Keep the updates in the buckets for the recount (the workers remove only their scratch files).

    # Execute
    results = run_in_process(FederationSpec(training=training), tasks, tmp_path)

    # Assert
    buckets = tmp_path / "buckets"
    ledger = results["p0"].announcements
    assert all(r.announcements == ledger for r in results.values())
    for round_no in (1, 2):
        rows = [row for row in ledger if row["round"] == round_no]
        assert sorted(str(r["party"]) for r in rows) == ["p0", "p1", "p2"]
        expected = state_sha256(_expected_global(buckets, rows))
        assert [r.rounds[round_no - 1].global_sha256 for r in results.values()] == [expected] * 3
        assert expected not in {row["sha256"] for row in rows}
    # The chain of rounds is closed: each announcement names the weights its round started from.
    starts = {(row["round"], row["party"]): row["startSha256"] for row in ledger}
    assert {starts[(1, p)] for p in ("p0", "p1", "p2")} == {initial}
    assert {starts[(2, p)] for p in ("p0", "p1", "p2")} == {results["p0"].rounds[0].global_sha256}
    for name, task in tasks.items():
        assert state_sha256(task.exchanged_state()) == results[name].final_sha256
    solo = local_only(MnistTask.from_spec(training, party_index=0, parties=3), training.rounds)[-1]
    assert results["p0"].rounds[-1].metrics["accuracy"] > solo["accuracy"]
