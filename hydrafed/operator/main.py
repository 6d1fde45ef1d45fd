"""``hydrafed operator``: kopf standalone, one namespace, a list, or all of them.

Importing :mod:`hydrafed.operator.handlers` registers the handlers; this module only starts
kopf with hydrafed's settings (see ``handlers.configure``) and the process-wide objects.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from hydrafed import errors
from hydrafed.operator.federation import Options


@dataclass(frozen=True)
class OperatorArgs:
    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    metrics_port: int | None = 9090
    health_port: int | None = 8080
    options: Options = field(default_factory=Options)
    verbose: bool = False


def watched_namespaces(args: OperatorArgs) -> list[str]:
    """The namespaces to watch; POD_NAMESPACE (the operator's own) when none is named."""
    if args.all_namespaces:
        if args.namespaces:
            raise errors.ConfigError("--namespace and --all-namespaces exclude each other: use one of them")
        return []
    if args.namespaces:
        return list(args.namespaces)
    own = os.environ.get("POD_NAMESPACE")
    if not own:
        raise errors.ConfigError(
            "no namespace to watch: pass --namespace NS (repeatable), --all-namespaces, or set POD_NAMESPACE"
        )
    return [own]


def run(args: OperatorArgs) -> None:
    """Run until SIGINT/SIGTERM."""
    import kopf

    from hydrafed.operator import handlers  # noqa: F401  (registers the handlers)
    from hydrafed.operator.kube import Kube

    namespaces = watched_namespaces(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    memo = kopf.Memo(kube=Kube.from_environment(), options=args.options, metrics_port=args.metrics_port)
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=args.all_namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
            memo=memo,
        )
    )
