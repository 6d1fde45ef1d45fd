"""The ``hydrafed`` command.

Each sub-command is a thin shell over a function in the package that owns the work; heavy
imports (torch, aiohttp servers) happen inside the command so ``hydrafed --help`` stays fast.
Errors derived from ``HydrafedError`` end the process with their documented exit code and a
one-line message, never a traceback.
"""

from __future__ import annotations

import sys

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


def main() -> None:
    """Console-script entry point: run the app, turning hydrafed errors into exit codes."""
    try:
        app()
    except errors.HydrafedError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)
