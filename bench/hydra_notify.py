"""Round-notification latency and throughput through the devnet Hydra head.

For 3 and 10 parties, 1,000 announcements in all: every party runs a closed loop (read the
head UTxO, build and sign an announcement, send NewTx, wait until every party's client has
seen it in a SnapshotConfirmed). Latency is measured from NewTx to the last party's client
receiving the confirming snapshot (``all``) and to the sender's own client (``own``); tx/s is
announcements / wall time. The devnet runs as its own process (``hydrafed devnet``), as it does
beside ``hydrafed simulate``; clients use real WebSockets on loopback.

Run: ``.venv/bin/python -m bench.hydra_notify [--parties 3 10] [--announcements 1000]``.
Writes bench/results/hydra_notify.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from hydrafed.hydra import client as client_mod
from hydrafed.hydra import funding, keys, messages, tx

RESULTS = Path(__file__).resolve().parent / "results" / "hydra_notify.json"


def _free_base(count: int) -> int:
    for base in range(47000, 60000, 50):
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


class Tracker:
    """Records when each client first sees each confirmed tx."""

    def __init__(self, clients: list[client_mod.HydraClient]) -> None:
        self.clients = clients
        self.seen: dict[str, list[float]] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.tasks = [asyncio.create_task(self._watch(i, c)) for i, c in enumerate(clients)]
        self.by_client: list[dict[str, float]] = [{} for _ in clients]

    async def _watch(self, index: int, c: client_mod.HydraClient) -> None:
        async for out in c.subscribe(c.position):
            if isinstance(out, messages.SnapshotConfirmed):
                now = time.perf_counter()
                for tx_id in out.confirmed_tx_ids:
                    self.by_client[index][tx_id] = now
                    times = self.seen.setdefault(tx_id, [])
                    times.append(now)
                    if len(times) == len(self.clients):
                        self.event(tx_id).set()

    def event(self, tx_id: str) -> asyncio.Event:
        return self.done.setdefault(tx_id, asyncio.Event())


async def _party_loop(
    index: int,
    count: int,
    clients: list[client_mod.HydraClient],
    party_keys: list[keys.PartyKeys],
    params: dict[str, Any],
    tracker: Tracker,
    lat_all: list[float],
    lat_own: list[float],
) -> None:
    me, c = party_keys[index], clients[index]
    peers = [str(k.address()) for k in party_keys if k is not me]
    for r in range(count):
        utxo = await c.get_snapshot_utxo()
        ann = tx.Announcement(
            fed="bench",
            round=r,
            party=me.name,
            uri=f"sj://bench-{me.name}/rounds/{r}/{me.name}.safetensors",
            sha256=f"{r % 256:02x}" * 32,
            samples=1000,
            metrics={"accuracy": 0.9, "loss": 0.3},
            spec_hash="ab" * 32,
        )
        env = tx.build_announcement_tx(
            ann, keys=me, utxo=utxo, peer_addresses=peers, protocol_parameters=params
        )
        done = tracker.event(env["txId"])
        start = time.perf_counter()
        await c.send(messages.NewTx(transaction=env))
        await asyncio.wait_for(done.wait(), 30)
        lat_all.append(max(tracker.seen[env["txId"]]) - start)
        lat_own.append(tracker.by_client[index][env["txId"]] - start)


async def _rounds(
    rounds: int,
    clients: list[client_mod.HydraClient],
    party_keys: list[keys.PartyKeys],
    params: dict[str, Any],
    tracker: Tracker,
    lat_all: list[float],
    lat_own: list[float],
) -> None:
    """Federation pattern: each round every party builds its announcement, then all are sent at once."""
    for r in range(rounds):
        utxo = await clients[0].get_snapshot_utxo()
        envs = []
        for me in party_keys:
            peers = [str(k.address()) for k in party_keys if k is not me]
            ann = tx.Announcement(
                fed="bench", round=r, party=me.name, uri=f"sj://bench-{me.name}/rounds/{r}/{me.name}.safetensors",
                sha256=f"{r % 256:02x}" * 32, samples=1000, metrics={"accuracy": 0.9, "loss": 0.3},
                spec_hash="ab" * 32,
            )  # fmt: skip
            envs.append(
                tx.build_announcement_tx(
                    ann, keys=me, utxo=utxo, peer_addresses=peers, protocol_parameters=params
                )
            )
        starts = []
        for c, env in zip(clients, envs, strict=True):
            starts.append(time.perf_counter())
            await c.send(messages.NewTx(transaction=env))
        for i, (env, start) in enumerate(zip(envs, starts, strict=True)):
            await asyncio.wait_for(tracker.event(env["txId"]).wait(), 30)
            lat_all.append(max(tracker.seen[env["txId"]]) - start)
            lat_own.append(tracker.by_client[i][env["txId"]] - start)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(parties: int, announcements: int, mode: str) -> dict[str, Any]:
    """One measurement: a fresh devnet process, funded parties, ``announcements`` in all."""
    state = Path(tempfile.mkdtemp(prefix="hydra-notify-"))
    base = _free_base(parties)
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "-c", "from hydrafed.cli import main; main()", "devnet", "--parties", str(parties),
         "--api-port", str(base), "--state-dir", str(state), "--deposit-activation", "0.05",
         "--contestation-period", "1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (state / "devnet.json").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("devnet did not start")
            await asyncio.sleep(0.1)
        manifest = json.loads((state / "devnet.json").read_text())
        party_keys = [keys.load_party_keys(Path(p["keysDir"]), p["name"]) for p in manifest["parties"]]
        clients = [client_mod.HydraClient(p["apiUrl"], snapshot_utxo=False) for p in manifest["parties"]]
        for c in clients:
            await c.connect()
        await clients[0].send(messages.Init())
        for c in clients:
            await c.wait_for("HeadIsOpen", since=0)
        await asyncio.gather(*(funding.commit_funds(c, k) for c, k in zip(clients, party_keys, strict=True)))
        params = await clients[0].get_protocol_parameters()
        tracker = Tracker(clients)
        counts = [
            announcements // parties + (1 if i < announcements % parties else 0) for i in range(parties)
        ]
        lat_all: list[float] = []
        lat_own: list[float] = []
        devnet_cpu0 = sum(psutil.Process(proc.pid).cpu_times()[:2])
        bench_cpu0 = time.process_time()
        t0 = time.perf_counter()
        if mode == "rounds":
            await _rounds(
                -(-announcements // parties), clients, party_keys, params, tracker, lat_all, lat_own
            )
        else:
            await asyncio.gather(
                *(
                    _party_loop(i, n, clients, party_keys, params, tracker, lat_all, lat_own)
                    for i, n in enumerate(counts)
                )
            )
        wall = time.perf_counter() - t0
        devnet_cpu = sum(psutil.Process(proc.pid).cpu_times()[:2]) - devnet_cpu0
        bench_cpu = time.process_time() - bench_cpu0
        for task in tracker.tasks:
            task.cancel()
        for c in clients:
            await c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ms = 1000.0
    return {
        "mode": mode,
        "parties": parties,
        "announcements": len(lat_all),
        "wall_s": round(wall, 2),
        "tx_per_s": round(len(lat_all) / wall, 1),
        "all_p50_ms": round(_pct(lat_all, 0.5) * ms, 2),
        "all_p99_ms": round(_pct(lat_all, 0.99) * ms, 2),
        "all_mean_ms": round(statistics.fmean(lat_all) * ms, 2),
        "all_max_ms": round(max(lat_all) * ms, 2),
        "own_p50_ms": round(_pct(lat_own, 0.5) * ms, 2),
        "own_p99_ms": round(_pct(lat_own, 0.99) * ms, 2),
        "devnet_cpu_ms_per_tx": round(devnet_cpu / len(lat_all) * ms, 2),
        "clients_cpu_ms_per_tx": round(bench_cpu / len(lat_all) * ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--announcements", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", choices=["rounds", "closed"], default=["rounds", "closed"])
    args = parser.parse_args()
    rows = [asyncio.run(run(n, args.announcements, mode)) for mode in args.modes for n in args.parties]
    result = {
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "python": platform.python_version()},
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    cols = ["mode", "parties", "announcements", "tx_per_s", "all_p50_ms", "all_p99_ms", "all_mean_ms",
            "own_p50_ms", "own_p99_ms", "devnet_cpu_ms_per_tx", "clients_cpu_ms_per_tx"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
