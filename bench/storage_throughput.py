"""Put/get throughput of hydrafed's s3 store against raw boto3, and peak RSS of a large transfer.

Usage: python -m bench.storage_throughput [--mb 256] [--rss-mb 1024] [--repeat 2] [--storj]
       python -m bench.storage_throughput --get-cpu [--update-kb 797] [--gets 300] [--parties 29]

``--storj`` measures the storj store instead, on a local Storj network (``make storj``): hydrafed
against raw libuplink (the same binding's upload/download without the sha256 metadata and
verification), and peak RSS with and without ``GOMEMLIMIT`` (libuplink's Go heap).

Both sides talk to the same SeaweedFS (``weed mini`` on loopback) in one run, so the ratio
hydrafed/boto3 isolates what hydrafed adds (sha256 metadata, verification, temp-file renames).
A second baseline, boto3 download plus a sha256 pass over the file, is what a caller of raw boto3
must do to get the same guarantee hydrafed's get gives (peers' files are untrusted).
``--get-cpu`` measures what one round's downloads cost at scale: the CPU seconds of the reader
(this process) and of SeaweedFS per GET of an update-sized object through a peer's read-only
grant (``read_verified``), with the S3 gateway's chunk cache on and off, on a server holding the
identities of ``--parties`` parties. N parties make N(N-1) such GETs a round.

Peak RSS is measured in a fresh child process (VmHWM), so it is the child's whole footprint:
interpreter, boto3 and the transfer buffers. Targets: ratio >= 0.9, peak RSS < 200 MB for 1 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from hydrafed.spec import StorageSpec
from hydrafed.storage import open_shared, open_store, read_verified
from hydrafed.storage.seaweedfs import S3_CACHE_MB, SeaweedS3

BUCKET = "party-a"


def _write_random(path: Path, mb: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for _ in range(mb):
            out.write(block)


def _rate(mb: int, seconds: float) -> float:
    return mb / seconds


def _throughput(server: SeaweedS3, work: Path, mb: int, repeat: int) -> dict[str, float]:
    src = work / "src.bin"
    _write_random(src, mb)
    creds = server.credentials(BUCKET)
    spec = StorageSpec.model_validate({"backend": "s3", "endpoint": server.endpoint})
    store = open_store(spec, creds)
    store.ensure_bucket(BUCKET)
    raw = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    best: dict[str, float] = {}

    def timed(name: str, fn: object) -> None:
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best[name] = max(best.get(name, 0.0), _rate(mb, time.perf_counter() - start))

    for i in range(repeat):
        timed("boto3_put", lambda i=i: raw.upload_file(str(src), BUCKET, f"raw/{i}"))
        timed("hydrafed_put", lambda i=i: store.put(BUCKET, f"hf/{i}", src))
        timed("boto3_get", lambda i=i: raw.download_file(BUCKET, f"raw/{i}", str(work / "raw.out")))
        timed("hydrafed_get", lambda i=i: store.get(BUCKET, f"hf/{i}", work / "hf.out"))
        timed("boto3_get_sha256", lambda i=i: _download_and_hash(raw, f"raw/{i}", work / "raw.out"))
        (work / "raw.out").unlink()
        (work / "hf.out").unlink()
    src.unlink()
    return best


def _download_and_hash(raw: Any, key: str, dest: Path) -> str:
    raw.download_file(BUCKET, key, str(dest))
    with dest.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _child(endpoint: str, key_id: str, secret: str, path: str) -> None:
    """Runs in a fresh process: put then get one file through hydrafed, print peak RSS in MB."""
    spec = StorageSpec.model_validate({"backend": "s3", "endpoint": endpoint})
    store = open_store(spec, {"accessKeyId": key_id, "secretAccessKey": secret})
    store.ensure_bucket(BUCKET)
    store.put(BUCKET, "rss/big", Path(path))
    store.get(BUCKET, "rss/big", Path(path + ".out"))
    Path(path + ".out").unlink()
    # VmHWM is this process's own peak; ru_maxrss would survive exec and count the forked parent
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    print(json.dumps({"peak_rss_mb": hwm_kib / 1024}))


def _peak_rss(server: SeaweedS3, work: Path, mb: int) -> float:
    src = work / "big.bin"
    _write_random(src, mb)
    keys = server.owners[BUCKET]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.storage_throughput",
            "--child",
            server.endpoint,
            keys.access_key_id,
            keys.secret_access_key,
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    src.unlink()
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _storj_throughput(project: Any, access: str, work: Path, mb: int, repeat: int) -> dict[str, float]:
    from hydrafed.storage.storj import open_storj_store

    src = work / "src.bin"
    _write_random(src, mb)
    store = open_storj_store({"access": access})
    store.ensure_bucket(BUCKET)
    best: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        start = time.perf_counter()
        fn()
        best[name] = max(best.get(name, 0.0), _rate(mb, time.perf_counter() - start))

    def raw_put(key: str) -> None:
        with src.open("rb") as source:
            project.upload_file(BUCKET, key, source)

    def raw_get(key: str) -> None:
        with (work / "raw.out").open("wb") as out:
            project.download_file(BUCKET, key, out)

    for i in range(repeat):
        timed("uplink_put", lambda i=i: raw_put(f"raw/{i}"))
        timed("hydrafed_put", lambda i=i: store.put(BUCKET, f"hf/{i}", src))
        timed("uplink_get", lambda i=i: raw_get(f"raw/{i}"))
        timed("hydrafed_get", lambda i=i: store.get(BUCKET, f"hf/{i}", work / "hf.out"))
        for key in (f"raw/{i}", f"hf/{i}"):
            store.delete(BUCKET, key)
    store.close()
    src.unlink()
    return best


def _storj_child(path: str) -> None:
    """Fresh process: put then get one file through the storj store (grant on stdin), peak RSS."""
    from hydrafed.storage.storj import open_storj_store

    store = open_storj_store({"access": sys.stdin.read().strip()})
    store.ensure_bucket(BUCKET)
    store.put(BUCKET, "rss/big", Path(path))
    store.get(BUCKET, "rss/big", Path(path + ".out"))
    store.delete(BUCKET, "rss/big")
    Path(path + ".out").unlink()
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kib = int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
    print(json.dumps({"peak_rss_mb": hwm_kib / 1024}))


def _storj_peak_rss(access: str, work: Path, mb: int, go_memory_limit: str | None) -> float:
    src = work / "big.bin"
    _write_random(src, mb)
    env = {k: v for k, v in os.environ.items() if k != "GOMEMLIMIT"}
    if go_memory_limit:
        env["GOMEMLIMIT"] = go_memory_limit
    out = subprocess.run(
        [sys.executable, "-m", "bench.storage_throughput", "--storj-child", str(src)],
        input=access,  # the grant goes by stdin, never argv
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    src.unlink()
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def main_storj(mb: int, rss_mb: int, repeat: int) -> None:
    """Start a local Storj network, measure, write bench/results/storage_throughput_storj.json."""
    from hydrafed.storage import uplink
    from hydrafed.storage.storjnet import LocalStorj

    with tempfile.TemporaryDirectory(prefix="hf-bench-storj-") as tmp:
        work = Path(tmp)
        network = LocalStorj.start(work / "storj", projects=1)
        try:
            access = network.credentials(0)["access"]
            with uplink.parse_access(access) as parsed, parsed.open_project() as project:
                project.ensure_bucket(BUCKET)
                rates = _storj_throughput(project, access, work, mb, repeat)
            rss = {
                limit or "unset": _storj_peak_rss(access, work, rss_mb, limit) for limit in (None, "96MiB")
            }
        finally:
            network.stop()
    result = {
        "object_mb": mb,
        "rates_mb_s": rates,
        "put_ratio": rates["hydrafed_put"] / rates["uplink_put"],
        "get_ratio": rates["hydrafed_get"] / rates["uplink_get"],
        "rss_object_mb": rss_mb,
        "peak_rss_mb_by_gomemlimit": rss,
        "network": {"storage_nodes": network.node_count, "rs": list(network.rs)},
    }
    print(json.dumps(result, indent=2))
    results = Path(__file__).parent / "results" / "storage_throughput_storj.json"
    results.write_text(json.dumps(result, indent=2) + "\n")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get_cpu_once(work: Path, parties: int, update_kb: int, gets: int, cache_mb: int) -> dict[str, float]:
    names = [f"party-{i:02d}" for i in range(parties)]
    server = SeaweedS3.start(work / f"weed-{cache_mb}", names, cache_mb=cache_mb)
    try:
        spec = StorageSpec.model_validate({"backend": "s3", "endpoint": server.endpoint})
        owner = open_store(spec, server.credentials(names[0], reader_for=names[1]))
        owner.ensure_bucket(names[0])
        src = work / "update.safetensors"
        src.write_bytes(os.urandom(update_kb * 1000))
        info = owner.put(names[0], "fed/rounds/1/party-00.safetensors", src)
        peer = open_shared(owner.share(names[0], "fed/rounds/"))
        assert info.sha256 is not None

        def get() -> None:
            read_verified(peer, names[0], info.key, info.sha256 or "", max_bytes=(update_kb + 64) * 1000)

        for _ in range(10):  # warm: connection, cache
            get()
        client0, server0, wall0 = time.process_time(), _cpu_seconds(server.process.pid), time.perf_counter()
        for _ in range(gets):
            get()
        client1, server1, wall1 = time.process_time(), _cpu_seconds(server.process.pid), time.perf_counter()
    finally:
        server.stop()
    return {
        "client_ms": 1000 * (client1 - client0) / gets,
        "server_ms": 1000 * (server1 - server0) / gets,
        "wall_ms": 1000 * (wall1 - wall0) / gets,
    }


def main_get_cpu(parties: int, update_kb: int, gets: int) -> None:
    """Per-GET CPU of reader and server, cache off and on; writes storage_get_cpu.json, prints the table."""
    with tempfile.TemporaryDirectory(prefix="hf-bench-getcpu-") as tmp:
        work = Path(tmp)
        rows = {
            f"cache {mb} MB" if mb else "no cache": _get_cpu_once(work, parties, update_kb, gets, mb)
            for mb in (0, S3_CACHE_MB)
        }
    load = os.getloadavg()[0]
    result = {"parties": parties, "update_kb": update_kb, "gets": gets, "load_1min": load, "rows": rows}
    results = Path(__file__).parent / "results" / "storage_get_cpu.json"
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"| SeaweedFS S3 ({update_kb} KB GET, {parties} parties' identities) | reader CPU (ms) | "
        "server CPU (ms) | wall (ms) |"
    )
    print("| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['client_ms']:.2f} | {row['server_ms']:.2f} | {row['wall_ms']:.2f} |")
    print(f"\n{gets} GETs each; 1-minute load average {load:.1f} (`uptime`).")


def main() -> None:
    """Start SeaweedFS, measure, print JSON and write bench/results/storage_throughput.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rss-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--storj", action="store_true", help="the storj store on a local Storj network")
    parser.add_argument("--storj-child")
    parser.add_argument("--get-cpu", action="store_true", help="per-GET CPU of an update, cache off/on")
    parser.add_argument("--update-kb", type=int, default=797, help="--get-cpu: object size (the MNIST MLP's)")
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--parties", type=int, default=29)
    args = parser.parse_args()
    if args.get_cpu:
        main_get_cpu(args.parties, args.update_kb, args.gets)
        return
    if args.child:
        _child(*args.child)
        return
    if args.storj_child:
        _storj_child(args.storj_child)
        return
    if args.storj:
        main_storj(args.mb, args.rss_mb, args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="hf-bench-storage-") as tmp:
        work = Path(tmp)
        server = SeaweedS3.start(work / "weed", [BUCKET, "party-b"])
        try:
            rates = _throughput(server, work, args.mb, args.repeat)
            rss = _peak_rss(server, work, args.rss_mb) if args.rss_mb else None
        finally:
            server.stop()
    result = {
        "object_mb": args.mb,
        "rates_mb_s": rates,
        "put_ratio": rates["hydrafed_put"] / rates["boto3_put"],
        "get_ratio": rates["hydrafed_get"] / rates["boto3_get"],
        "get_ratio_vs_boto3_sha256": rates["hydrafed_get"] / rates["boto3_get_sha256"],
        "rss_object_mb": args.rss_mb,
        "peak_rss_mb": rss,
    }
    print(json.dumps(result, indent=2))
    results = Path(__file__).parent / "results" / "storage_throughput.json"
    results.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
