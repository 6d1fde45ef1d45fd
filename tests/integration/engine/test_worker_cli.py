"""`hydrafed worker --config FILE` as the operator's Job runs it: real CLI processes on a devnet.

Three worker processes (MLP on scikit-learn's digits, local-directory buckets, grants and keys
read from files as mounted Secrets are) federate over an open devnet head. One is SIGKILLed once
its round 1 announcement is confirmed, while the round still waits for a peer that has not
started, and is restarted with the same config: it takes its announced update from its bucket
instead of announcing again, ends on the same final weights as the others, and the ledger holds
exactly one announcement per party and round. (A round of this task takes tens of milliseconds,
so a kill "after round 1" could land after the last round: waiting for bob makes it certain.)
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from hydrafed import spec as spec_mod
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.ports import free_base_port
from hydrafed.rounds import RoundBook, spec_hash
from hydrafed.storage import LocalStore

pytestmark = pytest.mark.integration

NAMES = ["alice", "bob", "carol"]
ROUNDS = 3
HYDRAFED = str(Path(sys.executable).parent / "hydrafed")
_ROUND_1_ANNOUNCED = '{"round": 1, "state": "announced"'


def _configs(tmp_path: Path, net: Devnet) -> tuple[dict[str, Path], spec_mod.FederationSpec]:
    """One worker config file per party, secrets only referenced by path."""
    buckets = tmp_path / "buckets"
    federation = spec_mod.FederationSpec(
        training=spec_mod.TrainingSpec(dataset="digits", rounds=ROUNDS, seed=2, local_epochs=1),
        storage=spec_mod.StorageSpec(backend=spec_mod.StorageBackend.LOCAL, root=str(buckets)),
    )
    owner = LocalStore(buckets)
    party_keys = {n: keys.load_party_keys(net.keys_dir(n), n) for n in NAMES}
    members = []
    for name in NAMES:
        owner.ensure_bucket(name)
        grant = tmp_path / "grants" / name
        grant.parent.mkdir(exist_ok=True)
        grant.write_text(owner.share(name, "fed/rounds/", timedelta(hours=1)))
        members.append(
            spec_mod.WorkerMember(
                name=name,
                address=str(party_keys[name].address()),
                key_hash=party_keys[name].participant_id,
                bucket=name,
                grant_file=str(grant),
            )
        )
    paths = {}
    for index, name in enumerate(NAMES):
        config = spec_mod.WorkerConfig(
            federation="fed",
            party=name,
            spec=federation,
            members=members,
            api_url=net.urls[index],
            keys_dir=str(net.keys_dir(name)),
            work_dir=str(tmp_path / "work" / name),
            party_index=index,
        )
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(config.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return paths, federation


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [HYDRAFED, "worker", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
    )


def _final_sha(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if line.startswith("final global sha256 ")]
    assert lines, log.read_text()[-3000:]
    return lines[-1].split()[-1]


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_three_worker_processes_agree_and_a_killed_one_resumes(tmp_path: Path) -> None:
    # Prepare: an open devnet head with every party's funds in it
    devnet = Devnet(
        parties=NAMES,
        api_port=free_base_port(3),
        state_dir=tmp_path / "devnet",
        open_head=True,
        deposit_activation=0.05,
    )
    with DevnetThread(devnet) as net:
        paths, federation = _configs(tmp_path, net)
        logs = {n: tmp_path / f"{n}.log" for n in NAMES}

        # Execute: alice and carol announce round 1, which then waits for bob; SIGKILL carol
        # there, start bob and restart carol
        procs = {n: _start(paths[n], logs[n]) for n in ("alice", "carol")}
        try:
            carol = logs["carol"]
            _wait_for(lambda: _ROUND_1_ANNOUNCED in carol.read_text(), 120, "carol's round 1 announcement")
            procs["carol"].send_signal(signal.SIGKILL)
            assert procs["carol"].wait(10) == -signal.SIGKILL
            assert '"state": "aggregated"' not in carol.read_text()  # killed inside round 1
            procs["bob"] = _start(paths["bob"], logs["bob"])
            procs["carol"] = _start(paths["carol"], logs["carol"])
            codes = {n: p.wait(240) for n, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()

        # Assert
        assert codes == dict.fromkeys(NAMES, 0), {n: logs[n].read_text()[-2000:] for n in NAMES}
        finals = {n: _final_sha(logs[n]) for n in NAMES}
        assert len(set(finals.values())) == 1, finals
        assert logs["carol"].read_text().count(_ROUND_1_ANNOUNCED) == 1  # not announced again

        async def ledger() -> RoundBook:
            party_keys = {n: keys.load_party_keys(net.keys_dir(n), n) for n in NAMES}
            book = RoundBook(
                "fed", spec_hash(federation), {n: k.participant_id for n, k in party_keys.items()}
            )
            async with client_mod.HydraClient(net.urls[0]) as client:
                for output in client.events:
                    book.observe(output)
            return book

        book = asyncio.run(ledger())
        assert [book.announced(r) for r in range(1, ROUNDS + 1)] == [NAMES] * ROUNDS
        assert book.ignored == []  # no second announcement from anyone, for any round


def test_a_bad_config_is_one_line_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("federation: fed\nparty: alice\n")

    result = subprocess.run(
        [HYDRAFED, "worker", "--config", str(config)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 2  # ConfigError
    assert "members" in result.stderr and "Traceback" not in result.stderr
