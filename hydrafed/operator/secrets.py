"""The local party's secrets: its keys (generated once, never overwritten), its storage
credentials and the read-only grant it derives for its peers.

Nothing here logs or returns a secret's bytes in a message: problems name the Secret and the key.
The key Secret has no ownerReference on purpose: it controls the party's funds, and deleting a
Party or a Federation must never delete the only copy of the key that can move them.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from hydrafed import errors, spec, storage
from hydrafed.hydra import keys as keys_mod
from hydrafed.operator import names
from hydrafed.operator.kube import Kube, KubeError, Obj
from hydrafed.operator.membership import PartyObject, Problem

KEY_FILES = ("hydra.sk", "hydra.vk", "payment.sk", "payment.vk", "payment.addr")
GRANT_KEY = "grant"
"""Key of the read grant inside its Secret (when the Party's readGrantSecretRef names none)."""


def decode(secret: Obj) -> dict[str, str]:
    """A Secret's data as text."""
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def secret_manifest(
    name: str, namespace: str, data: Mapping[str, str], labels: Mapping[str, str], owner: Obj | None = None
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def key_secret_name(party: PartyObject) -> str:
    ref = party.spec.key_secret_ref
    return ref.name if ref is not None else names.key_secret(party.name)


def _generated_key_files(name: str, network: keys_mod.NetworkName) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="hydrafed-keys-") as tmp:
        keys_mod.save_party_keys(keys_mod.generate_party_keys(name), Path(tmp), network)
        return {f: (Path(tmp) / f).read_text() for f in KEY_FILES}


def load_keys(files: Mapping[str, str], party: str, where: str) -> keys_mod.PartyKeys:
    """Parse key files held in a Secret; errors name ``where`` (the Secret), never a temp path."""
    with tempfile.TemporaryDirectory(prefix="hydrafed-keys-") as tmp:
        for file, text in files.items():
            if file in KEY_FILES:
                target = Path(tmp) / file
                target.touch(mode=0o600)
                target.write_text(text)
        try:
            return keys_mod.load_party_keys(Path(tmp), party)
        except errors.ConfigError as exc:
            raise errors.ConfigError(str(exc).replace(f"key file {tmp}/", f"{where} key ")) from None


def ensure_keys(
    kube: Kube, party: PartyObject, network: keys_mod.NetworkName
) -> tuple[keys_mod.PartyKeys, str] | Problem:
    """The local party's keys and their Secret's name; generated into <party>-keys once."""
    name = key_secret_name(party)
    where = f"Secret {party.namespace}/{name}"
    secret = kube.get("Secret", party.namespace, name)
    if secret is None and party.spec.key_secret_ref is not None:
        return Problem(
            "KeySecretNotFound",
            f"{where}, named by Party {party.name} spec.keySecretRef, does not exist: create it "
            "with hydra.sk and payment.sk (`hydrafed keys generate`) or remove keySecretRef "
            "to have keys generated",
        )
    if secret is None:
        manifest = secret_manifest(
            name,
            party.namespace,
            _generated_key_files(party.name, network),
            names.labels(None, party.name, names.COMPONENT_KEYS),
        )
        try:
            secret = kube.create(manifest)
        except KubeError as exc:
            if exc.status != 409:  # 409: created meanwhile (a restart, a retry): read it, never overwrite
                raise
            secret = kube.get("Secret", party.namespace, name)
            assert secret is not None
    try:
        return load_keys(decode(secret), party.name, where), name
    except errors.ConfigError as exc:
        return Problem(
            "KeySecretInvalid",
            f"{exc}; fix the key files in {where}, or delete the Secret to have new keys generated "
            "(only while no funds are at its address)",
        )
    except (ValueError, UnicodeDecodeError):
        return Problem("KeySecretInvalid", f"{where} holds data that is not text key envelopes: fix it")


def storage_credentials(kube: Kube, party: PartyObject) -> dict[str, str] | Problem:
    """The local party's own storage credentials (empty for the local-directory backend)."""
    ref = party.spec.storage_secret_ref
    if ref is None:
        return {}
    secret = kube.get("Secret", party.namespace, ref.name)
    if secret is None:
        return Problem(
            "StorageSecretNotFound",
            f"Secret {party.namespace}/{ref.name}, named by Party {party.name} spec.storageSecretRef, "
            "does not exist: create it with the bucket's credentials (see docs/operations.md)",
        )
    try:
        data = decode(secret)
    except (ValueError, UnicodeDecodeError):
        return Problem(
            "StorageSecretInvalid", f"Secret {party.namespace}/{ref.name} holds data that is not text"
        )
    if ref.key is not None:
        if ref.key not in data:
            return Problem(
                "StorageSecretInvalid",
                f"Secret {party.namespace}/{ref.name} has no key {ref.key!r} (spec.storageSecretRef.key): "
                "add it or fix the key name",
            )
        return {ref.key: data[ref.key]}
    return data


def ensure_read_grant(
    kube: Kube,
    fed: str,
    fed_spec: spec.FederationSpec,
    party: PartyObject,
    credentials: Mapping[str, str],
    owner: Obj,
) -> str | Problem:
    """The name of the Secret holding the read-only share this party gives its peers.

    Derived offline from the party's own credentials (libuplink for Storj), limited to this
    federation's round objects and to ``storage.shareExpiryHours``; created once per Party.
    """
    name = names.grant_secret(party.name)
    if kube.get("Secret", party.namespace, name) is not None:
        return name
    try:
        owner_store = storage.open_store(fed_spec.storage, credentials)
        owner_store.ensure_bucket(party.spec.bucket)
        grant = owner_store.share(
            party.spec.bucket,
            f"{fed}/rounds/",
            timedelta(hours=fed_spec.storage.share_expiry_hours),
        )
    except errors.HydrafedError as exc:
        return Problem(
            "ReadGrantFailed",
            f"cannot derive the read grant of Party {party.name} for bucket {party.spec.bucket}: {exc}",
        )
    manifest = secret_manifest(
        name,
        party.namespace,
        {GRANT_KEY: grant},
        names.labels(fed, party.name, names.COMPONENT_GRANT),
        owner,
    )
    try:
        kube.create(manifest)
    except KubeError as exc:
        if exc.status != 409:
            raise
    return name


def grant_secret_present(kube: Kube, party: PartyObject) -> Problem | None:
    """A remote party's read grant must exist in our namespace before the worker can mount it."""
    ref = party.spec.read_grant_secret_ref
    assert ref is not None
    secret = kube.get("Secret", party.namespace, ref.name)
    key = ref.key or GRANT_KEY
    if secret is None or key not in (secret.get("data") or {}):
        return Problem(
            "ReadGrantNotFound",
            f"Secret {party.namespace}/{ref.name} with key {key!r}, named by Party {party.name} "
            f"spec.readGrantSecretRef, does not exist: apply the Secret from {party.name}'s "
            "`hydrafed party export`",
        )
    return None
