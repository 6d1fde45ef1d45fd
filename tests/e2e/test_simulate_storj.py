"""`hydrafed simulate --store storj`: the parties' buckets on a real local Storj network.

Each party is a project of its own (its own user, API key and grant) and reads its peers only
through the read-only grants they shared, as in a deployment. Needs ``make storj``; without the
binary the run fails with the build command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hydrafed.ports import free_base_port
from hydrafed.spec import FederationSpec, TrainingSpec
from hydrafed.storage import storjnet
from hydrafed.worker import simulate as sim
from hydrafed.worker.data import cache_dir

pytestmark = pytest.mark.e2e

PARTIES = ("party-01", "party-02", "party-03")


@pytest.fixture(scope="module")
def mnist_cache() -> Path:
    cache = cache_dir()
    if not (cache / "mnist" / "mnist.npz").is_file():
        pytest.skip(f"MNIST digits not fetched into {cache}: run `make data`")
    return cache


def test_three_parties_exchange_updates_through_storj(
    tmp_path: Path, mnist_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: remember the network simulate starts, to check its grants never reach the output.
    started: list[storjnet.LocalStorj] = []
    real_start = storjnet.LocalStorj.start

    def recording_start(workdir: Path, **kwargs: Any) -> storjnet.LocalStorj:
        network = real_start(workdir, **kwargs)
        started.append(network)
        return network

    monkeypatch.setattr(storjnet.LocalStorj, "start", staticmethod(recording_start))
    spec = FederationSpec(training=TrainingSpec(rounds=2, local_epochs=1, sample_limit=600))
    options = sim.SimulateOptions(
        parties=len(PARTIES),
        out=tmp_path / "run",
        api_port=free_base_port(len(PARTIES)),
        cache=mnist_cache,
        baselines=False,
        store="storj",
    )

    # Execute
    report = sim.run_simulation(spec, options, Console(record=True, width=120))

    # Assert
    assert report["config"]["store"] == "storj"
    assert report["identicalFinalWeights"] is True
    ledger = json.loads((options.out / "ledger.json").read_text())
    assert {e["uri"] for e in ledger} == {
        f"sj://{p}/simulate/rounds/{r}/{p}.safetensors" for p in PARTIES for r in (1, 2)
    }
    for entry in report["timings"]["perRound"]:
        assert all(phases["download"] > 0 for phases in entry["parties"].values())
    [network] = started
    assert len({p.access for p in network.projects}) == len(network.projects) == len(PARTIES)
    assert network.process.poll() is not None  # the network was stopped with the run
    secrets = [p.access for p in network.projects] + [p.api_key for p in network.projects]
    for path in options.out.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not any(secret in text for secret in secrets), f"a grant leaked into {path}"
    assert not (options.out / "storj" / "planet.json").exists()
