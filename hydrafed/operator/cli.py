"""The operator's sub-commands of ``hydrafed``: ``operator`` and ``party export``.

Only typer is imported here; kopf, the Kubernetes client and the handlers load inside the
commands, so ``hydrafed --help`` stays fast and a bad option is refused before anything heavy.
"""

from __future__ import annotations

from typing import Annotated

import typer

NAMESPACE_HELP = "Namespace to watch (repeat for several; default: $POD_NAMESPACE)."


def operator_command(
    namespace: Annotated[list[str] | None, typer.Option("--namespace", "-n", help=NAMESPACE_HELP)] = None,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", "-A", help="Watch every namespace (needs a ClusterRoleBinding)."),
    ] = False,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", min=0, max=65535, help="Prometheus /metrics port (0: off).")
    ] = 9090,
    health_port: Annotated[
        int, typer.Option("--health-port", min=0, max=65535, help="Liveness /healthz port (0: off).")
    ] = 8080,
    worker_image: Annotated[
        str, typer.Option("--worker-image", envvar="HYDRAFED_WORKER_IMAGE", help="Image of the worker Jobs.")
    ] = "ghcr.io/hydrafed/worker:0.1.0",
    resync_seconds: Annotated[
        float,
        typer.Option("--resync-seconds", min=0.2, help="Seconds between two reconciles of a Federation."),
    ] = 5.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug logging.")] = False,
) -> None:
    """Run the Kubernetes operator (kopf, standalone): Federations, Parties, their head and workers."""
    from hydrafed.operator import main
    from hydrafed.operator.federation import Options

    main.run(
        main.OperatorArgs(
            namespaces=tuple(namespace or ()),
            all_namespaces=all_namespaces,
            metrics_port=metrics_port or None,
            health_port=health_port or None,
            options=Options(worker_image=worker_image, resync_seconds=resync_seconds),
            verbose=verbose,
        )
    )


party_app = typer.Typer(help="Parties of a Federation on this cluster.", no_args_is_help=True)


@party_app.command("export")
def party_export(
    name: Annotated[str, typer.Argument(help="The local Party to export.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the Party.")] = "default",
) -> None:
    """Print the Party manifest (and its read grant Secret) that the other organisations apply."""
    from hydrafed.operator import export
    from hydrafed.operator.kube import Kube

    typer.echo(export.to_yaml(export.export(Kube.from_environment(), namespace, name)), nl=False)
