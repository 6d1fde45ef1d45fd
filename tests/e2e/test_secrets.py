"""No secret leaks: an e2e-sized simulate's every written and printed byte is scanned for keys.

`hydrafed simulate` on a real S3 server (SeaweedFS) creates every kind of secret hydrafed has:
two Ed25519 signing keys per party (Hydra and payment), S3 owner and read-only keys per party,
and read grants (which carry the read keys). After the run, the files whose job is to hold a
secret (the ``*.sk`` key files, SeaweedFS's ``s3.json``) must be mode 0600 inside a 0700 output;
every other byte the run wrote (report, ledger, plot, event logs, server logs, buckets) and
printed (stdout, stderr) must hold none of those secrets in any usual encoding: raw bytes, hex,
the key file's cborHex, bech32, base58, base64.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hydrafed.ports import free_base_port
from tests.fixtures import secrets_scan

pytestmark = pytest.mark.e2e

HYDRAFED = str(Path(sys.executable).parent / "hydrafed")
SECRET_HOLDERS = ("hydra.sk", "payment.sk", "s3.json")
"""Files that exist to hold a secret: checked for their mode, not scanned."""


def _signing_keys(out: Path) -> dict[bytes, str]:
    needles: dict[bytes, str] = {}
    for path in sorted(out.glob("devnet/parties/*/*.sk")):
        raw = bytes.fromhex(json.loads(path.read_text())["cborHex"])[2:]
        assert len(raw) == 32
        needles.update(secrets_scan.forms(raw, f"{path.parent.name}'s {path.name}"))
    return needles


def _storage_secrets(out: Path) -> dict[bytes, str]:
    needles: dict[bytes, str] = {}
    config = json.loads((out / "seaweedfs" / "s3.json").read_text())
    for identity in config["identities"]:
        for credential in identity["credentials"]:
            secret = credential["secretKey"]
            assert len(secret) >= 32, "S3 secrets are random tokens, not names"
            needles[secret.encode()] = f"{identity['name']}'s S3 secret"
            needles.update(secrets_scan.forms(secret.encode(), f"{identity['name']}'s S3 secret"))
    return needles


def test_simulate_writes_and_prints_no_secret(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "run"
    port = free_base_port(3)

    # Execute: 3 parties, 2 rounds, S3 buckets; everything printed is captured.
    result = subprocess.run(
        [HYDRAFED, "simulate", "--parties", "3", "--rounds", "2", "--dataset", "digits",
         "--local-epochs", "1", "--store", "seaweedfs", "--no-baselines", "--api-port", str(port),
         "--out", str(out)],
        capture_output=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip

    # Assert: the run worked and produced every kind of secret.
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    needles = _signing_keys(out) | _storage_secrets(out)
    assert len([n for n in needles.values() if n.endswith("as hex")]) >= 6 + 3  # 2 keys x 3, S3 keys
    scanned: dict[str, bytes] = {"stdout": result.stdout, "stderr": result.stderr}
    holders = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.name in SECRET_HOLDERS:
            holders.append(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is not mode 0600"
        else:
            scanned[str(path.relative_to(out))] = path.read_bytes()
    assert len(holders) == 2 * 3 + 1
    assert {"report.json", "ledger.json", "accuracy.png"} <= set(scanned)
    assert any(name.endswith("events.jsonl") for name in scanned)
    leaks = secrets_scan.leaks(needles, scanned)
    assert leaks == [], leaks[:10]
    for path in holders:  # the scan can fail: it finds each secret where it is meant to be
        assert any(needle in path.read_bytes() for needle in needles), path
    assert not list(tmp_path.glob(".run.partial-*"))  # nothing left beside the output
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
