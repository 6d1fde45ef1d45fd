"""Names, labels and annotations the operator gives its objects: one place, so nothing drifts."""

from __future__ import annotations

import hashlib

from hydrafed import spec

FINALIZER = f"{spec.API_GROUP}/close-head"
"""Held on every Federation until its head is closed and fanned out (or was never opened)."""
FIELD_MANAGER = "hydrafed-operator"
"""Server-side apply field manager of everything the operator writes."""
ANNOTATION_PREFIX = spec.API_GROUP
"""kopf's progress and diff-base annotations live under this prefix."""
FORCE_RELEASE = f"{spec.API_GROUP}/force-release"
"""Annotation ("true") that lets a deleted Federation go without closing its head."""
CONFIG_HASH = f"{spec.API_GROUP}/config-hash"
"""Annotation on the worker Job: the digest of the config it was created with."""

MANAGED_BY = "hydrafed-operator"
COMPONENT_NODE = "hydra-node"
COMPONENT_WORKER = "worker"
COMPONENT_KEYS = "keys"
COMPONENT_GRANT = "read-grant"

HYDRA_API_PORT = 4001
HYDRA_PEER_PORT = 5001
NODE_METRICS_PORT = 6001


def labels(federation: str | None, party: str, component: str) -> dict[str, str]:
    """The labels of every object the operator creates (``kubectl get all -l ...`` finds them)."""
    out = {
        "app.kubernetes.io/name": "hydrafed",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{spec.API_GROUP}/party": party,
    }
    if federation is not None:
        out["app.kubernetes.io/instance"] = federation
        out[f"{spec.API_GROUP}/federation"] = federation
    return out


def object_name(*parts: str, suffix: str = "") -> str:
    """``a-b-suffix`` as a DNS-1123 label; too long names keep a hash so they stay unique."""
    name = "-".join([*parts, suffix] if suffix else parts)
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - 9].rstrip('-')}-{digest}"


def key_secret(party: str) -> str:
    return object_name(party, suffix="keys")


def grant_secret(party: str) -> str:
    return object_name(party, suffix="read-grant")


def node(federation: str, party: str) -> str:
    """StatefulSet, its Services and its ConfigMap share this stem."""
    return object_name(federation, party, suffix="hydra")


def worker(federation: str, party: str) -> str:
    """The worker Job and its ConfigMap."""
    return object_name(federation, party, suffix="worker")


def node_api_url(federation: str, party: str, namespace: str, own_url: str | None = None) -> str:
    """The node API the operator and the worker use: the party's own, or the in-cluster Service."""
    return own_url or f"http://{node(federation, party)}-api.{namespace}.svc:{HYDRA_API_PORT}"
