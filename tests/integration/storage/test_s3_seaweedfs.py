"""s3 backend behaviours that need a real S3 server: per-party buckets, server-enforced
read-only keys, corruption detection, typed errors, retries and bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError

from hydrafed import errors, pages
from hydrafed.storage.base import sha256_file
from hydrafed.storage.s3 import S3Store, open_s3_store
from tests.conftest import REPO_ROOT
from tests.fixtures.seaweedfs import SeaweedS3

pytestmark = pytest.mark.integration

BIG_BYTES = 200 << 20
RSS_LIMIT_BYTES = 200 << 20


def _owner(server: SeaweedS3, party: str) -> S3Store:
    store = open_s3_store(server.endpoint, "us-east-1", True, server.credentials(party))
    store.ensure_bucket(party)
    return store


def _reader(server: SeaweedS3, owner: str, peer: str) -> S3Store:
    keys = server.readers[(owner, peer)]
    # no client-side read-only flag: what is refused here is refused by the server
    return S3Store(
        endpoint=server.endpoint, access_key_id=keys.access_key_id, secret_access_key=keys.secret_access_key
    )


def test_each_party_writes_only_its_own_bucket(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    alice, bob = _owner(seaweedfs, "party-a"), _owner(seaweedfs, "party-b")
    update = tmp_path / "u"
    update.write_bytes(b"weights")

    alice.put("party-a", "own/u", update)

    with pytest.raises(errors.AccessDeniedError, match="party-b/own/u"):
        alice.put("party-b", "own/u", update)
    with pytest.raises(errors.AccessDeniedError):
        bob.delete("party-a", "own/u")
    assert alice.stat("party-a", "own/u").size == 7


def test_peer_read_key_reads_but_the_server_refuses_writes_and_deletes(
    seaweedfs: SeaweedS3, tmp_path: Path
) -> None:
    alice = _owner(seaweedfs, "party-a")
    update = tmp_path / "u"
    update.write_bytes(b"round one update")
    alice.put("party-a", "ro/1/a", update)
    bob_reads_alice = _reader(seaweedfs, "party-a", "party-b")

    bob_reads_alice.get("party-a", "ro/1/a", tmp_path / "read")

    assert (tmp_path / "read").read_bytes() == b"round one update"
    assert [o.key for o in bob_reads_alice.list("party-a", "ro/")] == ["ro/1/a"]
    with pytest.raises(errors.AccessDeniedError):
        bob_reads_alice.put("party-a", "ro/1/forged", update)
    with pytest.raises(errors.AccessDeniedError):
        bob_reads_alice.delete("party-a", "ro/1/a")
    with pytest.raises(errors.AccessDeniedError):
        bob_reads_alice.ensure_bucket("party-b")
    with pytest.raises(errors.AccessDeniedError):
        bob_reads_alice.stat("party-c", "anything")  # a read key for party-a only
    assert alice.list("party-a", "ro/1/") == [alice.list("party-a", "ro/1/")[0]]


def test_peers_sharing_one_reader_client_are_each_held_to_their_own_read_keys(
    seaweedfs: SeaweedS3, tmp_path: Path
) -> None:
    update = tmp_path / "u"
    for party in ("party-a", "party-c"):
        update.write_bytes(party.encode())
        _owner(seaweedfs, party).put(party, "rounds/1/u", update)
    keys = {owner: seaweedfs.readers[(owner, "party-b")] for owner in ("party-a", "party-c")}

    def grant(owner: str, bucket: str) -> S3Store:
        return S3Store(
            endpoint=seaweedfs.endpoint,
            access_key_id=keys[owner].access_key_id,
            secret_access_key=keys[owner].secret_access_key,
            read_only=(bucket, "rounds/"),
        )

    reads_a, reads_c = grant("party-a", "party-a"), grant("party-c", "party-c")
    # party-a's read key, with a client-side scope that lets it try party-c's bucket
    a_key_on_c = grant("party-a", "party-c")

    assert reads_a.client is reads_c.client is a_key_on_c.client is _owner(seaweedfs, "party-a").client
    assert reads_a.get_bytes("party-a", "rounds/1/u", max_bytes=64)[0] == b"party-a"
    assert reads_c.get_bytes("party-c", "rounds/1/u", max_bytes=64)[0] == b"party-c"
    with pytest.raises(errors.AccessDeniedError, match="party-c/rounds/1/u"):
        a_key_on_c.get_bytes("party-c", "rounds/1/u", max_bytes=64)  # the server refuses party-a's key
    with pytest.raises(ClientError, match="403"):
        reads_c.client.head_object(
            Bucket="party-c", Key="rounds/1/u"
        )  # outside a store: the shared client's own key


def test_corrupted_object_is_rejected_by_its_recorded_sha256(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    alice = _owner(seaweedfs, "party-a")
    update = tmp_path / "u"
    update.write_bytes(os.urandom(50_000))
    info = alice.put("party-a", "corrupt/u", update)
    assert info.sha256 == sha256_file(update)
    # the bytes change behind hydrafed's back but keep the metadata recorded at upload
    raw = boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweedfs.owners["party-a"].access_key_id,
        aws_secret_access_key=seaweedfs.owners["party-a"].secret_access_key,
    )
    raw.put_object(Bucket="party-a", Key="corrupt/u", Body=b"tampered", Metadata={"sha256": info.sha256})
    dest = tmp_path / "down"

    with pytest.raises(errors.IntegrityError, match="corrupt"):
        alice.get("party-a", "corrupt/u", dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".download-")] == []


def test_missing_bucket_is_not_found(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    admin = S3Store(
        endpoint=seaweedfs.endpoint,
        access_key_id=seaweedfs.admin.access_key_id,
        secret_access_key=seaweedfs.admin.secret_access_key,
    )

    with pytest.raises(errors.ObjectNotFoundError):
        admin.list("no-such-bucket")
    with pytest.raises(errors.ObjectNotFoundError):
        admin.get("no-such-bucket", "k", tmp_path / "k")


def test_wrong_secret_is_access_denied_without_retries(seaweedfs: SeaweedS3) -> None:
    store = S3Store(endpoint=seaweedfs.endpoint, access_key_id="OWNERPARTYA", secret_access_key="wrong")
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["request"].url))

    with pytest.raises(errors.AccessDeniedError):
        store.stat("party-a", "k")
    assert len(sent) == 1


def test_unreachable_endpoint_is_retried_then_unavailable(tmp_path: Path) -> None:
    from hydrafed.ports import free_port

    store = S3Store(
        endpoint=f"http://127.0.0.1:{free_port()}", access_key_id="a", secret_access_key="b", max_attempts=3
    )
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["request"].url))

    with pytest.raises(errors.UnavailableError, match="cannot reach"):
        store.stat("party-a", "k")
    assert len(sent) == 3  # botocore's standard mode: 3 attempts with jittered exponential backoff
    sent.clear()
    with pytest.raises(errors.UnavailableError, match="cannot reach"):
        store.get("party-a", "k", tmp_path / "k")
    assert len(sent) == 3  # a request that never started is not retried a second time on top
    assert not (tmp_path / "k").exists()


def test_credentials_and_share_errors_name_the_fix(seaweedfs: SeaweedS3) -> None:
    with pytest.raises(errors.ConfigError, match="secretAccessKey"):
        open_s3_store(seaweedfs.endpoint, "us-east-1", True, {"accessKeyId": "x"})
    alice = _owner(seaweedfs, "party-a")
    with pytest.raises(errors.ConfigError, match="readAccessKeyId"):
        alice.share("party-a", "rounds/", None)


# VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would include the forked test session
_STREAM_SCRIPT = """
import json, sys
from pathlib import Path
from hydrafed.storage.s3 import open_s3_store
endpoint, creds, src, dest = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
store = open_s3_store(endpoint, "us-east-1", True, creds)
store.ensure_bucket("party-a")
put = store.put("party-a", "big/update.bin", src)
got = store.get("party-a", "big/update.bin", dest)
print(json.dumps({"put": put.size, "got": got.size, "sha": got.sha256,
                  "peak_rss": int(next(line.split()[1] for line in open("/proc/self/status")
                                       if line.startswith("VmHWM:"))) * 1024}))
"""


@pytest.mark.timeout(300)
def test_200mb_object_streams_both_ways_in_bounded_memory(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as out:
        for _ in range(BIG_BYTES >> 20):
            out.write(os.urandom(1 << 20))
    dest = tmp_path / "back.bin"

    # a fresh interpreter, so its peak RSS is the transfer's and not the test session's
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _STREAM_SCRIPT,
            seaweedfs.endpoint,
            json.dumps(seaweedfs.credentials("party-a")),
            str(src),
            str(dest),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=280,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["put"] == result["got"] == BIG_BYTES
    assert result["sha"] == sha256_file(src) == sha256_file(dest)
    assert result["peak_rss"] < RSS_LIMIT_BYTES, f"peak RSS {result['peak_rss'] >> 20} MiB"


def test_multipart_object_round_trips_and_parallel_download_detects_corruption(
    seaweedfs: SeaweedS3, tmp_path: Path
) -> None:
    keys = seaweedfs.owners["party-a"]
    store = S3Store(
        endpoint=seaweedfs.endpoint,
        access_key_id=keys.access_key_id,
        secret_access_key=keys.secret_access_key,
        part_bytes=5 << 20,  # 12 MiB -> 3 parts each way
    )
    store.ensure_bucket("party-a")
    update = tmp_path / "u"
    update.write_bytes(os.urandom(12 << 20))

    info = store.put("party-a", "multi/u", update)
    got = store.get("party-a", "multi/u", tmp_path / "down")

    assert got.size == info.size == 12 << 20
    assert got.sha256 == info.sha256 == sha256_file(tmp_path / "down") == sha256_file(update)
    tampered = tmp_path / "t"
    tampered.write_bytes(os.urandom(12 << 20))
    raw = boto3.client(  # behind hydrafed's back, with the owner's keys (the shared client has none)
        "s3",
        endpoint_url=seaweedfs.endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )
    raw.upload_file(str(tampered), "party-a", "multi/u", ExtraArgs={"Metadata": {"sha256": info.sha256}})
    with pytest.raises(errors.IntegrityError):
        store.get("party-a", "multi/u", tmp_path / "down2")
    assert not (tmp_path / "down2").exists()


def test_small_put_is_one_request_and_weed_runs_with_its_cache_gogc_and_filer_store(
    seaweedfs: SeaweedS3, tmp_path: Path
) -> None:
    # Prepare: an update-sized object, and every request the client sends
    store = _owner(seaweedfs, "party-a")
    src = tmp_path / "update.safetensors"
    src.write_bytes(os.urandom(800_000))
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["request"].method))

    # Execute
    info = store.put("party-a", "rounds/1/small", src)
    environ = Path(f"/proc/{seaweedfs.process.pid}/environ").read_bytes().split(b"\0")
    cmdline = Path(f"/proc/{seaweedfs.process.pid}/cmdline").read_bytes().split(b"\0")

    # Assert: one PUT (no multipart, no transfer manager), the hash recorded; weed's settings
    assert sent == ["PUT"]
    assert store.stat("party-a", "rounds/1/small").sha256 == info.sha256 == sha256_file(src)
    assert f"GOGC={os.environ.get('GOGC', '25')}".encode() in environ
    assert b"-s3.cacheCapacityMB=64" in cmdline
    assert "skipping default store dir" in seaweedfs.log_path.read_text()  # leveldb2's: filer.toml's store
    assert (seaweedfs.log_path.parent / "filer").is_dir()


def test_weed_hands_its_file_pages_back_once_up_and_serves_on(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    store = _owner(seaweedfs, "party-a")
    src = tmp_path / "update.safetensors"
    src.write_bytes(os.urandom(800_000))

    pages.page_out_file_pages(seaweedfs.process.pid)
    store.put("party-a", "rounds/1/paged", src)
    info = store.get("party-a", "rounds/1/paged", tmp_path / "back.safetensors")

    assert seaweedfs.paged_out >= Path(f"/proc/{seaweedfs.process.pid}/exe").stat().st_size // 2
    assert info.sha256 == sha256_file(src) == sha256_file(tmp_path / "back.safetensors")


def test_weed_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """A simulate killed outright never calls stop(): weed must end with it, not serve on."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from hydrafed.storage.seaweedfs import SeaweedS3\n"
        "server = SeaweedS3.start(Path(sys.argv[1]), ['party-a'])\n"
        "print(server.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        weed = psutil.Process(int(parent.stdout.readline()))
        assert weed.is_running()
        parent.kill()
        parent.wait(timeout=10)
        weed.wait(timeout=10)  # psutil.TimeoutExpired if weed serves on
    finally:
        if parent.poll() is None:
            parent.kill()
