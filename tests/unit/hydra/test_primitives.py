"""The pycardano-free primitives give exactly pycardano's bytes: keys, signatures, addresses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nacl.signing
import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import keys, primitives, tx
from hydrafed.hydra import utxo as utxo_mod

pytestmark = pytest.mark.unit

NETWORKS: tuple[keys.NetworkName, ...] = ("testnet", "mainnet")


def _pycardano_keys(
    k: keys.PartyKeys,
) -> tuple[pycardano.PaymentSigningKey, pycardano.PaymentVerificationKey]:
    """pycardano's own key pair from the same seed, built without PartyKeys' views."""
    sk = pycardano.PaymentSigningKey.from_cbor("5820" + k.payment_seed.hex())
    return sk, pycardano.PaymentVerificationKey.from_signing_key(sk)


@pytest.mark.parametrize("network", NETWORKS)
def test_party_keys_match_pycardano_on_generated_keys(network: keys.NetworkName) -> None:
    for i in range(20):
        # Prepare
        party = keys.generate_party_keys(f"p{i}")
        sk, vk = _pycardano_keys(party)
        hydra_sk = pycardano.PaymentSigningKey.from_cbor("5820" + party.hydra_seed.hex())
        expected = pycardano.Address(payment_part=vk.hash(), network=keys.to_network(network))
        message = hashlib.blake2b(os.urandom(64), digest_size=32).digest()

        # Execute
        raw = party.address_bytes(network)

        # Assert
        assert party.payment_vkey == bytes(vk.payload)
        assert party.hydra_vkey == bytes(pycardano.PaymentVerificationKey.from_signing_key(hydra_sk).payload)
        assert party.payment_key_hash == bytes(vk.hash().payload)
        assert party.participant_id == bytes(vk.hash().payload).hex()
        assert party.sign(message) == sk.sign(message)
        assert raw == bytes(expected.to_primitive())
        assert party.address_text(network) == str(expected)
        assert primitives.address_bytes(str(expected)) == raw
        assert str(keys.payment_address(vk, network)) == str(expected)
        # The typed views the L1 code reads are pycardano's own objects over the same bytes.
        assert party.payment_signing_key.to_cbor_hex() == sk.to_cbor_hex()
        assert party.payment_verification_key == vk
        assert party.address(network) == expected


@pytest.mark.parametrize(
    "payment, staking",
    [
        (pycardano.VerificationKeyHash, pycardano.VerificationKeyHash),
        (pycardano.ScriptHash, pycardano.VerificationKeyHash),
        (pycardano.VerificationKeyHash, pycardano.ScriptHash),
        (pycardano.ScriptHash, pycardano.ScriptHash),
        (pycardano.VerificationKeyHash, None),
        (pycardano.ScriptHash, None),
        (None, pycardano.VerificationKeyHash),
        (None, pycardano.ScriptHash),
    ],
)
@pytest.mark.parametrize("network", [pycardano.Network.TESTNET, pycardano.Network.MAINNET])
def test_bech32_matches_pycardano_for_every_shelley_address_kind(
    payment: type[pycardano.VerificationKeyHash] | None,
    staking: type[pycardano.VerificationKeyHash] | None,
    network: pycardano.Network,
) -> None:
    for _ in range(10):
        # Prepare
        address = pycardano.Address(
            payment_part=payment(os.urandom(28)) if payment else None,
            staking_part=staking(os.urandom(28)) if staking else None,
            network=network,
        )
        raw = bytes(address.to_primitive())

        # Execute
        text = primitives.address_text(raw)

        # Assert
        assert text == str(address) == utxo_mod.address_text(address)
        assert primitives.address_bytes(text) == raw
        assert primitives.address_bytes(text.upper()) == raw


def _bech32_with_prefix(hrp: str, raw: bytes) -> str:
    """``raw`` encoded under another prefix, with a valid checksum (pycardano's encoder)."""
    from pycardano.crypto import bech32

    text = bech32.encode(hrp, raw)
    assert text is not None
    return str(text)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "separator"),
        ("addr_test1", "separator"),
        ("x" * 109, "longer than"),
        ("Addr_test1vqqqqqqq", "mixed case"),
        ("addr_test1vqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqb", "alphabet"),
    ],
)
def test_malformed_bech32_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        primitives.address_bytes(text)


def test_checksum_prefix_and_header_are_checked() -> None:
    # Prepare
    party = keys.generate_party_keys("a")
    text = party.address_text("testnet")
    flipped = text[:-1] + ("q" if text[-1] != "q" else "p")
    mainnet_header_under_test_prefix = _bech32_with_prefix("addr_test", party.address_bytes("mainnet"))
    pointer = bytes([0x40]) + party.payment_key_hash + b"\x01\x02\x03"

    # Execute, Assert
    with pytest.raises(ValueError, match="checksum"):
        primitives.address_bytes(flipped)
    with pytest.raises(ValueError, match="does not match the address header"):
        primitives.address_bytes(mainnet_header_under_test_prefix)
    with pytest.raises(ValueError, match="header type 4"):
        primitives.address_text(pointer)
    with pytest.raises(ValueError, match="28 bytes after"):
        primitives.address_text(party.address_bytes()[:-1])
    with pytest.raises(errors.ConfigError, match="not a bech32 Cardano address: bad bech32 checksum"):
        tx._address_bytes(flipped)


def test_split_txin_agrees_with_pycardano_input() -> None:
    # Prepare
    key = "ab" * 32 + "#7"

    # Execute
    tx_id, index = primitives.split_txin(key)

    # Assert
    parsed = utxo_mod.parse_txin(key)
    assert (tx_id, index) == (bytes(parsed.transaction_id.payload), parsed.index)
    for bad in ("ab" * 32, "zz" * 32 + "#0", "ab" * 31 + "#0", "ab" * 32 + "#-1"):
        with pytest.raises(errors.ConfigError, match="UTxO key"):
            primitives.split_txin(bad)


def test_select_inputs_reads_json_and_pycardano_outputs_alike() -> None:
    # Prepare
    me, other = keys.generate_party_keys("me"), keys.generate_party_keys("other")
    outputs = {
        "11" * 32 + "#0": pycardano.TransactionOutput(me.address(), 5_000_000),
        "22" * 32 + "#1": pycardano.TransactionOutput(me.address(), 9_000_000),
        "33" * 32 + "#0": pycardano.TransactionOutput(other.address(), 7_000_000),
        "44" * 32 + "#0": pycardano.TransactionOutput(
            me.address(),
            pycardano.Value(2_000_000, pycardano.MultiAsset.from_primitive({b"p" * 28: {b"t": 1}})),
        ),
    }
    as_json = utxo_mod.utxo_to_json(outputs)

    # Execute
    from_objects = tx.select_inputs(outputs, me.address_bytes())
    from_json = tx.select_inputs(as_json, me.address_bytes())
    from_typed_owner = tx.select_inputs(as_json, me.address())

    # Assert
    assert (
        from_objects
        == from_json
        == from_typed_owner
        == [("22" * 32 + "#1", 9_000_000), ("11" * 32 + "#0", 5_000_000)]
    )


def test_key_envelopes_are_pycardanos_cbor(tmp_path: Path) -> None:
    # Prepare
    party = keys.generate_party_keys("a")
    sk, vk = _pycardano_keys(party)

    # Execute
    keys.save_party_keys(party, tmp_path)
    loaded = keys.load_party_keys(tmp_path, "a")

    # Assert
    assert keys.load_signing_key(tmp_path / "payment.sk", keys.PAYMENT_SK_TYPE) == party.payment_seed
    assert f'"cborHex": "{sk.to_cbor_hex()}"' in (tmp_path / "payment.sk").read_text()
    assert f'"cborHex": "{vk.to_cbor_hex()}"' in (tmp_path / "payment.vk").read_text()
    assert loaded == party
    assert bytes(nacl.signing.SigningKey(loaded.payment_seed).verify_key) == loaded.payment_vkey


def test_seeds_stay_out_of_the_repr() -> None:
    party = keys.generate_party_keys("a")
    party.payment_signing_key  # noqa: B018 - the cached pycardano view must not show either
    for seed in (party.payment_seed, party.hydra_seed):
        assert repr(seed) not in repr(party) and seed.hex() not in repr(party)
    assert repr(party.payment_vkey) in repr(party)
