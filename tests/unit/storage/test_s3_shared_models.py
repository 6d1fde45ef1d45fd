"""s3: the parsed S3 model is loaded once per process tree, forked children reuse it, the stores
of one endpoint share a client but sign with their own keys, and a fork server's prebuilt
client crosses the fork without ever having opened a connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from typing import Any

import botocore.loaders
import pytest

from hydrafed import errors
from hydrafed.storage import S3_PRELOAD_ENDPOINT_ENV, s3

pytestmark = pytest.mark.unit


def _no_model_files(*args: object, **kwargs: object) -> object:
    raise AssertionError("botocore read a data file: the shared loader was not warm")


def test_a_forked_child_builds_clients_without_parsing_the_s3_model_again() -> None:
    pid = os.fork()
    if pid == 0:  # the child: like a party forked from the fork server
        status = 1
        try:
            botocore.loaders.JSONFileLoader.load_file = _no_model_files  # type: ignore[method-assign]
            store = s3.S3Store(endpoint="http://127.0.0.1:9", access_key_id="k", secret_access_key="s")
            peer = s3.S3Store(
                endpoint="http://127.0.0.1:9", access_key_id="r", secret_access_key="s", read_only=("b", "p/")
            )
            fresh_session = s3._session(os.getpid()) is not s3._session(os.getppid())
            status = 0 if fresh_session and store.client is peer.client else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0


def test_sessions_share_the_process_loader() -> None:
    session = s3._session(os.getpid())

    assert session._session.get_component("data_loader") is s3._loader


def test_the_stores_of_an_endpoint_share_a_client_and_sign_each_request_with_their_own_keys() -> None:
    def store(key_id: str, read_only: tuple[str, str] | None) -> s3.S3Store:
        return s3.S3Store(
            endpoint="http://127.0.0.1:9",
            access_key_id=key_id,
            secret_access_key="s",
            read_only=read_only,
            max_attempts=1,
        )

    stores = {f"PEER{i}": store(f"PEER{i}", ("b", "p/")) for i in range(4)} | {"OWNER": store("OWNER", None)}
    shared = stores["OWNER"].client
    assert all(store.client is shared for store in stores.values())
    caller = threading.local()
    signed: dict[str, list[str]] = {}

    def record(request: Any, **_: Any) -> None:  # runs in the calling thread, just before sending
        key_id = request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0]
        signed.setdefault(caller.name, []).append(key_id)

    shared.meta.events.register("before-send.s3", record)

    def stat_three_times(name: str) -> None:
        caller.name = name
        for _ in range(3):
            with pytest.raises(errors.UnavailableError):  # nothing listens on port 9
                stores[name].stat("b", "p/u")

    threads = [threading.Thread(target=stat_three_times, args=(name,)) for name in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert signed == {name: [name] * 3 for name in stores}


_PREBUILT = """
import os, socket, sys
from hydrafed.storage import S3_PRELOAD_ENDPOINT_ENV, s3

[(endpoint, client)] = s3._prebuilt.items()
pid = os.fork()
if pid == 0:  # like a party forked from the fork server
    store = s3.S3Store(endpoint=endpoint[0], access_key_id="k", secret_access_key="s")
    os._exit(0 if store.client is client else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), endpoint == (sys.argv[1], "us-east-1", True, 5))
"""


def test_the_fork_servers_prebuilt_client_is_warmed_without_a_connection_and_inherited() -> None:
    # Prepare: a listener on the endpoint that counts the connections made to it
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {**os.environ, S3_PRELOAD_ENDPOINT_ENV: endpoint}

    # Execute: import s3 with the endpoint named (as simulate's fork server does), fork a party
    out = subprocess.run(
        [sys.executable, "-c", _PREBUILT, endpoint], env=env, capture_output=True, text=True, check=True
    )

    # Assert: the child took the prebuilt client, for this endpoint; nothing ever connected
    assert out.stdout.split() == ["0", "True"]
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
