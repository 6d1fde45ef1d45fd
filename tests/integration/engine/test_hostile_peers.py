"""Hostile peers and quorum rounds on a real devnet head, with production workers.

Alice and bob run the production worker (``build_worker``: their hydra-nodes, local buckets,
read grants) on scikit-learn's digits. In the hostile cases the test plays carol from her own
node: a NaN update, a claim over her declared maxSamples, an object whose bytes differ from the
announced sha256, or a second announcement for the round. Each time both honest parties exclude
the same thing, flag carol (never each other) and end with the same global weights, the FedAvg
of what counted. In the quorum case carol is a real worker that trains too slowly: round 1 is
cut off with alice and bob, carol's late announcement is ignored by all three alike, she takes
the aggregate and every party holds the same weights after every round.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from hydrafed.head import HeadController
from hydrafed.hydra import tx
from hydrafed.rounds import spec_hash
from hydrafed.spec import FederationSpec, RoundPolicySpec, StorageBackend, StorageSpec, TrainingSpec
from hydrafed.storage import LocalStore, sha256_file
from hydrafed.worker.aggregation import Update
from hydrafed.worker.aggregation.fedavg import fedavg
from hydrafed.worker.mnist_task import MnistTask
from hydrafed.worker.party import Member, PartyConfig, PartyResult, state_sha256
from hydrafed.worker.production import NodeAccess, build_worker
from hydrafed.worker.task import TrainResult
from tests.integration.engine.conftest import Net

pytestmark = pytest.mark.integration

FED = "fed"
NAMES = ("alice", "bob", "carol")
CAROL_MAX = 50


def _spec(buckets: Path, rounds: int, policy: RoundPolicySpec | None = None) -> FederationSpec:
    return FederationSpec(
        training=TrainingSpec(dataset="digits", rounds=rounds, local_epochs=1, seed=5),
        round_policy=policy or RoundPolicySpec(timeout_seconds=60),
        storage=StorageSpec(backend=StorageBackend.LOCAL, root=str(buckets)),
    )


async def _open(net: Net, tmp_path: Path) -> tuple[LocalStore, tuple[Member, ...]]:
    _, clients, party_keys = net
    await HeadController(clients, timeout=20).open()
    await HeadController(clients, timeout=20).fund(party_keys)
    owner = LocalStore(tmp_path / "buckets")
    members = []
    for name in NAMES:
        owner.ensure_bucket(name)
        k = party_keys[name]
        members.append(
            Member(
                name,
                str(k.address()),
                k.participant_id,
                name,
                owner.share(name, f"{FED}/rounds/"),
                max_samples=CAROL_MAX if name == "carol" else None,
            )
        )
    return owner, tuple(members)


async def _announce_as_carol(
    net: Net, owner: LocalStore, members: tuple[Member, ...], spec: FederationSpec, *, data: bytes,
    digest: str, samples: int, key: str = f"{FED}/rounds/1/carol.safetensors",
) -> str:  # fmt: skip
    """Upload ``data`` to carol's bucket and announce ``digest`` from carol's node."""
    _, clients, party_keys = net
    path = owner.root / "carol-upload.safetensors"
    path.write_bytes(data)
    owner.put("carol", key, path)
    client = clients["carol"]
    announcement = tx.Announcement(
        fed=FED, round=1, party="carol", uri=owner.uri("carol", key), sha256=digest, samples=samples,
        spec_hash=spec_hash(spec),
    )  # fmt: skip
    envelope = tx.build_announcement_tx(
        announcement,
        keys=party_keys["carol"],
        utxo=await client.get_snapshot_utxo(),
        peer_addresses=[m.address for m in members if m.name != "carol"],
        protocol_parameters=await client.get_protocol_parameters(),
    )
    await client.submit_transaction(envelope)
    return str(envelope["txId"])


def _worker_run(net: Net, tmp_path: Path, members: tuple[Member, ...], spec: FederationSpec, name: str,
                task: Any, events: list[dict[str, Any]], release: threading.Event | None = None,
                ) -> asyncio.Task[PartyResult]:  # fmt: skip
    devnet, _, _ = net
    config = PartyConfig(fed=FED, name=name, members=members, spec=spec, work_dir=tmp_path / name)
    access = NodeAccess(api_url=devnet.urls[NAMES.index(name)], keys_dir=devnet.keys_dir(name))

    def progress(event: dict[str, Any]) -> None:
        events.append(event)
        if release is not None and event["state"] == "aggregated":
            release.set()  # this party has aggregated round 1: let the straggler finish

    return asyncio.create_task(build_worker(config, access, task, progress=progress).run())


def _update(owner: LocalStore, party: str, samples: int) -> Update:
    stored = owner.root / party / FED / "rounds" / "1" / f"{party}.safetensors"
    return Update(party, samples, safetensors.torch.load_file(str(stored)))


@pytest.mark.parametrize("case", ["nan", "inflated", "hash-mismatch", "duplicate"])
async def test_a_hostile_peer_is_excluded_by_every_party_and_flagged(
    devnet: Net, tmp_path: Path, case: str
) -> None:
    # Prepare: an open head, alice and bob as real workers, carol's honest update ready
    owner, members = await _open(devnet, tmp_path)
    spec = _spec(owner.root, rounds=1)
    events: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}
    tasks = {n: MnistTask.from_spec(spec.training, party_index=i, parties=3) for i, n in enumerate(NAMES)}
    carol_samples = min(tasks["carol"].train_round(1).samples, CAROL_MAX)
    carol_state = tasks["carol"].exchanged_state()
    honest = safetensors.torch.save(carol_state)
    runs = {n: _worker_run(devnet, tmp_path, members, spec, n, tasks[n], events[n]) for n in ("alice", "bob")}

    # Execute: carol misbehaves from her own node
    if case == "nan":
        poisoned = {k: v.clone() for k, v in carol_state.items()}
        next(iter(poisoned.values())).view(-1)[3] = float("nan")
        data = safetensors.torch.save(poisoned)
        await _announce_as_carol(
            devnet, owner, members, spec, data=data, digest=_sha(data), samples=carol_samples
        )
    elif case == "inflated":
        await _announce_as_carol(
            devnet, owner, members, spec, data=honest, digest=_sha(honest), samples=10**15
        )
    elif case == "hash-mismatch":
        other = safetensors.torch.save({k: v + 1 for k, v in carol_state.items()})
        await _announce_as_carol(
            devnet, owner, members, spec, data=other, digest=_sha(honest), samples=carol_samples
        )
    else:
        await _announce_as_carol(
            devnet, owner, members, spec, data=honest, digest=_sha(honest), samples=carol_samples
        )
        other = safetensors.torch.save({k: v * 0 for k, v in carol_state.items()})
        await _announce_as_carol(
            devnet, owner, members, spec, data=other, digest=_sha(other), samples=carol_samples,
            key=f"{FED}/rounds/1/carol-again.safetensors",
        )  # fmt: skip
    results = {n: await asyncio.wait_for(run, 90) for n, run in runs.items()}

    # Assert: the same verdict on both honest parties; carol flagged, nobody else
    alice, bob = results["alice"], results["bob"]
    counted = [
        _update(owner, "alice", alice.samples),
        _update(owner, "bob", bob.samples),
    ]
    expected_code = {"nan": "BadUpdate", "inflated": "TooManySamples", "hash-mismatch": "HashMismatch"}
    if case == "duplicate":
        counted.append(Update("carol", carol_samples, safetensors.torch.load(honest)))
    for result in results.values():
        flags = [(i["party"], i["code"], i["round"]) for i in result.ignored if i["offence"]]
        assert flags == [("carol", expected_code.get(case, "Duplicate"), 1)]
        (record,) = result.rounds
        if case in ("nan", "hash-mismatch"):
            assert record.members == ["alice", "bob", "carol"]
            assert record.excluded == {"carol": expected_code[case]}
        else:
            assert record.members == (["alice", "bob", "carol"] if case == "duplicate" else ["alice", "bob"])
            assert record.excluded == {}
    for name in ("alice", "bob"):
        excluded = [e for e in events[name] if e["state"] == "excluded"]
        assert [e["offender"] for e in excluded] == (["carol"] if case in ("nan", "hash-mismatch") else [])
    assert alice.final_sha256 == bob.final_sha256 == state_sha256(fedavg(counted))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class SlowTask:
    """A real task that finishes round 1 only once ``release`` is set: a straggler."""

    def __init__(self, task: MnistTask, release: threading.Event) -> None:
        self.task = task
        self.release = release

    def exchanged_state(self) -> dict[str, torch.Tensor]:
        return self.task.exchanged_state()

    def load_exchanged_state(self, state: Any) -> None:
        self.task.load_exchanged_state(state)

    def train_round(self, round_no: int) -> TrainResult:
        result = self.task.train_round(round_no)
        if round_no == 1:
            self.release.wait(60)
        return result

    def evaluate(self) -> dict[str, float]:
        return self.task.evaluate()


async def test_a_quorum_round_completes_without_the_straggler_identically_for_all(
    devnet: Net, tmp_path: Path
) -> None:
    # Prepare: quorum 2 of 3 with a 1 s grace; carol's round 1 ends once alice has aggregated it
    owner, members = await _open(devnet, tmp_path)
    members = tuple(Member(m.name, m.address, m.key_hash, m.bucket, m.grant) for m in members)
    spec = _spec(owner.root, rounds=2, policy=RoundPolicySpec(quorum=2, grace_seconds=1, timeout_seconds=60))
    tasks: dict[str, Any] = {
        n: MnistTask.from_spec(spec.training, party_index=i, parties=3) for i, n in enumerate(NAMES)
    }
    release = threading.Event()
    tasks["carol"] = SlowTask(tasks["carol"], release)
    events: dict[str, list[dict[str, Any]]] = {n: [] for n in NAMES}

    # Execute
    runs = {
        n: _worker_run(
            devnet, tmp_path, members, spec, n, tasks[n], events[n], release if n == "alice" else None
        )
        for n in NAMES
    }
    results = {n: await asyncio.wait_for(run, 120) for n, run in runs.items()}

    # Assert: round 1 is alice's and bob's for everyone; carol's announcement is Late for everyone
    for round_index in range(2):
        digests = {n: r.rounds[round_index].global_sha256 for n, r in results.items()}
        members_seen = {tuple(r.rounds[round_index].members) for r in results.values()}
        assert len(set(digests.values())) == 1, digests
        assert len(members_seen) == 1 and len(next(iter(members_seen))) >= 2
    assert results["alice"].rounds[0].members == ["alice", "bob"]
    assert results["carol"].rounds[0].missed and not results["alice"].rounds[0].missed
    ignored = {n: [(i["party"], i["round"], i["code"]) for i in r.ignored] for n, r in results.items()}
    for rows in ignored.values():
        assert ("carol", 1, "Late") in rows
        assert not [i for i in rows if i[2] not in ("Late", "CutoffNotNeeded")]
    assert ignored["alice"] == ignored["bob"] == ignored["carol"]
    assert len({r.final_sha256 for r in results.values()}) == 1
    expected = fedavg(
        [_update(owner, "alice", results["alice"].samples), _update(owner, "bob", results["bob"].samples)]
    )
    assert results["alice"].rounds[0].global_sha256 == state_sha256(expected)
    assert sha256_file(owner.root / "carol" / FED / "rounds" / "1" / "carol.safetensors")  # she did announce
