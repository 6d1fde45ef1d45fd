"""Hydra and Cardano key files in the text-envelope format hydra-node and cardano-cli read.

A party owns two Ed25519 key pairs: the Hydra key (signs snapshots; its vkey hex is the
party's identity in the head) and the Cardano payment key (owns the party's funds and signs
its transactions). Both are stored as ``{"type", "description", "cborHex"}`` envelopes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Literal

import pycardano

from hydrafed import errors

HYDRA_SK_TYPE = "HydraSigningKey_ed25519"
HYDRA_VK_TYPE = "HydraVerificationKey_ed25519"
PAYMENT_SK_TYPE = "PaymentSigningKeyShelley_ed25519"
PAYMENT_VK_TYPE = "PaymentVerificationKeyShelley_ed25519"

NetworkName = Literal["testnet", "mainnet"]


@dataclasses.dataclass(frozen=True)
class PartyKeys:
    """The two key pairs of one party; the signing keys are secrets and never logged."""

    name: str
    hydra_signing_key: pycardano.PaymentSigningKey = dataclasses.field(repr=False)
    hydra_verification_key: pycardano.PaymentVerificationKey
    payment_signing_key: pycardano.PaymentSigningKey = dataclasses.field(repr=False)
    payment_verification_key: pycardano.PaymentVerificationKey

    @property
    def hydra_vkey_hex(self) -> str:
        """The party's identity as the API shows it (``Party.vkey``): the raw 32-byte vkey."""
        return bytes(self.hydra_verification_key.payload).hex()

    @property
    def participant_id(self) -> str:
        """The OnChainId: blake2b-224 hash of the payment vkey, hex."""
        return bytes(self.payment_verification_key.hash().payload).hex()

    def address(self, network: NetworkName = "testnet") -> pycardano.Address:
        """The party's enterprise payment address."""
        return payment_address(self.payment_verification_key, network)


def to_network(network: NetworkName | pycardano.Network) -> pycardano.Network:
    """Map a network name to pycardano's enum, naming the allowed values on a typo."""
    if isinstance(network, pycardano.Network):
        return network
    if network == "testnet":
        return pycardano.Network.TESTNET
    if network == "mainnet":
        return pycardano.Network.MAINNET
    raise errors.ConfigError(f"network: {network!r} is not known; use 'testnet' or 'mainnet'")


def payment_address(
    vk: pycardano.PaymentVerificationKey, network: NetworkName | pycardano.Network = "testnet"
) -> pycardano.Address:
    """Enterprise address (no stake part) of a payment vkey, like ``cardano-cli address build``."""
    return pycardano.Address(payment_part=vk.hash(), network=to_network(network))


def generate_party_keys(name: str) -> PartyKeys:
    """Fresh random Hydra and payment key pairs for ``name``."""
    hydra_sk = pycardano.PaymentSigningKey.generate()
    pay_sk = pycardano.PaymentSigningKey.generate()
    return PartyKeys(
        name=name,
        hydra_signing_key=hydra_sk,
        hydra_verification_key=pycardano.PaymentVerificationKey.from_signing_key(hydra_sk),
        payment_signing_key=pay_sk,
        payment_verification_key=pycardano.PaymentVerificationKey.from_signing_key(pay_sk),
    )


def _envelope(key_type: str, description: str, cbor_hex: str) -> str:
    return json.dumps({"type": key_type, "description": description, "cborHex": cbor_hex}, indent=4) + "\n"


def _write(path: Path, text: str, *, secret: bool) -> None:
    """Write a key file; secret files are created 0600 so no other user can read them."""
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(mode)


def save_party_keys(keys: PartyKeys, directory: Path, network: NetworkName = "testnet") -> None:
    """Write hydra.sk, hydra.vk, payment.sk, payment.vk and payment.addr into ``directory``.

    A directory it creates is 0700 and the signing keys 0600: only their owner can read them.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(
        directory / "hydra.sk",
        _envelope(HYDRA_SK_TYPE, "", keys.hydra_signing_key.to_cbor_hex()),
        secret=True,
    )
    _write(
        directory / "hydra.vk",
        _envelope(HYDRA_VK_TYPE, "", keys.hydra_verification_key.to_cbor_hex()),
        secret=False,
    )
    _write(
        directory / "payment.sk",
        _envelope(PAYMENT_SK_TYPE, "Payment Signing Key", keys.payment_signing_key.to_cbor_hex()),
        secret=True,
    )
    _write(
        directory / "payment.vk",
        _envelope(PAYMENT_VK_TYPE, "Payment Verification Key", keys.payment_verification_key.to_cbor_hex()),
        secret=False,
    )
    _write(directory / "payment.addr", str(keys.address(network)), secret=False)


def _read_envelope(path: Path, expected_types: tuple[str, ...]) -> str:
    """Return the cborHex of a key envelope, with errors that name the file and the problem."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise errors.ConfigError(
            f"key file {path} is missing; create it with `hydrafed keys generate`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise errors.ConfigError(f"key file {path} is not a JSON text envelope: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cborHex"), str):
        raise errors.ConfigError(f"key file {path}: field cborHex is missing; expected a text envelope")
    if data.get("type") not in expected_types:
        raise errors.ConfigError(
            f"key file {path}: type {data.get('type')!r} is not one of {list(expected_types)}"
        )
    cbor_hex: str = data["cborHex"]
    if not cbor_hex.startswith("5820") or len(cbor_hex) != 68:
        raise errors.ConfigError(f"key file {path}: cborHex must be 5820 followed by 32 bytes of hex")
    return cbor_hex


def load_signing_key(path: Path, expected_type: str) -> pycardano.PaymentSigningKey:
    """Load one Ed25519 signing-key envelope (Hydra or payment)."""
    return pycardano.PaymentSigningKey.from_cbor(_read_envelope(path, (expected_type,)))


def load_party_keys(directory: Path, name: str | None = None) -> PartyKeys:
    """Load the keys :func:`save_party_keys` wrote; checks each vk matches its sk."""
    hydra_sk = load_signing_key(directory / "hydra.sk", HYDRA_SK_TYPE)
    pay_sk = load_signing_key(directory / "payment.sk", PAYMENT_SK_TYPE)
    hydra_vk = pycardano.PaymentVerificationKey.from_signing_key(hydra_sk)
    pay_vk = pycardano.PaymentVerificationKey.from_signing_key(pay_sk)
    for file, vk in (("hydra.vk", hydra_vk), ("payment.vk", pay_vk)):
        path = directory / file
        if path.exists():
            stored = _read_envelope(path, (HYDRA_VK_TYPE, PAYMENT_VK_TYPE, ""))
            if stored != vk.to_cbor_hex():
                raise errors.ConfigError(
                    f"key file {path} does not match its signing key; regenerate the pair"
                )
    return PartyKeys(
        name=name or directory.name,
        hydra_signing_key=hydra_sk,
        hydra_verification_key=hydra_vk,
        payment_signing_key=pay_sk,
        payment_verification_key=pay_vk,
    )
