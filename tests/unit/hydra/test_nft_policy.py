"""The provenance NFT's policy and CIP-25 metadata, without a head."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from hydrafed import errors
from hydrafed.hydra import keys, native_script, nft

pytestmark = pytest.mark.unit

PARTIES = [keys.generate_party_keys(n) for n in ("alice", "bob", "carol")]
SHA = hashlib.sha256(b"model").hexdigest()


def _strings(value: Any) -> list[str | bytes]:
    if isinstance(value, str | bytes):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_policy_is_m_of_n_before_the_deadline() -> None:
    script = nft.policy([p.participant_id for p in PARTIES], 2, deadline_slot=1000)
    signed = {bytes(p.payment_verification_key.hash().payload) for p in PARTIES[:2]}
    assert native_script.evaluate(script, signed, None, 1000)
    assert not native_script.evaluate(script, signed, None, 1001)
    assert not native_script.evaluate(script, signed, None, None)  # no ttl: no deadline proof
    assert not native_script.evaluate(script, signed - {next(iter(signed))}, None, 999)
    assert nft.policy_deadline(script) == 1000
    with pytest.raises(errors.ConfigError, match="required signers 4 must be between 1 and 3"):
        nft.policy([p.participant_id for p in PARTIES], 4, 1000)


def test_cip25_metadata_keeps_every_string_within_64_bytes() -> None:
    p = nft.Provenance("fed", 20, ("alice", "bob"), "s3://" + "x" * 200, SHA, SHA)
    meta = nft.cip25_metadata(b"\x01" * 28, p)
    assert p.asset_name == bytes.fromhex(SHA) and len(p.asset_name) == 32
    assert all(len(s.encode() if isinstance(s, str) else s) <= 64 for s in _strings(meta))
    token = meta[b"\x01" * 28][p.asset_name]
    assert "".join(token["modelUri"]) == p.model_uri and token["rounds"] == 20


def test_provenance_is_checked() -> None:
    with pytest.raises(errors.ConfigError, match=r"nft\.model_sha256: must be 64 lowercase hex"):
        nft.Provenance("fed", 1, ("a",), "uri", "AB" * 32, SHA)
    with pytest.raises(errors.ConfigError, match="rounds must be >= 1"):
        nft.Provenance("fed", 0, ("a",), "uri", SHA, SHA)


def test_minted_token_refuses_what_is_not_one_token() -> None:
    with pytest.raises(nft.NftMismatch, match="does not decode"):
        nft.minted_token({"cborHex": "zz"})
    no_mint = "84a3008000800200a0f5f6"
    with pytest.raises(nft.NftMismatch, match="exactly one policy"):
        nft.minted_token({"cborHex": no_mint})
