"""`hydrafed audit` of a deployment: three real workers on a devnet head, one of them dishonest.

Alice, bob and carol run the production worker (``build_worker``: their hydra-nodes, local
buckets, read grants) for two rounds on scikit-learn's digits. Two things go wrong, as they
would with a hostile member: bob signs an announcement that claims to be carol's (every
party ignores it: it is not signed by carol's key), and carol aggregates round 1 differently
from everyone else (her own code: an aggregator that nudges one weight). The audit reads the
ledger record of alice's node (its event log, and its history over the API) with alice's
worker config, and must name both: the forgery in round 1 with bob as signer, and carol in
round 2, where she announced a start the ledger's round 1 does not give.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from hydrafed.cli import app
from hydrafed.head import HeadController
from hydrafed.hydra import tx
from hydrafed.rounds import spec_hash
from hydrafed.spec import FederationSpec, StorageBackend, StorageSpec, TrainingSpec
from hydrafed.storage import LocalStore
from hydrafed.worker import audit_inputs
from hydrafed.worker.aggregation import AggregationResult, Aggregator, Update
from hydrafed.worker.audit import run_audit
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import Member, PartyConfig
from hydrafed.worker.production import NodeAccess, build_worker
from tests.integration.engine.conftest import Net

pytestmark = pytest.mark.integration

FED = "fed"
NAMES = ("alice", "bob", "carol")


class Nudged:
    """A dishonest party's aggregator: the honest result with one weight moved by 1e-3."""

    def __init__(self, honest: Aggregator) -> None:
        self.honest = honest
        self.name = honest.name

    def aggregate(
        self,
        updates: Sequence[Update],
        *,
        current: Mapping[str, torch.Tensor] | None = None,
        state: Mapping[str, torch.Tensor] | None = None,
    ) -> AggregationResult:
        result = self.honest.aggregate(updates, current=current, state=state)
        tensors = {k: v.clone() for k, v in result.tensors.items()}
        key = next(k for k in sorted(tensors) if tensors[k].is_floating_point())
        tensors[key].view(-1)[0] += 1e-3
        return AggregationResult(tensors, result.state)


async def test_a_forgery_and_a_party_that_aggregated_differently_are_named(
    devnet: Net, tmp_path: Path
) -> None:
    # Prepare: an open, funded head; buckets and grants; each party's worker
    net, clients, party_keys = devnet
    await HeadController(clients, timeout=20).open()
    await HeadController(clients, timeout=20).fund(party_keys)
    buckets = tmp_path / "buckets"
    spec = FederationSpec(
        training=TrainingSpec(dataset="digits", rounds=2, local_epochs=1, seed=5),
        storage=StorageSpec(backend=StorageBackend.LOCAL, root=str(buckets)),
    )
    owner = LocalStore(buckets)
    members = []
    for name in NAMES:
        owner.ensure_bucket(name)
        k = party_keys[name]
        members.append(
            Member(name, str(k.address()), k.participant_id, name, owner.share(name, f"{FED}/rounds/"))
        )
    workers = {}
    for index, name in enumerate(NAMES):
        config = PartyConfig(fed=FED, name=name, members=tuple(members), spec=spec, work_dir=tmp_path / name)
        access = NodeAccess(api_url=net.urls[index], keys_dir=net.keys_dir(name))
        task = MnistTask.from_spec(spec.training, party_index=index, parties=3)
        workers[name] = build_worker(config, access, task)
    workers["carol"].aggregator = Nudged(workers["carol"].aggregator)
    # Bob's forgery: an announcement for carol's round 1, signed with bob's key, sent first.
    forged = tx.Announcement(
        fed=FED,
        round=1,
        party="carol",
        uri=owner.uri("carol", f"{FED}/rounds/1/carol.safetensors"),
        sha256="00" * 32,
        samples=1,
        spec_hash=spec_hash(spec),
    )
    bob = clients["bob"]
    envelope = tx.build_announcement_tx(
        forged,
        keys=party_keys["bob"],
        utxo=await bob.get_snapshot_utxo(),
        peer_addresses=[members[0].address, members[2].address],
        protocol_parameters=await bob.get_protocol_parameters(),
    )
    await bob.submit_transaction(envelope)
    results = await asyncio.wait_for(asyncio.gather(*(w.run() for w in workers.values())), 120)
    finals = {r.name: r.final_sha256 for r in results}
    assert finals["alice"] == finals["bob"] != finals["carol"]  # carol really diverged
    # Alice's worker config, as the operator would write it (grants as files).
    grants = {}
    for member in members:
        grants[member.name] = tmp_path / "grants" / member.name
        grants[member.name].parent.mkdir(exist_ok=True)
        grants[member.name].write_text(member.grant)
    worker_config = tmp_path / "alice.json"
    worker_config.write_text(
        json.dumps(
            {
                "federation": FED,
                "party": "alice",
                "partyIndex": 0,
                "spec": spec.model_dump(mode="json", by_alias=True),
                "members": [
                    {
                        "name": m.name,
                        "address": m.address,
                        "keyHash": m.key_hash,
                        "bucket": m.bucket,
                        **({"grantFile": str(grants[m.name])} if m.name != "alice" else {}),
                    }
                    for m in members
                ],
                "apiUrl": net.urls[0],
                "keysDir": str(net.keys_dir("alice")),
                "workDir": str(tmp_path / "alice-audit"),
            }
        )
    )
    claims = {f"{name}'s worker": digest for name, digest in finals.items()}
    event_log = tmp_path / "devnet" / "nodes" / "0" / "events.jsonl"

    # Execute: from the node's event log, and from its history over the API
    from_log = await asyncio.to_thread(
        audit_inputs.from_worker_config, worker_config, ledger=event_log, extra_claims=claims
    )
    from_node = await asyncio.to_thread(audit_inputs.from_worker_config, worker_config, extra_claims=claims)
    report = await asyncio.to_thread(run_audit, from_log)
    again = await asyncio.to_thread(run_audit, from_node)

    # Assert
    named = [(f.round, f.party, f.code) for f in report.findings]
    assert named == [(1, "carol", "NotSigned"), (2, "carol", "StartMismatch"), (2, "", "FinalMismatch")]
    assert report.findings[0].signed_by == ("bob",)
    assert "carol aggregated round 1 differently" in report.findings[1].message
    assert (
        "carol's worker" in report.findings[2].message and "alice's worker" not in report.findings[2].message
    )
    assert report.final_sha256 == finals["alice"]
    assert [r.members for r in report.rounds] == [list(NAMES)] * 2
    assert [r.reproduced for r in report.rounds] == [True, True]  # alice and bob hold it
    assert named == [(f.round, f.party, f.code) for f in again.findings]
    assert [r.aggregate_sha256 for r in again.rounds] == [r.aggregate_sha256 for r in report.rounds]
    # An outsider's inputs: the Federation and each party's export (Party + read-grant Secret).
    manifests = [{"apiVersion": "hydrafed.io/v1alpha1", "kind": "Federation", "metadata": {"name": FED}}]
    manifests[0]["spec"] = spec.model_dump(mode="json", by_alias=True, exclude={"storage": {"root"}})
    manifests[0]["spec"]["storage"]["root"] = str(buckets)
    for member in members:
        vkey = bytes(party_keys[member.name].payment_verification_key.payload).hex()
        secret = f"{member.name}-grant"
        manifests.append(
            {"kind": "Secret", "metadata": {"name": secret}, "stringData": {"grant": member.grant}}
        )
        manifests.append(
            {
                "kind": "Party",
                "metadata": {"name": member.name},
                "spec": {
                    "federation": FED,
                    "cardanoVkey": vkey,
                    "hydraVkey": party_keys[member.name].hydra_vkey_hex,
                    "peerAddress": f"{member.name}-peer.example:5001",
                    "bucket": member.bucket,
                    "readGrantSecretRef": {"name": secret, "key": "grant"},
                },
            }
        )
    exported = tmp_path / "exported.yaml"
    exported.write_text(yaml.safe_dump_all(manifests))
    outsider = await asyncio.to_thread(
        run_audit, audit_inputs.from_manifests([exported], ledger=event_log, extra_claims=claims)
    )
    assert named == [(f.round, f.party, f.code) for f in outsider.findings]
    assert outsider.final_sha256 == report.final_sha256
    # The command an outsider runs, on the same inputs: exit 1 naming the first difference.
    command = ["audit", "--worker-config", str(worker_config), "--ledger", str(event_log)]
    result = await asyncio.to_thread(CliRunner().invoke, app, [*command, "--json", str(tmp_path / "a.json")])
    assert result.exit_code == 1
    assert "audit failed at round 1, party carol: NotSigned" in " ".join(result.output.split())
    assert json.loads((tmp_path / "a.json").read_text())["firstFailure"]["signedBy"] == ["bob"]
