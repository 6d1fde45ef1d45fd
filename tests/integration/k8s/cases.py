"""Invalid Federation/Party manifests, shared by the API-server tests and the pydantic tests.

Each case names where the API server reports the problem (``path``) and a word both the API
server and pydantic must put in their message (``needle``): the field the user has to fix.
Cases with ``api_only`` test rules pydantic cannot see (object names, changes after creation).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

REMOTE_PARTY: Obj = {
    "federation": "digits",
    "hydraVkey": "ab" * 32,
    "cardanoVkey": "cd" * 32,
    "peerAddress": "hydra.bob.example.org:5001",
    "bucket": "bob-digits",
}
LOCAL_PARTY: Obj = {"federation": "digits", "local": True, "bucket": "alice-digits", "gpus": 1}


def federation(spec: Obj, name: str = "digits") -> Obj:
    """A Federation manifest."""
    return {
        "apiVersion": "hydrafed.io/v1alpha1",
        "kind": "Federation",
        "metadata": {"name": name},
        "spec": spec,
    }


def party(spec: Obj, name: str = "bob") -> Obj:
    """A Party manifest."""
    return {"apiVersion": "hydrafed.io/v1alpha1", "kind": "Party", "metadata": {"name": name}, "spec": spec}


def _remote(**changes: Any) -> Obj:
    spec = copy.deepcopy(REMOTE_PARTY)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


@dataclass(frozen=True)
class Invalid:
    """A manifest the API server must refuse (at creation, or at ``update`` after creation)."""

    id: str
    manifest: Obj
    path: str
    needle: str
    update: Obj | None = None
    api_only: bool = False
    extra_needles: tuple[str, ...] = field(default_factory=tuple)


INVALID: tuple[Invalid, ...] = (
    Invalid("rounds-zero", federation({"training": {"rounds": 0}}), "spec.training.rounds", "rounds"),
    Invalid("unknown-model", federation({"training": {"model": "gpt-5"}}), "spec.training.model", "model"),
    Invalid("unknown-field", federation({"training": {"epochs": 3}}), "spec.training.epochs", "epochs"),
    Invalid(
        "learning-rate-zero",
        federation({"training": {"learningRate": 0}}),
        "spec.training.learningRate",
        "learningRate",
    ),
    Invalid(
        "bad-partition",
        federation({"training": {"partition": "random"}}),
        "spec.training.partition",
        "partition",
    ),
    Invalid(
        "hf-local-without-path",
        federation({"training": {"model": "hf-local"}}),
        "spec.training",
        "modelPath",
        extra_needles=("hf-local",),
    ),
    Invalid(
        "lora-exact-without-lora",
        federation({"training": {"aggregation": "lora-exact"}}),
        "spec.training",
        "lora",
        extra_needles=("fedavg",),
    ),
    Invalid(
        "too-many-lora-modules",
        federation({"training": {"lora": {"targetModules": [f"m{i}" for i in range(33)]}}}),
        "spec.training.lora.targetModules",
        "targetModules",
    ),
    Invalid("unknown-network", federation({"head": {"network": "testnet"}}), "spec.head.network", "network"),
    Invalid(
        "announce-above-deposit",
        federation({"head": {"depositLovelace": 1_000_000, "announceLovelace": 2_000_000}}),
        "spec.head",
        "announceLovelace",
        extra_needles=("depositLovelace",),
    ),
    Invalid(
        "unknown-backend", federation({"storage": {"backend": "gcs"}}), "spec.storage.backend", "backend"
    ),
    Invalid(
        "endpoint-not-url",
        federation({"storage": {"endpoint": "ftp://x"}}),
        "spec.storage.endpoint",
        "endpoint",
    ),
    Invalid(
        "remote-without-keys",
        party(_remote(hydraVkey=None, cardanoVkey=None)),
        "spec",
        "hydraVkey",
        extra_needles=("hydrafed party export",),
    ),
    Invalid("vkey-not-hex", party(_remote(hydraVkey="zz" * 32)), "spec.hydraVkey", "hydraVkey"),
    Invalid("bucket-uppercase", party(_remote(bucket="Bob_Digits")), "spec.bucket", "bucket"),
    Invalid(
        "peer-without-port",
        party(_remote(peerAddress="hydra.bob.example.org")),
        "spec.peerAddress",
        "peerAddress",
    ),
    Invalid(
        "peer-port-over-65535",
        party(_remote(peerAddress="hydra.bob.example.org:99999")),
        "spec.peerAddress",
        "peerAddress",
    ),
    Invalid(
        "endpoint-port-over-65535",
        federation({"storage": {"endpoint": "http://seaweed:99999"}}),
        "spec.storage.endpoint",
        "endpoint",
    ),
    Invalid("close-yes-string", federation({"close": "yes"}), "spec.close", "close"),
    Invalid("rounds-string", federation({"training": {"rounds": "5"}}), "spec.training.rounds", "rounds"),
    Invalid("local-no-string", party(_remote(local="no")), "spec.local", "local"),
    Invalid("no-federation", party(_remote(federation=None)), "spec.federation", "federation"),
    Invalid("remote-with-gpus", party(_remote(gpus=2)), "spec.gpus", "gpus", extra_needles=("local",)),
    Invalid(
        "remote-with-storage-secret",
        party(_remote(storageSecretRef={"name": "mine"})),
        "spec.storageSecretRef",
        "storageSecretRef",
        extra_needles=("readGrantSecretRef",),
    ),
    Invalid(
        "remote-with-own-node",
        party(_remote(nodeApiUrl="http://hydra:4001")),
        "spec",
        "nodeApiUrl",
        extra_needles=("local party",),
    ),
    Invalid("gpus-too-many", party({**LOCAL_PARTY, "gpus": 17}), "spec.gpus", "gpus"),
    Invalid(
        "name-not-dns-label",
        party(_remote(), name="bob.example"),
        "metadata.name",
        "metadata.name",
        api_only=True,
        extra_needles=("rename",),
    ),
    Invalid(
        "training-changed",
        federation({"training": {"rounds": 10}}),
        "spec.training",
        "immutable",
        update={"spec": {"training": {"rounds": 20}}},
        api_only=True,
        extra_needles=("delete the Federation",),
    ),
    Invalid(
        "network-changed",
        federation({"head": {"network": "preview"}}),
        "spec.head.network",
        "immutable",
        update={"spec": {"head": {"network": "mainnet"}}},
        api_only=True,
    ),
    Invalid(
        "party-federation-changed",
        party(_remote()),
        "spec.federation",
        "immutable",
        update={"spec": {"federation": "other"}},
        api_only=True,
        extra_needles=("delete the Party",),
    ),
    Invalid(
        "party-bucket-changed",
        party(_remote()),
        "spec.bucket",
        "immutable",
        update={"spec": {"bucket": "bob-other"}},
        api_only=True,
    ),
)
