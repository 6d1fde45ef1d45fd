"""Where ``hydrafed audit`` gets its inputs: a simulate run folder, or a deployment's config.

A simulate run folder (``--out`` of ``hydrafed simulate``) holds everything: report.json (the
federation, the spec behind ``specHash``, each party's final digest), the devnet's state
(``devnet/devnet.json``: every member's address; ``devnet/nodes/0/events.jsonl``: the first
node's history, the ledger record) and, for ``--store local``, the buckets. A deployment gives
a party's worker config (the spec, every member's key hash, bucket and read grant, its own
storage credentials: the same files ``hydrafed worker`` reads), or, for an outsider, the
Federation manifest and what ``hydrafed party export`` gives for every party (its Party manifest
and read-grant Secret); and the ledger record, either a JSON-lines file of a node's server
outputs or the node itself (``--node-url``: its history replay).

Public API::

    from_run_dir(run, *, ledger=None, extra_claims={}) -> AuditInput
    from_worker_config(path, *, ledger=None, node_url=None, extra_claims={}) -> AuditInput
    from_manifests(paths, *, ledger=None, node_url=None, extra_claims={}) -> AuditInput
    initial_model(inputs) -> AuditInput          # with the initial weights rebuilt from the spec
    read_ledger_file(path) -> list[ServerOutput]
    read_node_history(url) -> list[ServerOutput]
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pycardano
import pydantic
import yaml

from hydrafed import errors, spec, storage
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import messages
from hydrafed.rounds import spec_hash
from hydrafed.storage import LocalStore, UpdateStore
from hydrafed.worker import entrypoint
from hydrafed.worker.audit import AuditInput

RUN_LEDGER = Path("devnet") / "nodes" / "0" / "events.jsonl"
"""The ledger record inside a simulate run folder: the first party's node's history."""


def read_ledger_file(path: Path) -> list[messages.ServerOutput]:
    """A node's server outputs, one JSON object a line (a devnet event log, a dumped history)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise errors.ConfigError(
            f"--ledger {path}: no such file; pass a node's history (JSON lines)"
        ) from None
    outputs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.ConfigError(
                f"--ledger {path}:{number} is not JSON ({exc.msg}): one server output a line is expected"
            ) from None
        outputs.append(messages.parse_output(data))
    return outputs


def read_node_history(url: str) -> list[messages.ServerOutput]:
    """Everything a hydra-node replays on connect (``history=yes``, up to its Greetings)."""

    async def replay() -> list[messages.ServerOutput]:
        async with client_mod.HydraClient(url, snapshot_utxo=False) as node:
            return list(node.events[: node.position])

    try:
        return asyncio.run(replay())
    except OSError as exc:
        raise errors.HeadError(f"--node-url {url}: cannot read the node's history: {exc}") from exc


def key_hash_of(address: str, *, where: str) -> str:
    """The payment key hash (hex) of a Cardano address: who must sign its owner's announcements."""
    try:
        part = pycardano.Address.from_primitive(address).payment_part
    except (pycardano.DecodingException, ValueError, TypeError) as exc:
        raise errors.ConfigError(f"{where}: {address!r} is not a bech32 Cardano address") from exc
    if not isinstance(part, pycardano.VerificationKeyHash):
        raise errors.ConfigError(f"{where}: {address!r} is a script address; members pay from key addresses")
    return bytes(part.payload).hex()


def _json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise errors.ConfigError(f"{path} is missing: {what}") from None
    except json.JSONDecodeError as exc:
        raise errors.ConfigError(f"{path} is not JSON ({exc.msg}): {what}") from None
    if not isinstance(data, dict):
        raise errors.ConfigError(f"{path} is not a JSON object: {what}")
    return data


def _run_spec(config: Mapping[str, Any], report_path: Path) -> spec.FederationSpec:
    """The spec of a run from report.json's config, checked against the specHash it announced."""
    storage_spec = dict(config.get("storage") or {"backend": "local"})
    if storage_spec.get("backend") == spec.StorageBackend.LOCAL.value:
        storage_spec["root"] = str(report_path.parent / "buckets")
    try:
        federation = spec.FederationSpec.model_validate(
            {
                "training": config["training"],
                "head": config.get("head") or {},
                "roundPolicy": config.get("roundPolicy") or {},
                "storage": storage_spec,
            }
        )
    except KeyError as missing:
        raise errors.ConfigError(
            f"{report_path}: config.{missing.args[0]} is missing: not a simulate report"
        ) from None
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(f"{report_path}: {spec.describe_validation_error(exc, 'config')}") from None
    announced = config.get("specHash")
    if announced != spec_hash(federation):
        raise errors.ConfigError(
            f"{report_path}: the spec in config hashes to {spec_hash(federation)}, not the run's specHash "
            f"{announced}: the report was written by an older hydrafed (no roundPolicy/storage) or edited"
        )
    return federation


def from_run_dir(
    run: Path, *, ledger: Path | None = None, extra_claims: Mapping[str, str] | None = None
) -> AuditInput:
    """The audit of a ``hydrafed simulate`` output folder (``--ledger`` overrides its record)."""
    run = Path(run)
    if not run.is_dir():
        raise errors.ConfigError(f"{run} is not a directory: pass a `hydrafed simulate --out` folder")
    report_path = run / "report.json"
    report = _json(report_path, "pass a `hydrafed simulate --out` folder")
    config = report.get("config") or {}
    fed = str(config.get("fed") or "")
    federation = _run_spec(config, report_path)
    devnet = _json(run / "devnet" / "devnet.json", "the run's devnet state (members' addresses) is needed")
    members = {
        str(p["name"]): key_hash_of(str(p["address"]), where=f"{run / 'devnet' / 'devnet.json'} {p['name']}")
        for p in devnet.get("parties") or []
    }
    store = config.get("store", "local")
    if store != "local":
        raise errors.ConfigError(
            f"{run} kept its buckets on {store}, which simulate stopped after the run: audit it with "
            "--worker-config and the parties' read grants, or rerun it with --store local"
        )
    stores: dict[str, UpdateStore] = {
        name: LocalStore(run / "buckets", read_prefix=(name, f"{fed}/rounds/")) for name in members
    }
    claims = {
        f"report.json {p['name']}": str(p["finalWeightsSha256"])
        for p in report.get("parties") or []
        if p.get("finalWeightsSha256")
    }
    claims.update(extra_claims or {})
    head_id = (report.get("head") or {}).get("headId")
    return AuditInput(
        fed=fed,
        spec=federation,
        members=members,
        outputs=read_ledger_file(ledger or run / RUN_LEDGER),
        stores=stores,
        final_claims=claims,
        head_id=str(head_id) if head_id else None,
    )


def _documents(paths: Sequence[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML (or JSON) document of the files, with the file it came from."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(Path(path).read_text()))
        except FileNotFoundError:
            raise errors.ConfigError(f"--manifests {path}: no such file") from None
        except yaml.YAMLError as exc:
            raise errors.ConfigError(f"--manifests {path} is not YAML: {exc}") from None
        found.extend((Path(path), d) for d in docs if isinstance(d, dict))
    return found


def _grant(secret: Mapping[str, Any], key: str | None, where: str) -> str:
    """A read grant from a Secret manifest (``stringData`` or base64 ``data``)."""
    plain: dict[str, str] = {str(k): str(v) for k, v in (secret.get("stringData") or {}).items()}
    plain.update({str(k): base64.b64decode(str(v)).decode() for k, v in (secret.get("data") or {}).items()})
    if key is None and len(plain) == 1:
        key = next(iter(plain))
    if key is None or key not in plain:
        raise errors.ConfigError(f"{where}: the Secret has no key {key!r} holding the read grant")
    return plain[key].strip()


def from_manifests(
    paths: Sequence[Path],
    *,
    ledger: Path | None = None,
    node_url: str | None = None,
    extra_claims: Mapping[str, str] | None = None,
) -> AuditInput:
    """The audit of a deployment by an outsider: the Federation and every Party as exported.

    ``paths`` hold the Federation manifest and, for every party, what ``hydrafed party export``
    gives: its remote Party manifest (cardanoVkey, bucket, readGrantSecretRef) and the Secret
    with its read grant. The ledger record is ``ledger`` or ``node_url``'s history.
    """
    if (ledger is None) == (node_url is None):
        raise errors.ConfigError(
            "--manifests: pass the ledger record with --ledger FILE or --node-url URL (one)"
        )
    docs = _documents(paths)
    federations = [(p, d) for p, d in docs if d.get("kind") == "Federation"]
    if len(federations) != 1:
        raise errors.ConfigError(f"--manifests: expected one Federation manifest, found {len(federations)}")
    fed_path, fed_doc = federations[0]
    fed = str((fed_doc.get("metadata") or {}).get("name") or "")
    try:
        federation = spec.FederationSpec.model_validate(fed_doc.get("spec") or {})
    except pydantic.ValidationError as exc:
        raise errors.ConfigError(f"{fed_path}: {spec.describe_validation_error(exc)}") from None
    secrets = {str((d.get("metadata") or {}).get("name")): d for _, d in docs if d.get("kind") == "Secret"}
    members: dict[str, str] = {}
    stores: dict[str, UpdateStore] = {}
    caps: dict[str, int | None] = {}
    for path, doc in docs:
        if doc.get("kind") != "Party":
            continue
        name = str((doc.get("metadata") or {}).get("name") or "")
        where = f"{path} Party {name}"
        try:
            party = spec.PartySpec.model_validate(doc.get("spec") or {})
        except pydantic.ValidationError as exc:
            raise errors.ConfigError(f"{where}: {spec.describe_validation_error(exc)}") from None
        if party.federation != fed:
            continue
        if party.cardano_vkey is None or party.read_grant_secret_ref is None:
            raise errors.ConfigError(
                f"{where}: spec.cardanoVkey and spec.readGrantSecretRef are needed: use the manifest "
                "`hydrafed party export` wrote for it"
            )
        ref = party.read_grant_secret_ref
        if ref.name not in secrets:
            raise errors.ConfigError(f"{where}: its read-grant Secret {ref.name} is not among the manifests")
        vkey = pycardano.PaymentVerificationKey(bytes.fromhex(party.cardano_vkey))
        members[name] = key_hash_of(str(keys_mod.payment_address(vkey)), where=where)
        stores[name] = storage.open_shared(_grant(secrets[ref.name], ref.key, f"{where} Secret {ref.name}"))
        caps[name] = party.max_samples
    if not members:
        raise errors.ConfigError(f"--manifests: no Party of Federation {fed!r} among the manifests")
    outputs = read_ledger_file(ledger) if ledger is not None else read_node_history(str(node_url))
    return AuditInput(
        fed=fed,
        spec=federation,
        members=members,
        outputs=outputs,
        stores=stores,
        final_claims=dict(extra_claims or {}),
        max_samples=caps,
    )


def initial_model(inputs: AuditInput, *, cache: Path | None = None) -> AuditInput:
    """``inputs`` with the initial model rebuilt from the spec (what every party starts from).

    Builds party 0's task exactly as a worker does (``tasks.build_task``: the seeded model; for
    image models the dataset is loaded too, so MNIST must be in the cache).
    """
    from hydrafed.worker.tasks import build_task

    task = build_task(inputs.spec.training, party_index=0, parties=len(inputs.members), cache=cache)
    return dataclasses.replace(inputs, initial_state=task.exchanged_state())


def from_worker_config(
    path: Path,
    *,
    ledger: Path | None = None,
    node_url: str | None = None,
    extra_claims: Mapping[str, str] | None = None,
) -> AuditInput:
    """The audit of a deployment, from a party's worker config (``hydrafed worker --config``).

    The config's members give the key hashes and the read grants, its storage credentials the
    party's own bucket. The ledger record is ``ledger`` (JSON lines) or ``node_url``'s history;
    with neither, the history of the party's own node (``apiUrl``).
    """
    config = entrypoint.load_config(Path(path))
    if ledger is not None and node_url is not None:
        raise errors.ConfigError("--ledger and --node-url both name a ledger record: pass one")
    # The worker's own reading of grants and credentials; its scratch dir and data are not needed.
    with tempfile.TemporaryDirectory(prefix="hydrafed-audit-") as scratch:
        party, access = entrypoint.party_config(
            config.model_copy(update={"work_dir": scratch, "data_path": None})
        )
    stores: dict[str, UpdateStore] = {}
    for member in party.members:
        if member.name == party.name:
            stores[member.name] = storage.open_store(config.spec.storage, access.storage_credentials)
        else:
            stores[member.name] = storage.open_shared(member.grant)
    outputs = (
        read_ledger_file(ledger) if ledger is not None else read_node_history(node_url or config.api_url)
    )
    return AuditInput(
        fed=config.federation,
        spec=config.spec,
        members={m.name: m.key_hash for m in party.members},
        outputs=outputs,
        stores=stores,
        final_claims=dict(extra_claims or {}),
        max_samples={m.name: m.max_samples for m in party.members},
    )
