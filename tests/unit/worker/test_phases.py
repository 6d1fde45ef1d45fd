"""The worker's progress states map onto the Federation status' PartyPhase, every one of them."""

from __future__ import annotations

import pytest

from hydrafed.spec import PartyPhase
from hydrafed.worker.phases import State, party_phase

pytestmark = pytest.mark.unit


def test_every_state_has_a_status_phase_in_round_order() -> None:
    order = [party_phase(s) for s in ("training", "uploading", "announced", "aggregating", "done")]

    assert order == [
        PartyPhase.TRAINING,
        PartyPhase.UPLOADING,
        PartyPhase.ANNOUNCED,
        PartyPhase.AGGREGATING,
        PartyPhase.DONE,
    ]
    for state in State:  # a state without a phase raises KeyError
        assert isinstance(party_phase(state), PartyPhase)
    assert party_phase("failed") == PartyPhase.FAILED


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="'trainin'"):
        party_phase("trainin")
