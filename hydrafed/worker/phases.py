"""One vocabulary for where a party is: progress states, timed phases, and the CRD's PartyPhase.

``PartyWorker`` reports ``State`` values in its progress events; simulate's live view, the
worker's log and metrics read the same names, and ``party_phase`` maps each to the
``spec.PartyPhase`` the operator writes into the Federation status. ``TIMED`` are the parts of a
round that report.json and the phase histogram time.
"""

from __future__ import annotations

from enum import StrEnum

from hydrafed.spec import PartyPhase


class State(StrEnum):
    """A progress event's ``state``; str-valued, so events stay plain JSON and picklable."""

    TRAINING = "training"
    DIVERGED = "diverged"
    UPLOADING = "uploading"
    ANNOUNCED = "announced"
    WAITING = "waiting"
    AGGREGATING = "aggregating"
    EXCLUDED = "excluded"
    """A peer's update is left out of the round (event fields: offender, code, reason)."""
    AGGREGATED = "aggregated"
    EVALUATED = "evaluated"
    RESUMED = "resumed"
    DONE = "done"
    RESULT = "result"
    """simulate only: a party process hands its PartyResult to the parent."""
    FAILED = "failed"


TIMED = ("train", "serialize", "upload", "announce", "wait", "download", "verify", "aggregate", "evaluate")
"""The steps of one round, in order; report.json records seconds for each. A round's global model
is evaluated while the party waits for the next round's announcements (after the last: at once)."""

_PARTY_PHASE = {
    State.TRAINING: PartyPhase.TRAINING,
    State.DIVERGED: PartyPhase.TRAINING,
    State.UPLOADING: PartyPhase.UPLOADING,
    State.ANNOUNCED: PartyPhase.ANNOUNCED,
    State.WAITING: PartyPhase.ANNOUNCED,
    State.AGGREGATING: PartyPhase.AGGREGATING,
    State.EXCLUDED: PartyPhase.AGGREGATING,
    State.AGGREGATED: PartyPhase.AGGREGATING,
    State.EVALUATED: PartyPhase.AGGREGATING,
    State.RESUMED: PartyPhase.AGGREGATING,
    State.DONE: PartyPhase.DONE,
    State.RESULT: PartyPhase.DONE,
    State.FAILED: PartyPhase.FAILED,
}


def party_phase(state: str) -> PartyPhase:
    """The Federation status phase of a progress state (ConfigError-free: unknown -> ValueError)."""
    return _PARTY_PHASE[State(state)]
