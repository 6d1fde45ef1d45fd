"""The storj backend against a real local Storj network (satellite + storage nodes, testplanet).

What the contract suite cannot show: the **satellite** enforces a shared grant's caveats (the
raw libuplink project below has no client-side read-only flag), expired and revoked grants are
refused by it, bad grants fail with errors that name the field and never echo the grant, a
corrupt object is rejected, and a 256 MiB object streams both ways in bounded memory.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from hydrafed import errors
from hydrafed.spec import StorageBackend, StorageSpec
from hydrafed.storage import open_shared, open_store, uplink
from hydrafed.storage.base import sha256_file
from hydrafed.storage.storj import StorjStore, open_storj_store
from hydrafed.storage.storjnet import LocalStorj, Postgres
from tests.conftest import REPO_ROOT
from tests.unit.storage.storj_grants import make_grant

pytestmark = pytest.mark.integration

BUCKET = "party-a"
BIG_BYTES = 256 << 20
RSS_LIMIT_BYTES = 200 << 20
GO_MEMORY_LIMIT = "96MiB"
"""libuplink's Go heap, soft-limited as docs/storage.md tells deployments to: without a limit
Go's collector lets the heap reach twice the live set (256 MiB put+get: 198-247 MiB RSS, 512 MiB:
272 MiB); with it the peak stays near 145 MiB whatever the size (measured 256 and 512 MiB)."""


@pytest.fixture
def owner(storj_network: LocalStorj) -> Iterator[StorjStore]:
    """Party A's store: project 0's full grant, bucket party-a."""
    store = open_storj_store(storj_network.credentials(0))
    store.ensure_bucket(BUCKET)
    yield store
    store.close()


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix: the tests share the session's network and bucket."""
    return f"t-{uuid.uuid4().hex[:8]}/"


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _raw_project(credential: str) -> uplink.Project:
    """The shared grant opened directly: nothing client-side stops a write, the satellite must."""
    return uplink.parse_access(json.loads(credential)["access"]).open_project()


def _download(project: uplink.Project, bucket: str, key: str) -> bytes:
    sink = io.BytesIO()
    project.download_file(bucket, key, sink)
    return sink.getvalue()


def test_put_records_the_sha256_and_get_verifies_it(owner: StorjStore, prefix: str, tmp_path: Path) -> None:
    data = os.urandom(5 << 20)
    key = prefix + "rounds/1/a.safetensors"

    put = owner.put(BUCKET, key, _file(tmp_path, "up", data))
    got = owner.get(BUCKET, key, tmp_path / "down")

    assert put.sha256 == got.sha256 == sha256_file(tmp_path / "up")
    assert owner.stat(BUCKET, key).sha256 == put.sha256  # stored as custom metadata
    assert (tmp_path / "down").read_bytes() == data
    # An object whose bytes differ from its recorded hash (written around hydrafed) is refused.
    forged = prefix + "rounds/1/forged"
    with (tmp_path / "up").open("rb") as source:
        owner.project.upload_file(BUCKET, forged, source, metadata={"sha256": "ab" * 32})
    with pytest.raises(errors.IntegrityError, match="corrupt"):
        owner.get(BUCKET, forged, tmp_path / "bad")
    with pytest.raises(errors.IntegrityError):
        owner.get_bytes(BUCKET, forged, max_bytes=len(data))
    assert not (tmp_path / "bad").exists()


def test_shared_grant_reads_one_prefix_and_the_satellite_refuses_the_rest(
    storj_network: LocalStorj, owner: StorjStore, prefix: str, tmp_path: Path
) -> None:
    owner.put(BUCKET, prefix + "rounds/1/a", _file(tmp_path, "a", b"update"))
    owner.put(BUCKET, prefix + "private/key", _file(tmp_path, "p", b"secret"))
    owner.ensure_bucket("party-a-other")
    owner.put("party-a-other", prefix + "rounds/1/a", _file(tmp_path, "o", b"other"))
    credential = owner.share(BUCKET, prefix + "rounds/", timedelta(hours=1))

    # Reads outside the prefix fail twice over: the grant carries no key for those paths, and
    # the satellite's caveat would refuse them anyway.
    with _raw_project(credential) as peer:
        assert _download(peer, BUCKET, prefix + "rounds/1/a") == b"update"
        assert [m.key for m in peer.list_objects(BUCKET, prefix + "rounds/")] == [prefix + "rounds/1/a"]
        with pytest.raises(uplink.PermissionDeniedError):
            _download(peer, BUCKET, prefix + "private/key")
        with pytest.raises(uplink.PermissionDeniedError):
            _download(peer, "party-a-other", prefix + "rounds/1/a")
        with pytest.raises(uplink.PermissionDeniedError):
            list(peer.list_objects(BUCKET, prefix + "private/"))
        # Writes are the satellite's to refuse (the macaroon's caveats), not libuplink's:
        with pytest.raises(uplink.PermissionDeniedError, match="Unauthorized API credentials"):
            peer.upload_file(BUCKET, prefix + "rounds/1/b", io.BytesIO(b"forged"))
        with pytest.raises(uplink.PermissionDeniedError, match="Unauthorized API credentials"):
            peer.delete_object(BUCKET, prefix + "rounds/1/a")
        with pytest.raises(uplink.PermissionDeniedError, match="Unauthorized API credentials"):
            peer.ensure_bucket("party-a-new")
    # Through hydrafed, as a peer uses it:
    shared = open_shared(credential)
    assert shared.get_bytes(BUCKET, prefix + "rounds/1/a", max_bytes=100)[0] == b"update"
    assert owner.stat(BUCKET, prefix + "rounds/1/a").size == 6  # the delete did not happen
    assert [o.key for o in owner.list(BUCKET, prefix + "rounds/")] == [prefix + "rounds/1/a"]


def test_expired_grant_is_refused_by_the_satellite(owner: StorjStore, prefix: str, tmp_path: Path) -> None:
    owner.put(BUCKET, prefix + "rounds/1/a", _file(tmp_path, "a", b"update"))
    permission = uplink.Permission(allow_download=True, allow_list=True, not_after=int(time.time()) - 60)

    with (
        owner._access.share(permission, [uplink.SharePrefix(BUCKET, prefix)]) as expired,
        expired.open_project() as peer,
        pytest.raises(uplink.PermissionDeniedError),
    ):
        _download(peer, BUCKET, prefix + "rounds/1/a")
    # hydrafed's own share refuses it before asking the satellite, with the reason
    late = open_shared(owner.share(BUCKET, prefix, timedelta(seconds=-1)))
    with pytest.raises(errors.AccessDeniedError, match="expired"):
        late.get(BUCKET, prefix + "rounds/1/a", tmp_path / "late")


def test_revoked_grant_is_refused_and_the_error_does_not_echo_it(
    owner: StorjStore, prefix: str, tmp_path: Path
) -> None:
    owner.put(BUCKET, prefix + "rounds/1/a", _file(tmp_path, "a", b"update"))
    credential = owner.share(BUCKET, prefix + "rounds/", timedelta(hours=1))
    peer = open_shared(credential)
    assert peer.get_bytes(BUCKET, prefix + "rounds/1/a", max_bytes=100)[0] == b"update"

    owner.revoke(credential)

    # The satellite caches "not revoked" answers briefly (a second on this network): poll.
    refused: errors.AccessDeniedError | None = None
    deadline = time.monotonic() + 15
    while refused is None and time.monotonic() < deadline:
        try:
            peer.get_bytes(BUCKET, prefix + "rounds/1/a", max_bytes=100)
        except errors.AccessDeniedError as exc:
            refused = exc
        else:
            time.sleep(0.25)
    assert refused is not None, "the satellite still serves a revoked grant after 15 s"
    assert json.loads(credential)["access"] not in str(refused)
    with pytest.raises(errors.AccessDeniedError):  # a fresh connection too
        open_shared(credential).get_bytes(BUCKET, prefix + "rounds/1/a", max_bytes=100)
    assert owner.stat(BUCKET, prefix + "rounds/1/a").size == 6  # the owner's own grant still works


def test_bad_grants_fail_with_an_error_naming_the_field(storj_network: LocalStorj, tmp_path: Path) -> None:
    spec = StorageSpec(backend=StorageBackend.STORJ)
    with pytest.raises(errors.ConfigError, match="`access` is not a serialized access grant") as malformed:
        open_store(spec, {"access": "1nvalid-grant-text"})
    assert "1nvalid-grant-text" not in str(malformed.value)
    shared = json.dumps({"kind": "storj", "access": "garbage", "bucket": BUCKET, "prefix": "r/"})
    with pytest.raises(errors.ConfigError, match="ask the owner to share again"):
        open_shared(shared)
    # Well-formed, for this satellite, but with an API key the satellite never issued.
    unknown = make_grant(satellite=storj_network.satellite_url)
    store = open_store(spec, {"access": unknown})
    with pytest.raises(errors.AccessDeniedError) as denied:
        store.ensure_bucket(BUCKET)
    assert unknown not in str(denied.value)


def test_projects_are_separate(
    storj_network: LocalStorj, owner: StorjStore, prefix: str, tmp_path: Path
) -> None:
    owner.put(BUCKET, prefix + "x", _file(tmp_path, "x", b"a's"))
    other = open_storj_store(storj_network.credentials(1))
    other.ensure_bucket(BUCKET)  # the same name in another project is another bucket

    assert other.list(BUCKET, prefix) == []
    with pytest.raises(errors.ObjectNotFoundError):
        other.stat(BUCKET, prefix + "x")
    other.close()


# VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would include the forked test session
_STREAM_SCRIPT = """
import json, sys
from pathlib import Path
from hydrafed.storage.storj import open_storj_store
creds, src, dest = json.loads(sys.stdin.read()), Path(sys.argv[1]), Path(sys.argv[2])
store = open_storj_store(creds)
store.ensure_bucket("party-a")
put = store.put("party-a", "big/update.bin", src)
got = store.get("party-a", "big/update.bin", dest)
store.delete("party-a", "big/update.bin")
print(json.dumps({"put": put.size, "got": got.size, "sha": got.sha256,
                  "peak_rss": int(next(line.split()[1] for line in open("/proc/self/status")
                                       if line.startswith("VmHWM:"))) * 1024}))
"""


@pytest.mark.timeout(600)
def test_256mib_object_streams_both_ways_in_bounded_memory(storj_network: LocalStorj, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as out:
        for _ in range(BIG_BYTES >> 20):
            out.write(os.urandom(1 << 20))
    dest = tmp_path / "down.bin"

    done = subprocess.run(
        [sys.executable, "-c", _STREAM_SCRIPT, str(src), str(dest)],
        input=json.dumps(storj_network.credentials(2)),  # the grant goes by stdin, not argv
        env={**os.environ, "GOMEMLIMIT": GO_MEMORY_LIMIT},
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["put"] == result["got"] == BIG_BYTES
    assert result["sha"] == sha256_file(src) == sha256_file(dest)
    assert result["peak_rss"] < RSS_LIMIT_BYTES, f"peak RSS {result['peak_rss'] >> 20} MiB"


def test_postgres_runs_unprivileged_and_leaves_nothing(tmp_path: Path) -> None:
    server = Postgres.start(tmp_path)
    try:
        owner = psutil.Process(server.process.pid).uids().real
        datadir = server.datadir
        assert datadir.is_dir()
        if os.geteuid() == 0:  # PostgreSQL refuses root: the launcher picks postgres or nobody
            assert owner != 0 and datadir.stat().st_uid == owner
    finally:
        server.stop()

    assert server.process.poll() is not None
    assert not datadir.exists()
    if server.owns_datadir_parent:
        assert not datadir.parent.exists()


_ORPHAN_SCRIPT = """
import json, sys, time
from pathlib import Path
import psutil
from hydrafed.storage.storjnet import Postgres
server = Postgres.start(Path(sys.argv[1]))
postgres = [p.pid for p in psutil.Process(server.process.pid).children() if p.name() == "postgres"]
print(json.dumps({"postgres": postgres, "datadir": str(server.datadir)}), flush=True)
time.sleep(600)
"""


def test_postgres_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    # Prepare: a process that starts PostgreSQL and then dies without a chance to stop it.
    owner = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert owner.stdout is not None
    started = json.loads(owner.stdout.readline())
    [pid] = started["postgres"]
    postmaster = psutil.Process(pid)

    # Execute
    owner.kill()
    owner.wait(timeout=10)

    # Assert: the guard shell saw its stdin close and shut postgres down.
    try:
        postmaster.wait(timeout=20)
    finally:
        shutil.rmtree(Path(started["datadir"]).parent, ignore_errors=True)
    assert not psutil.pid_exists(pid) or postmaster.status() == psutil.STATUS_ZOMBIE
