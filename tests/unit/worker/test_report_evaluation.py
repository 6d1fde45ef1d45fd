"""report.json with one evaluator: every party's curve is the evaluator's, and the report says so."""

from __future__ import annotations

import pytest

from hydrafed.spec import EvaluationSpec, FederationSpec, TrainingSpec
from hydrafed.worker import report
from hydrafed.worker.records import PartyResult, RoundReport

pytestmark = pytest.mark.unit


def _result(name: str, accuracies: list[float | None]) -> PartyResult:
    rounds = [
        RoundReport(
            round=i + 1,
            members=["a", "b"],
            metrics={} if acc is None else {"accuracy": acc},
            train_metrics={},
            timings={},
            tx_id="t",
            sha256="s",
            global_sha256=f"g{i}",
        )
        for i, acc in enumerate(accuracies)
    ]
    return PartyResult(name, 10, rounds, "g", [])


def test_a_shared_evaluation_fills_every_party_and_names_the_evaluator() -> None:
    # Prepare: round 2 of 3 not evaluated (every 2 would be rounds 2 and 3; here the evaluator skipped it)
    spec = FederationSpec(training=TrainingSpec(rounds=3), evaluation=EvaluationSpec(every=1, scope="shared"))
    results = {"a": _result("a", [0.5, None, 0.9]), "b": _result("b", [None, None, None])}

    # Execute
    built = report.build_report(
        spec=spec,
        options={},
        spec_digest="d",
        head_id="h",
        results=results,
        local_only={},
        centralized=[],
        fanout={},
        timings={},
    )

    # Assert
    assert [p["federatedAccuracy"] for p in built["parties"]] == [[0.5, None, 0.9], [0.5, None, 0.9]]
    assert [p["evaluatedRounds"] for p in built["parties"]] == [[1, 3], []]
    assert built["evaluation"] == {"every": 1, "scope": "shared", "evaluators": ["a"], "rounds": [1, 3]}
    assert built["parties"][1]["final"]["federated"] == 0.9
