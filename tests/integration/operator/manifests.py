"""Manifests the operator tests apply: hydrafed objects and Secrets, written once."""

from __future__ import annotations

import base64
from typing import Any

from hydrafed import spec

API = f"/apis/{spec.API_GROUP}/{spec.API_VERSION}"


def obj(kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A Federation or Party manifest."""
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": body,
    }


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """An Opaque Secret holding ``data`` as text."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}
