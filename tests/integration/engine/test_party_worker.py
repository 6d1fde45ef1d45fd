"""A PartyWorker against a real devnet and real buckets, with its peer driven by the test.

Alice runs the real round loop (MLP on scikit-learn's digits, no download needed); the test plays
bob: it uploads bob's update to his bucket and announces it from bob's node. An honest bob gives
exactly FedAvg of the two updates; a tampered object is excluded (HashMismatch, bob flagged) and
the round goes on with alice's update alone; when alice's own training diverges she sits the
round out (0 samples).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch

from hydrafed.head import HeadController
from hydrafed.hydra import tx
from hydrafed.rounds import spec_hash
from hydrafed.spec import FederationSpec, StorageBackend, StorageSpec, TrainingSpec
from hydrafed.storage import LocalStore, sha256_file
from hydrafed.worker.aggregation import Update
from hydrafed.worker.aggregation.fedavg import fedavg
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import Member, PartyConfig, state_sha256
from hydrafed.worker.production import NodeAccess, build_worker
from tests.integration.engine.conftest import Net

pytestmark = pytest.mark.integration

KEY = "fed/rounds/1/bob.safetensors"


@pytest.mark.parametrize("case", ["honest", "tampered", "alice-diverges"])
async def test_round_with_a_test_driven_peer(devnet: Net, tmp_path: Path, case: str) -> None:
    # Prepare: an open, funded head; alice's worker; bob's trained update in bob's bucket
    net, clients, party_keys = devnet
    await HeadController(clients, timeout=20).open()
    await HeadController(clients, timeout=20).fund(party_keys)
    buckets = tmp_path / "buckets"
    spec = FederationSpec(
        training=TrainingSpec(dataset="digits", rounds=1, local_epochs=1, seed=3),
        storage=StorageSpec(backend=StorageBackend.LOCAL, root=str(buckets)),
    )
    owner = LocalStore(buckets)
    members = []
    for name in ("alice", "bob"):
        owner.ensure_bucket(name)
        k = party_keys[name]
        members.append(
            Member(name, str(k.address()), k.participant_id, name, owner.share(name, "fed/rounds/"))
        )
    config = PartyConfig(
        fed="fed", name="alice", members=tuple(members), spec=spec, work_dir=tmp_path / "alice"
    )
    access = NodeAccess(api_url=net.urls[0], keys_dir=net.keys_dir("alice"))
    # A learning rate of 1e30 makes alice's SGD overflow: her loss and weights go non-finite.
    alice_training = spec.training.model_copy(
        update={"learning_rate": 1e30 if case == "alice-diverges" else spec.training.learning_rate}
    )
    alice_task = MnistTask.from_spec(alice_training, party_index=0, parties=2)
    alice_start = alice_task.exchanged_state()
    bob_task = MnistTask.from_spec(spec.training, party_index=1, parties=2)
    bob_result = bob_task.train_round(1)
    bob_state = bob_task.exchanged_state()
    upload = tmp_path / "bob.safetensors"
    safetensors.torch.save_file(bob_state, str(upload))
    digest = sha256_file(upload)
    owner.put("bob", KEY, upload)
    tamper = case == "tampered"
    if tamper:
        stored = buckets / "bob" / KEY
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x40
        stored.write_bytes(bytes(data))
    events: list[dict[str, Any]] = []
    worker = build_worker(config, access, alice_task, progress=events.append)

    # Execute: alice runs; bob announces from his own node
    running = asyncio.create_task(worker.run())
    bob = clients["bob"]
    announcement = tx.Announcement(
        fed="fed",
        round=1,
        party="bob",
        uri=owner.uri("bob", KEY),
        sha256=digest,
        samples=bob_result.samples,
        spec_hash=spec_hash(spec),
    )
    envelope = tx.build_announcement_tx(
        announcement,
        keys=party_keys["bob"],
        utxo=await bob.get_snapshot_utxo(),
        peer_addresses=[members[0].address],
        protocol_parameters=await bob.get_protocol_parameters(),
    )
    await bob.submit_transaction(envelope)

    # Assert
    result = await asyncio.wait_for(running, 60)
    if tamper:
        (record,) = result.rounds
        assert record.members == ["alice", "bob"] and record.excluded == {"bob": "HashMismatch"}
        (flag,) = [e for e in events if e["state"] == "excluded"]
        assert (flag["offender"], flag["code"]) == ("bob", "HashMismatch")
        assert "does not match the announced" in flag["reason"]
        assert [(i["party"], i["code"], i["offence"]) for i in result.ignored] == [
            ("bob", "HashMismatch", True)
        ]
        assert record.global_sha256 == state_sha256(alice_task.exchanged_state())
        return
    (record,) = result.rounds
    assert record.members == ["alice", "bob"]
    alice_update = safetensors.torch.load_file(
        str(buckets / "alice" / "fed" / "rounds" / "1" / "alice.safetensors")
    )
    assert sha256_file(buckets / "alice" / "fed" / "rounds" / "1" / "alice.safetensors") == record.sha256
    alice_samples = 0 if case == "alice-diverges" else result.samples
    assert result.announcements[0]["samples"] == alice_samples
    expected = fedavg(
        [Update("bob", bob_result.samples, bob_state), Update("alice", alice_samples, alice_update)]
    )
    if case == "alice-diverges":
        # She announced the weights she started from, with no weight: the round is bob's update.
        assert state_sha256(alice_update) == state_sha256(alice_start)
        assert state_sha256(expected) == state_sha256(bob_state)
        assert record.train_metrics == {"diverged": 1.0}
        assert "diverged" in [e["state"] for e in events]
    assert record.global_sha256 == result.final_sha256 == state_sha256(expected)
    assert state_sha256(alice_task.exchanged_state()) == state_sha256(expected)
    assert [(a["round"], a["party"]) for a in result.announcements] == [(1, "alice"), (1, "bob")]
    assert result.announcements[1]["txId"] == envelope["txId"]
    assert set(record.timings) == {
        "train", "serialize", "upload", "announce", "wait", "download", "verify", "aggregate", "evaluate"
    }  # fmt: skip
    states = [e["state"] for e in events]
    assert states[0] == "training" and states[-3:] == ["aggregated", "evaluated", "done"]
    assert states.index("uploading") < states.index("announced") < states.index("aggregated")
    assert 0 < record.metrics["accuracy"] <= 1 and record.timings["evaluate"] > 0
