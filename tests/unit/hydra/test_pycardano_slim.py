"""pycardano as hydrafed imports it: the ledger types work, the chain clients are not loaded.

Each case runs in a fresh interpreter: this test session imported pycardano long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.unit

CHAIN_CLIENTS = ("ogmios", "blockfrost", "docker", "requests", "websocket")
"""Top-level packages that only pycardano's chain-backend clients import."""

_PROBE = """
import json, sys
{imports}
import pycardano
from pycardano.backend.base import ChainContext

key = pycardano.PaymentSigningKey.generate()
address = pycardano.Address(key.to_verification_key().hash(), network=pycardano.Network.TESTNET)
body = pycardano.TransactionBody(
    inputs=[pycardano.TransactionInput(pycardano.TransactionId(bytes(32)), 0)],
    outputs=[pycardano.TransactionOutput(address, 2_000_000)],
    fee=200_000,
)
witness = pycardano.TransactionWitnessSet(
    vkey_witnesses=[pycardano.VerificationKeyWitness(key.to_verification_key(), key.sign(body.hash()))]
)
tx = pycardano.Transaction(body, witness)
again = pycardano.Transaction.from_cbor(tx.to_cbor())
print(json.dumps({{
    "loaded": sorted({{m.split(".")[0] for m in sys.modules}} & set(sys.argv[1:])),
    "round_trip": again.id == tx.id,
    "chain_context": pycardano.ChainContext is ChainContext is pycardano.backend.ChainContext,
}}))
"""


def _probe(imports: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports), *CHAIN_CLIENTS],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_pycardano_after_hydrafed_builds_and_reads_txs_without_its_chain_clients() -> None:
    found = _probe("import hydrafed")

    assert found == {"loaded": [], "round_trip": True, "chain_context": True}


def test_a_chain_client_can_still_be_imported_by_name() -> None:
    found = _probe(
        "import hydrafed\nimport pycardano.backend.blockfrost as b\nassert b.BlockFrostChainContext"
    )

    assert "requests" in found["loaded"]  # blockfrost's HTTP client came with it
    assert found["round_trip"] and found["chain_context"]


def test_pycardano_imported_first_keeps_everything() -> None:
    found = _probe("import pycardano\nimport hydrafed\nassert pycardano.BlockFrostChainContext")

    assert {"ogmios", "blockfrost"} <= set(found["loaded"])
    assert found["round_trip"] and found["chain_context"]


def test_a_missing_client_names_the_way_to_import_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import hydrafed, pycardano; pycardano.backend.OgmiosV6ChainContext"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "import pycardano.backend.<client>" in result.stderr
