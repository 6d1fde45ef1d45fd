"""kopf registrations: thin, each calls into the module that owns the work.

- an index of Parties by Federation, so a Federation sees its Parties without listing them;
- one daemon per Federation (:class:`~hydrafed.operator.federation.FederationRunner`);
- the delete handler that closes the head before the finalizer goes;
- a Party check that names an unknown Federation reference.
Runs as ``hydrafed operator`` (:mod:`hydrafed.operator.main`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from hydrafed import errors
from hydrafed import spec as models
from hydrafed.head import close_step
from hydrafed.hydra import client as client_mod
from hydrafed.operator import conditions, events, metrics, names
from hydrafed.operator.federation import FederationRunner, Options
from hydrafed.operator.kube import Kube, KubeError
from hydrafed.operator.membership import PartyObject, Problem, local_party, parse_party

log = logging.getLogger(__name__)

GROUP, VERSION = models.API_GROUP, models.API_VERSION
PartyIndex = kopf.Index[tuple[str, str], dict[str, Any]]
TRANSIENT = (KubeError, errors.HydrafedError, OSError, aiohttp.ClientError, TimeoutError)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """hydrafed's own finalizer and annotation prefix; watches that never go silent."""
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=names.ANNOTATION_PREFIX)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING  # our own Events say what happened; kopf's only problems
    settings.background.cancellation_polling = 1
    # No cluster-wide watch of CRDs and namespaces (that would need cluster-scoped RBAC): the CRDs
    # exist before the operator starts (Helm installs them first) and namespaces are named.
    settings.scanning.disabled = True
    if memo.get("metrics_port"):
        metrics.serve(int(memo["metrics_port"]))


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of what the runner reads from a Party."""
    return {
        "metadata": dict(body.get("metadata", {})),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


@kopf.index(GROUP, VERSION, "parties")
def parties_by_federation(
    namespace: str | None, spec: Mapping[str, Any], body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(namespace), str(spec.get("federation", ""))): _plain(body)}


@kopf.index(GROUP, VERSION, "federations")
def federations_by_name(namespace: str | None, name: str, **_: Any) -> dict[tuple[str, str], bool]:
    return {(str(namespace), name): True}


@kopf.daemon(GROUP, VERSION, "federations", cancellation_timeout=10)
async def follow_federation(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Reconcile the Federation every few seconds while it exists (kopf cancels it on deletion)."""
    options: Options = memo["options"]
    parties_by_federation: PartyIndex = kwargs["parties_by_federation"]
    namespace = str(namespace)
    runner = FederationRunner(memo["kube"], options, namespace, name)
    try:
        while not stopped:
            parties = list(parties_by_federation.get((namespace, name), []))
            try:
                await runner.step(body, parties)
            except TRANSIENT as exc:
                log.warning(
                    "federation %s/%s: %s (retrying in %ss)", namespace, name, exc, options.resync_seconds
                )
            await stopped.wait(options.resync_seconds)
    finally:
        await runner.stop()


def _local(name: str, parties: list[dict[str, Any]]) -> PartyObject | Problem:
    parsed = [p for p in (parse_party(b) for b in parties) if isinstance(p, PartyObject)]
    return local_party(name, parsed)


@kopf.on.delete(GROUP, VERSION, "federations", backoff=5)
async def close_head(
    name: str,
    namespace: str | None,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Close the head, wait out the contestation deadline, fan out; only then the finalizer goes."""
    kube: Kube = memo["kube"]
    parties_by_federation: PartyIndex = kwargs["parties_by_federation"]
    namespace = str(namespace)
    ref = events.ObjectRef("Federation", namespace, name)
    force = f"kubectl annotate federation {name} -n {namespace} {names.FORCE_RELEASE}=true"
    head_id = status.get("headId") or None
    if meta.get("annotations", {}).get(names.FORCE_RELEASE) == "true":
        events.post(kube, ref, "Warning", "ForceReleased", f"released without closing head {head_id}")
        return
    if status.get("phase") == models.FederationPhase.CLOSED:
        return
    local = _local(name, list(parties_by_federation.get((namespace, name), [])))
    if isinstance(local, Problem):
        if head_id is None:
            return  # nothing was opened: release at once
        _closing(
            kube,
            namespace,
            name,
            status,
            f"cannot close head {head_id}: {local.message}; to release "
            f"the Federation without closing its head: {force}",
        )
        raise kopf.TemporaryError(local.message, delay=10)
    url = names.node_api_url(name, local.name, namespace, local.spec.node_api_url)
    try:
        async with client_mod.HydraClient(
            url, history=False, snapshot_utxo=False, connect_timeout=5
        ) as client:
            step = await close_step(client, head_id)
    except TRANSIENT as exc:
        if head_id is None and status.get("phase") in (None, "Pending", "Provisioning"):
            return  # the node never answered, so no head of ours was opened through it
        message = (
            f"closing: the hydra-node at {url} does not answer ({exc}); the finalizer waits for it. "
            f"To release the Federation without closing its head: {force}"
        )
        _closing(kube, namespace, name, status, message)
        raise kopf.TemporaryError(message, delay=10) from None
    if step.done:
        _closing(
            kube, namespace, name, status, f"head {head_id or ''} finalized: {step.waiting_for}", done=True
        )
        events.post(
            kube, ref, "Normal", "HeadFinalized", f"head {head_id} is finalized; funds are back on L1"
        )
        return
    message = f"closing the head: waiting for {step.waiting_for}. To release without closing: {force}"
    _closing(kube, namespace, name, status, message)
    raise kopf.TemporaryError(message, delay=step.retry_in)


def _closing(
    kube: Kube, namespace: str, name: str, status: Mapping[str, Any], message: str, *, done: bool = False
) -> None:
    phase = models.FederationPhase.CLOSED if done else models.FederationPhase.CLOSING
    conds = conditions.put(
        conditions.parse(status.get("conditions")),
        "HeadOpen",
        False,
        "HeadFinalized" if done else "Closing",
        message,
    )
    patch = {
        "phase": phase.value,
        "message": message[:4096],
        "conditions": [models.to_wire(c) for c in conds],
    }
    if done:
        patch["headState"] = models.HeadState.FINAL.value
    if status.get("phase") != phase.value:
        events.post(kube, events.ObjectRef("Federation", namespace, name), "Normal", phase.value, message)
    try:
        kube.patch_status("Federation", namespace, name, patch)
    except KubeError as exc:
        log.warning("could not write the closing status of %s/%s: %s", namespace, name, exc)


@kopf.on.resume(GROUP, VERSION, "parties")
@kopf.on.create(GROUP, VERSION, "parties")
@kopf.on.update(GROUP, VERSION, "parties", field="spec")
def check_party(
    name: str,
    namespace: str | None,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A Party that names no existing Federation says so; its Federation's daemon takes it from there."""
    federation = str(spec.get("federation", ""))
    namespace = str(namespace)
    federations_by_name: kopf.Index[tuple[str, str], bool] = kwargs["federations_by_name"]
    if (namespace, federation) in federations_by_name:
        return
    message = (
        f"Party {name} refers to Federation {federation}, which does not exist in namespace {namespace}: "
        "create the Federation or fix spec.federation"
    )
    conds = conditions.put(
        conditions.parse(status.get("conditions")), "FederationFound", False, "FederationNotFound", message
    )
    kube: Kube = memo["kube"]
    if status.get("message") != message:
        events.post(
            kube, events.ObjectRef("Party", namespace, name), "Warning", "FederationNotFound", message
        )
    kube.patch_status(
        "Party",
        namespace,
        name,
        {"phase": "Pending", "message": message, "conditions": [models.to_wire(c) for c in conds]},
    )
