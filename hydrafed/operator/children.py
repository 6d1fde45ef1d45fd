"""The Kubernetes objects the operator creates for the local party: pure builders.

Every builder returns a plain manifest owned by the Federation (so deleting it, once the head is
closed, removes them all) and labelled with :func:`hydrafed.operator.names.labels`. Nothing here
calls the API; :mod:`hydrafed.operator.federation` applies what these return.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hydrafed import spec
from hydrafed.operator import names
from hydrafed.operator.membership import Member, PartyObject, network_of
from hydrafed.operator.secrets import GRANT_KEY

Obj = dict[str, Any]

KEYS_DIR = "/var/run/hydrafed/keys"
STORAGE_DIR = "/var/run/hydrafed/storage"
GRANTS_DIR = "/var/run/hydrafed/grants"
WORKER_CONFIG_DIR = "/etc/hydrafed/worker"
WORKER_CONFIG_FILE = f"{WORKER_CONFIG_DIR}/config.json"
WORK_DIR = "/var/lib/hydrafed/work"
NODE_CONFIG_DIR = "/etc/hydra"
NODE_KEYS_DIR = "/var/run/hydra/keys"
NODE_PERSISTENCE_DIR = "/var/lib/hydra"
NODE_SOCKET_DIR = "/ipc"
WORKER_METRICS_PORT = 9100

TESTNET_MAGIC = {"preview": 2, "preprod": 1}


@dataclass(frozen=True)
class LocalParty:
    """Everything the builders need about the local party and its Federation."""

    federation: str
    namespace: str
    federation_uid: str
    spec: spec.FederationSpec
    party: PartyObject
    me: Member
    peers: tuple[Member, ...]
    """The other members, sorted by name."""
    peer_parties: tuple[PartyObject, ...]
    key_secret: str
    protocol_parameters: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        return names.labels(self.federation, self.party.name, names.COMPONENT_NODE)

    def owner(self) -> Obj:
        return owner_reference(self.federation, self.federation_uid)

    def meta(self, name: str, component: str) -> Obj:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": names.labels(self.federation, self.party.name, component),
            "ownerReferences": [self.owner()],
        }

    @property
    def node_name(self) -> str:
        return names.node(self.federation, self.party.name)

    @property
    def api_url(self) -> str:
        return names.node_api_url(
            self.federation, self.party.name, self.namespace, self.party.spec.node_api_url
        )


def owner_reference(federation: str, uid: str) -> Obj:
    return {
        "apiVersion": f"{spec.API_GROUP}/{spec.API_VERSION}",
        "kind": "Federation",
        "name": federation,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _vk_envelope(key_type: str, vkey_hex: str) -> str:
    return json.dumps({"type": key_type, "description": "", "cborHex": "5820" + vkey_hex}, indent=4) + "\n"


def node_config_map(ctx: LocalParty) -> Obj:
    """Protocol parameters and every peer's Hydra and Cardano verification key, as files."""
    data = {"protocol-parameters.json": json.dumps(ctx.protocol_parameters, indent=2, sort_keys=True)}
    for peer in ctx.peers:
        data[f"{peer.name}.hydra.vk"] = _vk_envelope("HydraVerificationKey_ed25519", peer.hydra_vkey)
        data[f"{peer.name}.cardano.vk"] = _vk_envelope(
            "PaymentVerificationKeyShelley_ed25519", peer.cardano_vkey
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.meta(ctx.node_name, names.COMPONENT_NODE),
        "data": data,
    }


def hydra_node_args(ctx: LocalParty) -> list[str]:
    """hydra-node 2.x flags: one --peer and one pair of verification keys per remote party."""
    head = ctx.spec.head
    advertise = ctx.party.spec.peer_address or (
        f"{ctx.node_name}-peer.{ctx.namespace}.svc:{names.HYDRA_PEER_PORT}"
    )
    args = [
        f"--node-id={ctx.party.name}",
        f"--listen=0.0.0.0:{names.HYDRA_PEER_PORT}",
        f"--advertise={advertise}",
        "--api-host=0.0.0.0",
        f"--api-port={names.HYDRA_API_PORT}",
        f"--monitoring-port={names.NODE_METRICS_PORT}",
        f"--hydra-signing-key={NODE_KEYS_DIR}/hydra.sk",
        f"--cardano-signing-key={NODE_KEYS_DIR}/payment.sk",
        f"--ledger-protocol-parameters={NODE_CONFIG_DIR}/protocol-parameters.json",
        f"--persistence-dir={NODE_PERSISTENCE_DIR}",
        f"--contestation-period={head.contestation_period_seconds}s",
        f"--deposit-period={head.deposit_period_seconds}s",
        f"--node-socket={NODE_SOCKET_DIR}/node.socket",
    ]
    if head.network == "mainnet":
        args += ["--mainnet", "--network=mainnet"]
    else:
        args += [f"--testnet-magic={TESTNET_MAGIC.get(head.network, 42)}", f"--network={head.network}"]
    for peer in ctx.peers:
        args += [
            f"--peer={peer.peer_address}",
            f"--hydra-verification-key={NODE_CONFIG_DIR}/{peer.name}.hydra.vk",
            f"--cardano-verification-key={NODE_CONFIG_DIR}/{peer.name}.cardano.vk",
        ]
    return args


def _restricted() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def node_stateful_set(ctx: LocalParty) -> Obj:
    """hydra-node and a cardano-node sharing its socket; persistence on a PVC per replica."""
    selector = ctx.labels
    head = ctx.spec.head
    hydra = {
        "name": "hydra-node",
        "image": head.hydra_image,
        "args": hydra_node_args(ctx),
        "ports": [
            {"name": "api", "containerPort": names.HYDRA_API_PORT},
            {"name": "peer", "containerPort": names.HYDRA_PEER_PORT},
            {"name": "metrics", "containerPort": names.NODE_METRICS_PORT},
        ],
        "readinessProbe": {"tcpSocket": {"port": "api"}, "periodSeconds": 5},
        "volumeMounts": [
            {"name": "config", "mountPath": NODE_CONFIG_DIR, "readOnly": True},
            {"name": "keys", "mountPath": NODE_KEYS_DIR, "readOnly": True},
            {"name": "persistence", "mountPath": NODE_PERSISTENCE_DIR},
            {"name": "ipc", "mountPath": NODE_SOCKET_DIR},
        ],
        "securityContext": _restricted(),
    }
    cardano = {
        "name": "cardano-node",
        "image": head.cardano_image,
        "env": [
            {"name": "NETWORK", "value": head.network},
            {"name": "CARDANO_NODE_SOCKET_PATH", "value": f"{NODE_SOCKET_DIR}/node.socket"},
        ],
        "volumeMounts": [
            {"name": "chain", "mountPath": "/data"},
            {"name": "ipc", "mountPath": NODE_SOCKET_DIR},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": ctx.meta(ctx.node_name, names.COMPONENT_NODE),
        "spec": {
            "replicas": 1,
            "serviceName": f"{ctx.node_name}-peer",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                    "containers": [hydra, cardano],
                    "volumes": [
                        {"name": "config", "configMap": {"name": ctx.node_name}},
                        {
                            "name": "keys",
                            "secret": {
                                "secretName": ctx.key_secret,
                                "defaultMode": 0o400,
                                "items": [
                                    {"key": "hydra.sk", "path": "hydra.sk"},
                                    {"key": "payment.sk", "path": "payment.sk"},
                                ],
                            },
                        },
                        {"name": "ipc", "emptyDir": {}},
                    ],
                },
            },
            "volumeClaimTemplates": [_claim("persistence", "1Gi"), _claim("chain", "50Gi")],
        },
    }


def _claim(name: str, size: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def node_services(ctx: LocalParty) -> list[Obj]:
    """The peer port (type from the Party spec, for other clusters) and the cluster-internal API."""
    selector = ctx.labels
    peer = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.meta(f"{ctx.node_name}-peer", names.COMPONENT_NODE),
        "spec": {
            "type": ctx.party.spec.peer_service_type,
            "selector": selector,
            "ports": [{"name": "peer", "port": names.HYDRA_PEER_PORT, "targetPort": "peer"}],
        },
    }
    api = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.meta(f"{ctx.node_name}-api", names.COMPONENT_NODE),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": "api", "port": names.HYDRA_API_PORT, "targetPort": "api"},
                {"name": "metrics", "port": names.NODE_METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }
    return [peer, api]


def node_network_policy(ctx: LocalParty) -> Obj:
    """The unauthenticated API port is reachable only by the operator and this party's worker."""
    selector = ctx.labels
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.meta(ctx.node_name, names.COMPONENT_NODE),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"port": names.HYDRA_PEER_PORT, "protocol": "TCP"}]},
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/name": "hydrafed",
                                    "app.kubernetes.io/component": "operator",
                                }
                            },
                            "namespaceSelector": {},
                        },
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/component": names.COMPONENT_WORKER,
                                    f"{spec.API_GROUP}/federation": ctx.federation,
                                }
                            }
                        },
                    ],
                    "ports": [
                        {"port": names.HYDRA_API_PORT, "protocol": "TCP"},
                        {"port": names.NODE_METRICS_PORT, "protocol": "TCP"},
                    ],
                },
            ],
        },
    }


def worker_config(ctx: LocalParty) -> spec.WorkerConfig:
    """The worker's whole configuration; secrets appear only as paths of mounted files."""
    members = sorted([ctx.me, *ctx.peers], key=lambda m: m.name)
    return spec.WorkerConfig(
        federation=ctx.federation,
        party=ctx.party.name,
        spec=ctx.spec,
        members=[
            spec.WorkerMember(
                name=m.name,
                address=m.address,
                key_hash=m.key_hash,
                bucket=m.bucket,
                grant_file=None if m.name == ctx.party.name else f"{GRANTS_DIR}/{m.name}",
                max_samples=m.max_samples,
            )
            for m in members
        ],
        api_url=ctx.api_url,
        keys_dir=KEYS_DIR,
        work_dir=WORK_DIR,
        storage_credentials_dir=STORAGE_DIR if ctx.party.spec.storage_secret_ref else None,
        network=network_of(ctx.spec.head),
        data_path=ctx.party.spec.data_path,
        party_index=[m.name for m in members].index(ctx.party.name),
        metrics_port=WORKER_METRICS_PORT,
    )


def worker_config_map(ctx: LocalParty) -> Obj:
    config = worker_config(ctx)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.meta(names.worker(ctx.federation, ctx.party.name), names.COMPONENT_WORKER),
        "data": {"config.json": json.dumps(spec.to_wire(config), indent=2, sort_keys=True)},
    }


def config_hash(config_map: Obj) -> str:
    """Digest of what the worker reads at start: a change means a new Job."""
    return hashlib.sha256(json.dumps(config_map["data"], sort_keys=True).encode()).hexdigest()[:16]


def worker_job(ctx: LocalParty, image: str, digest: str) -> Obj:
    """The worker Job: `hydrafed worker` with its config, keys, credentials and peers' grants mounted.

    restartPolicy Never with a backoff limit: a failed attempt stays visible as a pod, and the
    next attempt resumes from the ledger instead of starting over.
    """
    name = names.worker(ctx.federation, ctx.party.name)
    labels = names.labels(ctx.federation, ctx.party.name, names.COMPONENT_WORKER)
    grant_sources = []
    for peer in ctx.peer_parties:
        ref = peer.spec.read_grant_secret_ref
        assert ref is not None
        grant_sources.append(
            {"secret": {"name": ref.name, "items": [{"key": ref.key or GRANT_KEY, "path": peer.name}]}}
        )
    volumes: list[Obj] = [
        {"name": "config", "configMap": {"name": name}},
        {"name": "keys", "secret": {"secretName": ctx.key_secret, "defaultMode": 0o400}},
        {"name": "work", "emptyDir": {}},
        # The root filesystem is read-only: tempfile, matplotlib and torch need a writable /tmp.
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[Obj] = [
        {"name": "config", "mountPath": WORKER_CONFIG_DIR, "readOnly": True},
        {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own emptyDir, not a shared /tmp)
    ]
    if grant_sources:
        volumes.append({"name": "grants", "projected": {"sources": grant_sources, "defaultMode": 0o400}})
        mounts.append({"name": "grants", "mountPath": GRANTS_DIR, "readOnly": True})
    storage_ref = ctx.party.spec.storage_secret_ref
    if storage_ref is not None:
        source: Obj = {"secretName": storage_ref.name, "defaultMode": 0o400}
        if storage_ref.key is not None:
            source["items"] = [{"key": storage_ref.key, "path": storage_ref.key}]
        volumes.append({"name": "storage", "secret": source})
        mounts.append({"name": "storage", "mountPath": STORAGE_DIR, "readOnly": True})
    resources: Obj = {"requests": {"cpu": "1", "memory": "2Gi"}}
    if ctx.party.spec.gpus:
        resources["limits"] = {"nvidia.com/gpu": str(ctx.party.spec.gpus)}
    container = {
        "name": "worker",
        "image": image,
        "command": ["hydrafed", "worker", "--config", WORKER_CONFIG_FILE],
        "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}],
        "volumeMounts": mounts,
        "resources": resources,
        "securityContext": _restricted(),
    }
    meta = ctx.meta(name, names.COMPONENT_WORKER)
    meta["annotations"] = {names.CONFIG_HASH: digest}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": labels, "annotations": {names.CONFIG_HASH: digest}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
