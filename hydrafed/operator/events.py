"""Kubernetes Events on the operator's objects: what `kubectl describe` and `kubectl get events` show.

Posting an Event is best effort: a refused Event is logged and never fails a reconcile.
Messages come from :mod:`hydrafed.operator.membership` and the head driver and hold no secrets.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from hydrafed import spec
from hydrafed.operator.kube import Kube, KubeError

log = logging.getLogger(__name__)

COMPONENT = "hydrafed-operator"


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str


def post(kube: Kube, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
    """One core/v1 Event about ``ref``; Warning or Normal."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}-", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
            "kind": ref.kind,
            "name": ref.name,
            "namespace": ref.namespace,
        },
        "type": type_,
        "reason": reason[:128],
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        kube.request("POST", f"/api/v1/namespaces/{ref.namespace}/events", event)
    except KubeError as exc:
        log.warning("could not post Event %s on %s %s/%s: %s", reason, ref.kind, ref.namespace, ref.name, exc)


__all__ = ["ObjectRef", "post"]
