"""Helm pre-delete hook: delete every Federation (then Party) while the operator still runs.

The operator's finalizer (hydrafed.io/close-head) closes each head on delete; if the chart went
first, the objects (and their namespaces) would hang in Terminating. Standard library only: it
runs in the operator image with the hook's own ServiceAccount token.

Env: NAMESPACES (comma-separated, or * for all), TIMEOUT_SECONDS; API_SERVER, TOKEN_FILE and
CA_FILE default to the in-cluster values (tests point them at a test API server).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
GROUP = "/apis/hydrafed.io/v1alpha1"


def _call(method: str, path: str) -> dict[str, object]:
    server = os.environ.get("API_SERVER") or "https://{}:{}".format(
        os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    )
    token = Path(os.environ.get("TOKEN_FILE", f"{SA}/token")).read_text(encoding="utf-8").strip()
    context = ssl.create_default_context(cafile=os.environ.get("CA_FILE", f"{SA}/ca.crt"))
    request = urllib.request.Request(server + path, method=method)  # noqa: S310 (https only)
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
        body: dict[str, object] = json.loads(response.read() or b"{}")
        return body


def _collections(plural: str) -> list[str]:
    namespaces = os.environ.get("NAMESPACES", "").split(",")
    if "*" in namespaces:
        return [f"{GROUP}/{plural}"]
    return [f"{GROUP}/namespaces/{ns}/{plural}" for ns in namespaces if ns]


def _names(plural: str) -> list[str]:
    found = []
    for collection in _collections(plural):
        items = _call("GET", collection).get("items") or []
        for item in items:  # type: ignore[attr-defined]
            meta = item["metadata"]
            found.append(f"{GROUP}/namespaces/{meta['namespace']}/{plural}/{meta['name']}")
    return found


def main() -> int:
    """Delete Federations, wait until they are gone (heads closed), then delete Parties."""
    deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "600"))
    for plural in ("federations", "parties"):
        for path in _names(plural):
            print(f"deleting {path}", flush=True)
            try:
                _call("DELETE", path)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        while (left := _names(plural)) and time.monotonic() < deadline:
            print(f"waiting for {len(left)} {plural} to finish deleting", flush=True)
            time.sleep(2)
        if left:
            print(f"gave up: still there: {', '.join(left)}; see docs/operations.md", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
