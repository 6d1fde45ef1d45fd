"""Key files: the envelopes hydra-node and cardano-cli read, permissions, round trip, errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import keys

pytestmark = pytest.mark.unit


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    # Prepare
    generated = keys.generate_party_keys("alice")

    # Execute
    keys.save_party_keys(generated, tmp_path)
    loaded = keys.load_party_keys(tmp_path, "alice")

    # Assert
    assert loaded.hydra_vkey_hex == generated.hydra_vkey_hex
    assert loaded.payment_verification_key.payload == generated.payment_verification_key.payload
    assert (tmp_path / "payment.addr").read_text() == str(generated.address())
    assert str(generated.address()).startswith("addr_test1v")
    assert str(generated.address("mainnet")).startswith("addr1v")


def test_envelope_types_and_secret_permissions(tmp_path: Path) -> None:
    keys.save_party_keys(keys.generate_party_keys("a"), tmp_path)
    types = {
        f: json.loads((tmp_path / f).read_text())["type"]
        for f in ("hydra.sk", "hydra.vk", "payment.sk", "payment.vk")
    }
    assert types == {
        "hydra.sk": "HydraSigningKey_ed25519",
        "hydra.vk": "HydraVerificationKey_ed25519",
        "payment.sk": "PaymentSigningKeyShelley_ed25519",
        "payment.vk": "PaymentVerificationKeyShelley_ed25519",
    }
    for secret in ("hydra.sk", "payment.sk"):
        assert stat.S_IMODE((tmp_path / secret).stat().st_mode) == 0o600
    keys.save_party_keys(keys.generate_party_keys("b"), tmp_path / "new" / "b")
    assert stat.S_IMODE((tmp_path / "new" / "b").stat().st_mode) == 0o700
    # The vkey hex is the envelope's cborHex without the 5820 prefix, as the API shows it.
    vk_hex = json.loads((tmp_path / "hydra.vk").read_text())["cborHex"]
    assert vk_hex == "5820" + keys.load_party_keys(tmp_path).hydra_vkey_hex


def test_pycardano_reads_payment_files(tmp_path: Path) -> None:
    generated = keys.generate_party_keys("a")
    keys.save_party_keys(generated, tmp_path)
    sk = pycardano.PaymentSigningKey.load(str(tmp_path / "payment.sk"))
    assert (
        pycardano.PaymentVerificationKey.from_signing_key(sk).payload
        == generated.payment_verification_key.payload
    )


def test_missing_and_mismatched_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match=r"hydra\.sk is missing"):
        keys.load_party_keys(tmp_path)
    keys.save_party_keys(keys.generate_party_keys("a"), tmp_path)
    other = tmp_path / "other"
    keys.save_party_keys(keys.generate_party_keys("b"), other)
    (tmp_path / "hydra.vk").write_text((other / "hydra.vk").read_text())
    with pytest.raises(errors.ConfigError, match=r"hydra\.vk does not match"):
        keys.load_party_keys(tmp_path)


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    keys.save_party_keys(keys.generate_party_keys("a"), tmp_path)
    (tmp_path / "hydra.sk").write_text((tmp_path / "payment.sk").read_text())
    with pytest.raises(errors.ConfigError, match="HydraSigningKey_ed25519"):
        keys.load_party_keys(tmp_path)


def test_unknown_network_names_the_choices() -> None:
    with pytest.raises(errors.ConfigError, match="'testnet' or 'mainnet'"):
        keys.to_network("preprod")
