"""The operator's Kubernetes permissions: the one source that tests, the Helm chart and docs use.

Least privilege: the operator reads its custom resources and writes their status, owns the
children it creates for the local party, reads the pods of its worker Jobs and records Events.
Bound per namespace (ClusterRole + RoleBinding) when the operator watches a list of namespaces,
or cluster-wide (ClusterRoleBinding) when it watches them all.
"""

from __future__ import annotations

from typing import Any

from hydrafed import spec

READ = ["get", "list", "watch"]
OWN = [*READ, "create", "update", "patch", "delete"]

RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [spec.API_GROUP],
        "resources": ["federations", "parties"],
        "verbs": [*READ, "patch", "update"],
    },
    {
        "apiGroups": [spec.API_GROUP],
        "resources": ["federations/status", "parties/status"],
        "verbs": ["get", "patch", "update"],
    },
    # ownerReferences with blockOwnerDeletion need update on the owner's finalizers subresource.
    {
        "apiGroups": [spec.API_GROUP],
        "resources": ["federations/finalizers", "parties/finalizers"],
        "verbs": ["update"],
    },
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "services"], "verbs": OWN},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": OWN},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": OWN},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": OWN},
    {"apiGroups": [""], "resources": ["pods"], "verbs": READ},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""Every rule the operator needs; nothing cluster-scoped beyond what a namespace holds."""


def cluster_role(name: str = "hydrafed-operator") -> dict[str, Any]:
    """The ClusterRole manifest holding ``RULES``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "hydrafed"}},
        "rules": RULES,
    }
