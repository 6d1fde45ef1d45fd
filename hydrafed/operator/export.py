"""``hydrafed party export``: the Party manifest (and its read grant) other organisations apply.

What leaves the cluster is public facts (verification keys, peer address, bucket) plus the
read-only, prefix- and time-limited grant this party derived for its peers: never a signing key
or the party's own storage credentials.
"""

from __future__ import annotations

from typing import Any

import yaml

from hydrafed import errors, spec
from hydrafed.operator import names, secrets
from hydrafed.operator.kube import Kube


def export(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """The remote-Party manifest of local Party ``name`` and the Secret holding its read grant."""
    party = kube.get("Party", namespace, name)
    if party is None:
        raise errors.ConfigError(f"Party {namespace}/{name} does not exist: check the name and --namespace")
    party_spec = spec.PartySpec.model_validate(party.get("spec") or {})
    status = party.get("status") or {}
    if not party_spec.local:
        raise errors.ConfigError(
            f"Party {namespace}/{name} is a remote party (local: false): export the local party instead"
        )
    if not status.get("hydraVkey") or not status.get("cardanoVkey"):
        raise errors.ConfigError(
            f"Party {namespace}/{name} has no keys in its status yet: wait until the operator reconciled it "
            "(`kubectl get party` shows Ready)"
        )
    grant_name = names.grant_secret(name)
    grant = kube.get("Secret", namespace, grant_name)
    if grant is None:
        raise errors.ConfigError(
            f"Secret {namespace}/{grant_name} (the read grant for peers) does not exist yet: wait until the "
            "operator reconciled the Federation (its storage Secret must exist)"
        )
    peer = party_spec.peer_address or (
        f"{names.node(party_spec.federation, name)}-peer.{namespace}.svc:{names.HYDRA_PEER_PORT}"
    )
    remote = spec.PartySpec(
        federation=party_spec.federation,
        local=False,
        hydra_vkey=status["hydraVkey"],
        cardano_vkey=status["cardanoVkey"],
        peer_address=peer,
        bucket=party_spec.bucket,
        read_grant_secret_ref=spec.SecretRef(name=grant_name, key=secrets.GRANT_KEY),
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": grant_name,
                "labels": names.labels(party_spec.federation, name, names.COMPONENT_GRANT),
            },
            "type": "Opaque",
            "data": {secrets.GRANT_KEY: grant["data"][secrets.GRANT_KEY]},
        },
        {
            "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
            "kind": "Party",
            "metadata": {"name": name},
            "spec": spec.to_wire(remote),
        },
    ]


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)
