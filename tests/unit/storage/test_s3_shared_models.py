"""s3: the parsed S3 model is loaded once per process tree, and forked children reuse it."""

from __future__ import annotations

import os

import botocore.loaders
import pytest

from hydrafed.storage import s3

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
            status = 0 if fresh_session and store.client is not peer.client else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0


def test_sessions_share_the_process_loader() -> None:
    session = s3._session(os.getpid())

    assert session._session.get_component("data_loader") is s3._loader
