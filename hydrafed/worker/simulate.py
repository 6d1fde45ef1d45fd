"""``hydrafed simulate``: a whole federation on one machine, with the production code paths.

The parent process starts the devnet (N emulated hydra-nodes) and one local bucket per party,
opens and funds the head through ``HeadController``, then runs N ``PartyWorker`` processes
(one torch thread each) that train, upload, announce, wait for the confirmed ledger, verify and
aggregate exactly as they would on Kubernetes. The processes are forked from a fork server that
has imported torch and the worker once (``hydrafed.worker.processes``). Afterwards it trains
the baselines (each party alone with the same budget, and all data pooled), closes the head
(Close, contestation, Fanout) and writes the report. Everything is written to a hidden
directory beside ``out`` and renamed into place at the end, so a failed run never leaves a
directory that looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from hydrafed import storage
from hydrafed.head import HeadController
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import settlement
from hydrafed.hydra.devnet import Devnet, DevnetThread
from hydrafed.rounds import spec_hash
from hydrafed.spec import FederationSpec, StorageBackend, StorageSpec
from hydrafed.worker import party_process, simulate_args, tasks
from hydrafed.worker import processes as processes_mod
from hydrafed.worker import report as report_mod
from hydrafed.worker.phases import State
from hydrafed.worker.records import Member, NodeAccess, PartyConfig, PartyResult, RoundReport
from hydrafed.worker.supervisor import Supervisor

PAPER_PRESET = simulate_args.PAPER_PRESET
PARTY_ENTRY = "hydrafed.worker.party_process:run_party"
"""What each party process runs (imported there, so that an import error is reported by name)."""


@dataclass(frozen=True)
class SimulateOptions:
    """How to run the federation (what to train is the FederationSpec)."""

    parties: int
    out: Path
    api_port: int = 28100
    """First devnet port, below Linux's ephemeral range (32768-60999): a client socket lingering in
    TIME_WAIT on a port there would keep a node from listening on it."""
    fed: str = "simulate"
    baselines: bool = True
    contestation_period: float = 1.0
    deposit_activation: float = 0.05
    cache: Path | None = None
    store: str = "local"
    """Where the parties' buckets live: ``local`` directories, ``seaweedfs`` (a real S3 server) or
    ``storj`` (a local Storj network: a project and grant per party, peers read through shares)."""
    weed_ports: Mapping[str, int] | None = None
    """SeaweedFS's ports when chosen before the run (``seaweedfs.reserve_ports``): the CLI names
    the S3 endpoint to the fork server before SeaweedFS starts (storage.S3_PRELOAD_ENDPOINT_ENV)."""


STORES = simulate_args.STORES


@dataclass(frozen=True)
class _Buckets:
    """The storage every party uses: the spec's storage section, owner keys and read grants."""

    storage: StorageSpec
    credentials: dict[str, dict[str, str]]
    pending: Future[dict[str, str]]
    """Owner -> the read grant its peers get (``_share_in_child``)."""


def _share_in_child(
    spec: StorageSpec, credentials: dict[str, dict[str, str]], prefix: str, expiry: timedelta
) -> dict[str, str]:
    """``storage.share_buckets`` in a child of the fork server, which has the storage clients
    imported already (boto3 cost this process 22 MiB for the whole run); the child then exits.

    Run in a thread of its own: a fork server answers once its preload is done (torch: ~2 s),
    and the head can be opened meanwhile.
    """
    with ProcessPoolExecutor(
        1,
        mp_context=processes_mod.party_context(),
        initializer=processes_mod.exit_with,
        initargs=(os.getpid(),),
    ) as pool:
        return pool.submit(storage.share_buckets, spec, credentials, prefix, expiry).result()


def _open_buckets(
    work: Path, spec: FederationSpec, options: SimulateOptions, names: list[str], stack: contextlib.ExitStack
) -> _Buckets:
    """One bucket per party, owned by it, with a read-only grant for its peers."""
    if options.store == "local":
        storage_spec = StorageSpec(backend=StorageBackend.LOCAL, root=str(work / "buckets"))
        credentials: dict[str, dict[str, str]] = {n: {} for n in names}
    elif options.store == "storj":
        from hydrafed.storage import storjnet

        network = storjnet.LocalStorj.start(work / "storj", projects=len(names))
        stack.callback(network.stop)
        storage_spec = StorageSpec(backend=StorageBackend.STORJ)
        credentials = {n: network.credentials(i) for i, n in enumerate(names)}
    else:  # seaweedfs (run_simulation checked the name)
        from hydrafed.storage import seaweedfs

        server = seaweedfs.SeaweedS3.start(work / "seaweedfs", names, ports=options.weed_ports)
        stack.callback(server.stop)
        storage_spec = StorageSpec(backend=StorageBackend.S3, endpoint=server.endpoint, path_style=True)
        credentials = {n: server.credentials(n, reader_for=seaweedfs.ALL_PEERS) for n in names}
    expiry = timedelta(hours=spec.storage.share_expiry_hours)
    sharing = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="hydrafed-buckets"))
    pending = sharing.submit(_share_in_child, storage_spec, credentials, f"{options.fed}/rounds/", expiry)
    return _Buckets(storage_spec, credentials, pending)


def _import_plotting() -> None:
    """Import what ``report_mod.plot_accuracy`` needs, so that writing the plot only draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


def party_names(parties: int) -> list[str]:
    """party-01 .. party-NN: sorted order equals index order."""
    return [f"party-{i:02d}" for i in range(1, parties + 1)]


async def _open_head(urls: dict[str, str], keys: dict[str, keys_mod.PartyKeys]) -> str:
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            n: await stack.enter_async_context(client_mod.HydraClient(u, snapshot_utxo=False))
            for n, u in urls.items()
        }
        controller = HeadController(clients)
        head_id = await controller.open()
        await controller.fund(keys)
        return head_id


async def _close_head(urls: dict[str, str]) -> dict[str, Any]:
    """Close and fan out through the first party's node: one party is enough to close."""
    first = min(urls)
    async with client_mod.HydraClient(urls[first], snapshot_utxo=False) as client:
        result = await HeadController({first: client}).close_and_fanout()
        return {"headId": result.head_id, "finalizedUTxO": dict(result.finalized_utxo)}


class _LiveView:
    """Rich progress bars: one per party, with its state and latest accuracy."""

    def __init__(self, names: list[str], rounds: int, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.fields[party]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]:<12} {task.fields[acc]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks = {
            n: self.progress.add_task(n, total=rounds, party=n, state="starting", acc="") for n in names
        }

    def update(self, event: dict[str, Any]) -> None:
        task = self.tasks.get(str(event.get("party")))
        if task is None:
            return
        state = str(event.get("state"))
        fields: dict[str, Any] = {"state": state}
        if state == State.AGGREGATED:
            fields["completed"] = int(event["round"])
        elif state == State.EVALUATED:
            fields["acc"] = f"acc {100 * float(event['metrics']['accuracy']):.2f}%"
            del fields["state"]  # the party is already in its next round
        self.progress.update(task, **fields)


def _collect(supervisor: Supervisor, view: _LiveView, names: list[str]) -> dict[str, PartyResult]:
    """Relay progress until every party has reported its result; fail fast on any failure."""
    results: dict[str, dict[str, Any]] = {}
    while len(results) < len(names):
        event = supervisor.next_event()
        if event is None:
            continue
        if event.get("state") == State.RESULT:
            results[str(event["party"])] = event["result"]
            supervisor.finished(str(event["party"]))
        view.update(event)
    return {name: _party_result(results[name]) for name in names}


def _party_result(raw: dict[str, Any]) -> PartyResult:
    return PartyResult(
        name=raw["name"],
        samples=raw["samples"],
        rounds=[RoundReport(**r) for r in raw["rounds"]],
        final_sha256=raw["final_sha256"],
        announcements=raw["announcements"],
        ignored=raw.get("ignored", []),
    )


def run_simulation(
    spec: FederationSpec, options: SimulateOptions, console: Console | None = None
) -> dict[str, Any]:
    """Run the federation and the baselines; write report.json, accuracy.png and ledger.json."""
    console = console or Console()
    started = time.perf_counter()
    simulate_args.check_options(
        parties=options.parties, store=options.store, out=options.out, api_port=options.api_port
    )
    names = party_names(options.parties)
    # Fail before starting anything if the data is missing or a shard would be empty.
    tasks.check_data(spec.training, parties=options.parties, cache=options.cache)

    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out, console)
    # 0700 (mkdtemp): it holds every party's signing keys and storage credentials until the end.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    try:
        report = _run_in(work, spec, options, names, console, started)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
        report_mod.print_table(report, console)
        console.print(
            f"report: {out / 'report.json'}  plot: {out / 'accuracy.png'}  ledger: {out / 'ledger.json'}"
        )
        return report
    except KeyboardInterrupt:
        shutil.rmtree(work, ignore_errors=True)
        console.print(f"interrupted: removed the partial output {work} (it held the parties' keys)")
        raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _remove_stale_partials(out: Path, console: Console) -> None:
    """Remove what a killed run (SIGKILL, power loss) left beside ``out``, saying where it was.

    A partial output holds keys and credentials; its name carries the pid of the run that made
    it, so one whose process is gone is removed and one of a live run is left alone.
    """
    for stale in sorted(out.parent.glob(f".{out.name}.partial-*")):
        pid_text = stale.name.removeprefix(f".{out.name}.partial-").split("-", 1)[0]
        if pid_text.isdigit():
            try:
                os.kill(int(pid_text), 0)
                continue  # that run is still going
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # another user's live process
            shutil.rmtree(stale, ignore_errors=True)
            console.print(f"removed {stale}: the partial output (keys included) of a run that was killed")
        else:
            console.print(f"{stale} is the partial output (keys included) of an interrupted run: remove it")


def _run_in(
    work: Path,
    spec: FederationSpec,
    options: SimulateOptions,
    names: list[str],
    console: Console,
    started: float,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:  # stops the S3 server, if any, after the run
        buckets = _open_buckets(work, spec, options, names, stack)
        return _run_federation(
            work,
            spec.model_copy(update={"storage": buckets.storage}),
            buckets,
            options,
            names,
            console,
            started,
        )


def _run_federation(
    work: Path,
    spec: FederationSpec,
    buckets: _Buckets,
    options: SimulateOptions,
    names: list[str],
    console: Console,
    started: float,
) -> dict[str, Any]:
    training = spec.training
    devnet = Devnet(
        parties=names,
        api_port=options.api_port,
        state_dir=work / "devnet",
        contestation_period=options.contestation_period,
        deposit_activation=options.deposit_activation,
        funds_per_party=max(spec.head.deposit_lovelace, 2 * spec.head.announce_lovelace * len(names)),
    )
    with DevnetThread(devnet) as net:
        urls = dict(zip(names, net.urls, strict=True))
        party_keys = {n: keys_mod.load_party_keys(work / "devnet" / "parties" / n, n) for n in names}
        head_id = asyncio.run(_open_head(urls, party_keys))
        escrow_state = asyncio.run(settlement.after_open(urls, party_keys, spec, options.fed))
        grants = buckets.pending.result()
        setup_seconds = time.perf_counter() - started
        members = tuple(
            Member(
                name=n,
                address=str(party_keys[n].address()),
                key_hash=party_keys[n].participant_id,
                bucket=n,
                grant=grants[n],
            )
            for n in names
        )
        configs = [
            PartyConfig(fed=options.fed, name=n, members=members, spec=spec, work_dir=work / "parties" / n)
            for n in names
        ]
        access = {
            n: NodeAccess(
                api_url=urls[n],
                keys_dir=work / "devnet" / "parties" / n,
                storage_credentials=buckets.credentials[n],
            )
            for n in names
        }
        supervisor = Supervisor()
        fed_started = time.perf_counter()
        view = _LiveView(names, training.rounds, console)
        try:
            with view.progress:
                for index, config in enumerate(configs):
                    run_args = (
                        config,
                        access[config.name],
                        index,
                        len(names),
                        options.cache,
                        supervisor.events,
                    )
                    supervisor.start(config.name, PARTY_ENTRY, run_args)
                results = _collect(supervisor, view, names)
            supervisor.stop()
        finally:
            supervisor.kill()  # on a failure the others would wait for it until the round timeout
        federation_seconds = time.perf_counter() - fed_started

        baselines_started = time.perf_counter()
        local_only: dict[str, list[float]] = {}
        centralized: list[float] = []
        if options.baselines:
            with console.status("training baselines: each party alone, and all data pooled"):
                workers = max(1, min(os.cpu_count() or 1, len(names) + 1))
                with ProcessPoolExecutor(
                    workers,
                    mp_context=supervisor.context,
                    initializer=processes_mod.exit_with,
                    initargs=(os.getpid(),),
                ) as pool:
                    local_futures = {
                        n: pool.submit(party_process.baseline_curve, training, i, len(names), options.cache)
                        for i, n in enumerate(names)
                    }
                    central_future = pool.submit(party_process.baseline_curve, training, 0, 0, options.cache)
                    local_only = {n: f.result() for n, f in local_futures.items()}
                    centralized = central_future.result()
        baselines_seconds = time.perf_counter() - baselines_started

        # The plot's imports (matplotlib: ~0.5 s) overlap the contestation period, which only waits.
        threading.Thread(target=_import_plotting, name="hydrafed-import-plotting", daemon=True).start()
        escrow_state = asyncio.run(settlement.before_close(urls, party_keys, spec, options.fed, escrow_state))
        with console.status("closing the head: Close, contestation period, Fanout"):
            fanout = asyncio.run(_close_head(urls))
        finals = {r.final_sha256 for r in results.values()}
        uri = f"file://{options.out.resolve()}/report.json"  # where the final digest is recorded
        minted = asyncio.run(settlement.after_fanout(urls, party_keys, spec, options.fed, finals, uri))
        settlement.write_record(work, escrow_state, minted)

    for name in names:
        shutil.rmtree(work / "parties" / name, ignore_errors=True)
    report = report_mod.build_report(
        spec=spec,
        options={
            "parties": len(names),
            "fed": options.fed,
            "apiPort": options.api_port,
            "store": options.store,
        },
        spec_digest=spec_hash(spec),
        head_id=head_id,
        results=results,
        local_only=local_only,
        centralized=centralized,
        fanout=fanout,
        timings={
            "setupSeconds": setup_seconds,
            "federationSeconds": federation_seconds,
            "baselinesSeconds": baselines_seconds,
            "wallSeconds": time.perf_counter() - started,
        },
    )
    report_mod.write_outputs(report, results, work)
    return report
