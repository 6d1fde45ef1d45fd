"""A small typed door to the Kubernetes API for the operator: apply, read, patch status.

Built on the official ``kubernetes`` client's ApiClient (authentication, TLS, in-cluster config),
with plain JSON bodies: the operator's objects are dicts built by :mod:`.children`, so a
generated model class per kind would only add a second schema. Children are written with
server-side apply under one field manager, so re-applying is idempotent and never duplicates.
Calls are synchronous; the async handlers run them in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from hydrafed import spec
from hydrafed.operator.names import FIELD_MANAGER

Obj = dict[str, Any]

#: kind -> (API path prefix, plural) of every kind the operator touches.
KINDS: dict[str, tuple[str, str]] = {
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Job": ("/apis/batch/v1", "jobs"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "Federation": (f"/apis/{spec.API_GROUP}/{spec.API_VERSION}", "federations"),
    "Party": (f"/apis/{spec.API_GROUP}/{spec.API_VERSION}", "parties"),
}


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP code (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def load_config() -> None:
    """In-cluster config inside a pod, the kubeconfig ($KUBECONFIG) elsewhere."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """The REST path of a namespaced object (or collection)."""
    prefix, plural = KINDS[kind]
    parts = [prefix, "namespaces", namespace, plural]
    if name is not None:
        parts.append(name)
    if sub is not None:
        parts.append(sub)
    return "/".join(parts)


@dataclass
class Kube:
    """The operator's API calls; one instance per process."""

    api: kubernetes.client.ApiClient

    @classmethod
    def from_environment(cls) -> Kube:
        load_config()
        return cls(kubernetes.client.ApiClient())

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        try:
            response = self.api.call_api(
                url,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            raise KubeError(int(exc.status or 0), _message(exc.body) or str(exc.reason)) from None
        data = response.data
        return json.loads(data) if data else {}

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else None
        items: list[Obj] = self.request("GET", path(kind, namespace), query=query).get("items", [])
        return items

    def create(self, manifest: Obj) -> Obj:
        """Create; raises KubeError 409 when it exists (used where overwriting is never wanted)."""
        namespace = manifest["metadata"]["namespace"]
        return self.request("POST", path(manifest["kind"], namespace), manifest)

    def apply(self, manifest: Obj) -> Obj:
        """Server-side apply under hydrafed's field manager: create or converge, never duplicate."""
        meta = manifest["metadata"]
        url = path(manifest["kind"], meta["namespace"], meta["name"])
        return self.request(
            "PATCH",
            url,
            manifest,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", path(kind, namespace, name), {"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status != 404:
                raise

    def merge_patch(self, kind: str, namespace: str, name: str, patch: Obj, sub: str | None = None) -> Obj:
        return self.request(
            "PATCH", path(kind, namespace, name, sub), patch, content_type="application/merge-patch+json"
        )

    def patch_status(self, kind: str, namespace: str, name: str, status: Obj) -> Obj:
        return self.merge_patch(kind, namespace, name, {"status": status}, sub="status")


def _message(body: Any) -> str:
    """The Status message of an API error body, if it has one."""
    try:
        return str(json.loads(body).get("message", ""))
    except (TypeError, ValueError, AttributeError):
        return ""
