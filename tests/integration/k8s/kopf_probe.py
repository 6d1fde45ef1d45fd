"""A one-handler kopf operator for test_kopf_status.py: fails once, then writes status.

It keeps its progress in ``status.kopf`` (kopf's status storage), so the retry only works if
the CRD's status schema keeps kopf's subtree instead of pruning it.
"""

from __future__ import annotations

from typing import Any

import kopf

CALLS: list[int] = []


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own kubeconfig reader (token and CA file): no client library needed."""
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Status-based progress storage; short watch timeouts so the runner stops quickly."""
    settings.persistence.progress_storage = kopf.StatusProgressStorage()
    settings.watching.server_timeout = 10
    settings.posting.enabled = False


@kopf.on.create("hydrafed.io", "v1alpha1", "federations", id="probe")
def probe(retry: int, patch: kopf.Patch, **_: Any) -> None:
    """Fail on the first try; on the second write the fields an operator writes."""
    CALLS.append(retry)
    if retry == 0:
        raise kopf.TemporaryError("first try fails on purpose", delay=0.5)
    patch.status["phase"] = "Provisioning"
    patch.status["message"] = "waiting for parties"
