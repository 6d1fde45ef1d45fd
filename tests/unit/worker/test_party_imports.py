"""A party process never imports pycardano: its ~1.5 s of import was most of a party's start-up.

Run in a fresh interpreter, since this test session has imported pycardano long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

#: What a party imports: the fork server's preload (``processes.HEAVY``, torch included), then
#: the party's own modules again, so that an import the preload swallowed fails here.
PARTY_MODULES = (
    "hydrafed.worker.preload",
    "hydrafed.worker.production",
    "hydrafed.worker.tasks",
    "hydrafed.worker.party_process",
    "hydrafed.worker.supervisor",
    "hydrafed.storage",
)

# flush: the preload leaves through os._exit at exit, which drops buffered output.
_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {0!r})), flush=True)
"""

_FORBIDDEN = ("pycardano", "ogmios", "blockfrost", "typeguard")


def _modules_after_importing(*names: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(set(_FORBIDDEN)), *names],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_the_party_path_imports_no_pycardano() -> None:
    assert _modules_after_importing(*PARTY_MODULES) == []


def test_the_probe_sees_pycardano_where_it_is_imported() -> None:
    # The L1 code still uses pycardano: the probe must notice it, or the test above proves nothing.
    assert "pycardano" in _modules_after_importing("hydrafed.hydra.ledger")
