"""A real Storj network on loopback: storj.io/storj's testplanet, with Debian's PostgreSQL.

``LocalStorj.start(workdir, projects=N)`` starts a throw-away PostgreSQL (initdb + postgres on
a free port, as an unprivileged user when run as root: PostgreSQL refuses root) and the
testplanet binary that ``make storj`` builds (tests/storj/): one satellite and five storage
nodes in one Go process, erasure code 1/2/3/4. Every project has its own user and API key; its
serialized access grant is what a party's storage Secret holds (``credentials(i)``).
``hydrafed simulate --store storj``, the storage benchmarks and the tests use it; ``stop()``
closes the network's stdin (it shuts down cleanly) and stops PostgreSQL.

Grants are secrets: the binary writes them to a 0600 file that is read and deleted at once,
and nothing here logs or prints them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hydrafed import errors
from hydrafed.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PLANET_ENV = "HYDRAFED_STORJ_PLANET"
ROOT_ENV = "HYDRAFED_STORJ_ROOT"
BUILD_HINT = (
    "run `make storj` (builds storj.io/storj's testplanet from the Go module proxy into "
    "~/.cache/hydrafed/storj; needs Go >= 1.26 and gcc), or point HYDRAFED_STORJ_PLANET at the binary"
)
PG_HINT = "install Debian's PostgreSQL: apt-get install postgresql"


def find_planet() -> Path:
    """The testplanet binary: $HYDRAFED_STORJ_PLANET, else tests/storj/bin/planet (``make storj``)."""
    configured = os.environ.get(PLANET_ENV)
    path = Path(configured) if configured else REPO_ROOT / "tests" / "storj" / "bin" / "planet"
    if not path.is_file() or not os.access(path, os.X_OK):
        where = f"{PLANET_ENV}={configured}" if configured else str(path)
        raise errors.ConfigError(f"the local Storj network binary is missing ({where}): {BUILD_HINT}")
    return path


def storj_root(planet: Path) -> str:
    """storj.io/storj's module directory (mail templates): $HYDRAFED_STORJ_ROOT, else make storj's note."""
    configured = os.environ.get(ROOT_ENV)
    if configured:
        return configured
    note = planet.parent / "storj-root"
    try:
        return note.read_text().strip()
    except OSError:
        raise errors.ConfigError(
            f"{note} is missing (it names storj.io/storj's module directory): {BUILD_HINT}, or set {ROOT_ENV}"
        ) from None


def postgres_bindir() -> Path:
    """Directory of Debian's PostgreSQL server binaries (the newest installed major version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not found:
        on_path = shutil.which("postgres")
        if on_path is None:
            raise errors.ConfigError(f"PostgreSQL's `postgres` and `initdb` are missing: {PG_HINT}")
        return Path(on_path).parent
    return found[-1].parent


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class Postgres:
    """A PostgreSQL server of its own: trust auth on 127.0.0.1 only, fsync off (test data)."""

    port: int
    datadir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    owns_datadir_parent: bool

    @property
    def url(self) -> str:
        """Connection URL for the superuser ``postgres``."""
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    @classmethod
    def start(cls, workdir: Path, *, timeout: float = 60.0) -> Postgres:
        """initdb in a fresh directory, then run ``postgres`` on a free loopback port."""
        bindir = postgres_bindir()
        user = _unprivileged_user()
        if user is None:
            parent, owned = workdir, False
        else:
            # The postgres user must reach its data directory; pytest's and simulate's work
            # dirs are private to root, so the data lives in a directory of its own.
            parent, owned = Path(tempfile.mkdtemp(prefix="hydrafed-pg-")), True
            os.chown(parent, user.pw_uid, user.pw_gid)
        datadir = parent / "pgdata"
        log_path = workdir / "postgres.log"
        run_as: dict[str, Any] = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid}
        try:
            with log_path.open("wb") as log:
                initdb = subprocess.run(
                    [
                        str(bindir / "initdb"),
                        "-D",
                        str(datadir),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=parent,
                    timeout=120,
                    check=False,
                    **run_as,
                )
            if initdb.returncode != 0:
                raise errors.UnavailableError(f"initdb failed:\n{_tail(log_path)}")
            port = free_port()
            log = log_path.open("ab")
            process = subprocess.Popen(
                [
                    "/bin/sh",
                    "-c",
                    _PG_GUARD,
                    "pg-guard",
                    str(bindir / "postgres"),
                    "-D",
                    str(datadir),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(datadir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
                cwd=parent,
                start_new_session=True,
                **run_as,
            )
            log.close()
        except BaseException:
            if owned:
                shutil.rmtree(parent, ignore_errors=True)
            raise
        server = cls(port, datadir, process, log_path, owned)
        try:
            server._wait_ready(bindir, timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, bindir: Path, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise errors.UnavailableError(f"postgres exited during startup:\n{_tail(self.log_path)}")
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                check=False,
                timeout=10,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise errors.UnavailableError(f"postgres did not accept connections within {timeout}s")

    def stop(self) -> None:
        """Close the guard's stdin (a fast shutdown), kill the group if it lingers; remove the data."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.owns_datadir_parent:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)
        else:
            shutil.rmtree(self.datadir, ignore_errors=True)


_PG_GUARD = (
    'exec 3<&0; bin="$1"; shift; "$bin" "$@" </dev/null & pid=$!; '
    '(cat <&3 >/dev/null; kill -INT "$pid" 2>/dev/null) & wait "$pid"'
)
"""PostgreSQL does not notice its parent dying. This shell runs it and, once the other end of
its stdin closes (``stop()``, or the test process killed outright), asks it for a fast shutdown
(SIGINT); the shell exits when postgres does, so a failed start is still seen at once."""


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL when we are root (it refuses root): ``postgres``, else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise errors.ConfigError("running as root, and neither user `postgres` nor `nobody` exists: " + PG_HINT)


def _stop_process(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class StorjProject:
    """One project on the satellite: a user's API key and full-access grant (secrets)."""

    name: str
    id: str
    api_key: str = field(repr=False)
    access: str = field(repr=False)


@dataclass
class LocalStorj:
    """A running testplanet: the satellite's address, the projects, and the processes."""

    satellite_addr: str
    satellite_url: str
    node_count: int
    rs: tuple[int, int, int, int]
    projects: list[StorjProject] = field(repr=False)
    process: subprocess.Popen[bytes]
    postgres: Postgres
    log_path: Path
    _stdin: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, workdir: Path, *, projects: int = 4, nodes: int = 5, timeout: float = 180.0) -> LocalStorj:
        """PostgreSQL, then the network; returns when the satellite accepts requests."""
        if projects < 1:
            raise errors.ConfigError("LocalStorj.start: projects must be at least 1")
        planet = find_planet()
        root = storj_root(planet)
        workdir.mkdir(parents=True, exist_ok=True)
        postgres = Postgres.start(workdir)
        try:
            return cls._start_planet(planet, root, workdir, postgres, projects, nodes, timeout)
        except BaseException:
            postgres.stop()
            raise

    @classmethod
    def _start_planet(
        cls,
        planet: Path,
        root: str,
        workdir: Path,
        postgres: Postgres,
        projects: int,
        nodes: int,
        timeout: float,
    ) -> LocalStorj:
        tmp = workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        info_path = workdir / "planet.json"
        info_path.unlink(missing_ok=True)
        env = {
            # a GOMEMLIMIT meant for the parties' libuplink would starve the satellite and nodes
            **{k: v for k, v in os.environ.items() if k != "GOMEMLIMIT"},
            "STORJ_TEST_POSTGRES": postgres.url,
            "STORJ_TEST_COCKROACH": "omit",
            "STORJ_TEST_SPANNER": "omit",
            "STORJ_TEST_LOG_LEVEL": os.environ.get("STORJ_TEST_LOG_LEVEL", "warn"),
            "HYDRAFED_PLANET_INFO": str(info_path),
            "HYDRAFED_PLANET_PROJECTS": str(projects),
            "HYDRAFED_PLANET_NODES": str(nodes),
            ROOT_ENV: root,
            "TMPDIR": str(tmp),  # testplanet's identities, node storage and databases
        }
        log_path = workdir / "planet.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(planet), "-test.run=^TestPlanet$", "-test.v", "-test.count=1", "-test.timeout=0"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not info_path.exists():
            if process.poll() is not None:
                raise errors.UnavailableError(
                    f"the local Storj network exited during startup (log {log_path}):\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                _stop_process(process, signal.SIGTERM, 20)
                raise errors.UnavailableError(
                    f"the local Storj network was not up within {timeout}s "
                    f"(log {log_path}):\n{_tail(log_path)}"
                )
            time.sleep(0.1)
        info = json.loads(info_path.read_text())
        info_path.unlink()  # it holds every project's grant
        return cls(
            satellite_addr=info["satellite_addr"],
            satellite_url=info["satellite_url"],
            node_count=int(info["node_count"]),
            rs=tuple(info["rs"]),
            projects=[StorjProject(p["name"], p["id"], p["api_key"], p["access"]) for p in info["projects"]],
            process=process,
            postgres=postgres,
            log_path=log_path,
            _stdin=process.stdin,
        )

    def credentials(self, index: int) -> dict[str, str]:
        """The storage Secret of project ``index``: its serialized full-access grant."""
        return {"access": self.projects[index].access}

    def stop(self) -> None:
        """Close stdin (the network shuts down), SIGTERM/SIGKILL if it lingers; stop PostgreSQL."""
        try:
            if self._stdin is not None:
                with contextlib.suppress(OSError):
                    self._stdin.close()
                self._stdin = None
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _stop_process(self.process, signal.SIGTERM, 20)
        finally:
            self.postgres.stop()
