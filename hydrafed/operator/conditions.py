"""Kubernetes conditions kept the way metav1.Condition expects: one per type, and a transition
time that moves only when the status does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from hydrafed import spec


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def parse(raw: Iterable[Mapping[str, Any]] | None) -> list[spec.Condition]:
    """Conditions as read from a status; malformed entries are dropped, not fatal."""
    out = []
    for item in raw or []:
        try:
            out.append(spec.Condition.model_validate(item))
        except ValueError:
            continue
    return out


def put(
    conditions: list[spec.Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str = "",
    generation: int | None = None,
) -> list[spec.Condition]:
    """``conditions`` with ``type_`` set; lastTransitionTime kept unless the status changed."""
    value = {
        True: spec.ConditionStatus.TRUE,
        False: spec.ConditionStatus.FALSE,
        None: spec.ConditionStatus.UNKNOWN,
    }[status]
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == value else now()
    new = spec.Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:32768],
        last_transition_time=since,
        observed_generation=generation,
    )
    return [*(c for c in conditions if c.type != type_), new]


def status_of(conditions: Iterable[spec.Condition], type_: str) -> spec.ConditionStatus | None:
    return next((c.status for c in conditions if c.type == type_), None)
