"""Hydra and Cardano key files in the text-envelope format hydra-node and cardano-cli read.

A party owns two Ed25519 key pairs: the Hydra key (signs snapshots; its vkey hex is the
party's identity in the head) and the Cardano payment key (owns the party's funds and signs
its transactions). Both are stored as ``{"type", "description", "cborHex"}`` envelopes.

Every party process loads its keys, so they are held as raw bytes and signed with PyNaCl;
pycardano (about 1.5 s of import) is loaded only where the L1 code asks for its typed keys.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cbor2
import nacl.signing

from hydrafed import errors
from hydrafed.hydra import primitives

if TYPE_CHECKING:  # the L1 code's typed views; the worker's path never imports pycardano
    import pycardano

HYDRA_SK_TYPE = "HydraSigningKey_ed25519"
HYDRA_VK_TYPE = "HydraVerificationKey_ed25519"
PAYMENT_SK_TYPE = "PaymentSigningKeyShelley_ed25519"
PAYMENT_VK_TYPE = "PaymentVerificationKeyShelley_ed25519"

NetworkName = Literal["testnet", "mainnet"]


@dataclasses.dataclass(frozen=True)
class PartyKeys:
    """The two key pairs of one party as raw Ed25519 bytes; the seeds are secrets, never logged.

    The worker signs and addresses with the bytes (:meth:`sign`, :meth:`address_bytes`); the
    L1 code reads pycardano's typed keys and address (``payment_signing_key``, :meth:`address`),
    built on first use so that only the processes that need pycardano import it.
    """

    name: str
    hydra_seed: bytes = dataclasses.field(repr=False)
    payment_seed: bytes = dataclasses.field(repr=False)
    hydra_vkey: bytes = dataclasses.field(init=False)
    payment_vkey: bytes = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        for what, seed in (("hydra", self.hydra_seed), ("payment", self.payment_seed)):
            if len(seed) != 32:
                raise errors.ConfigError(f"{self.name}'s {what} signing key is not 32 bytes")
        object.__setattr__(self, "hydra_vkey", _vkey(self.hydra_seed))
        object.__setattr__(self, "payment_vkey", _vkey(self.payment_seed))

    @property
    def hydra_vkey_hex(self) -> str:
        """The party's identity as the API shows it (``Party.vkey``): the raw 32-byte vkey."""
        return self.hydra_vkey.hex()

    @property
    def payment_key_hash(self) -> bytes:
        """The payment credential: blake2b-224 of the payment vkey."""
        return primitives.key_hash(self.payment_vkey)

    @property
    def participant_id(self) -> str:
        """The OnChainId: blake2b-224 hash of the payment vkey, hex."""
        return self.payment_key_hash.hex()

    def sign(self, message: bytes) -> bytes:
        """The payment key's Ed25519 signature of ``message`` (a tx body hash): 64 bytes."""
        return bytes(self._payment_signer.sign(message).signature)

    def sign_hydra(self, message: bytes) -> bytes:
        """The Hydra key's Ed25519 signature of ``message`` (a snapshot, on the devnet): 64 bytes."""
        return bytes(self._hydra_signer.sign(message).signature)

    @functools.cached_property
    def _payment_signer(self) -> nacl.signing.SigningKey:
        # Kept: expanding the seed into a signing key costs about as much as a signature.
        return nacl.signing.SigningKey(self.payment_seed)

    @functools.cached_property
    def _hydra_signer(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.hydra_seed)

    def address_bytes(self, network: NetworkName = "testnet") -> bytes:
        """The party's enterprise payment address, raw (as in a tx output)."""
        return primitives.enterprise_address(self.payment_key_hash, network_id(network))

    def address_text(self, network: NetworkName = "testnet") -> str:
        """The party's enterprise payment address in bech32 (``payment.addr``, the API's JSON)."""
        return primitives.address_text(self.address_bytes(network))

    @functools.cached_property
    def payment_signing_key(self) -> pycardano.PaymentSigningKey:
        """The payment signing key as pycardano's type, for the L1 builders (imports pycardano)."""
        import pycardano

        return pycardano.PaymentSigningKey(self.payment_seed)

    @functools.cached_property
    def payment_verification_key(self) -> pycardano.PaymentVerificationKey:
        """The payment verification key as pycardano's type (imports pycardano)."""
        import pycardano

        return pycardano.PaymentVerificationKey.from_signing_key(self.payment_signing_key)

    def address(self, network: NetworkName = "testnet") -> pycardano.Address:
        """The party's enterprise payment address as pycardano's type (imports pycardano)."""
        import pycardano

        return pycardano.Address.from_primitive(self.address_bytes(network))


def _vkey(seed: bytes) -> bytes:
    return bytes(nacl.signing.SigningKey(seed).verify_key)


def network_id(network: NetworkName) -> int:
    """The network nibble of an address header, naming the allowed values on a typo."""
    if network == "testnet":
        return 0
    if network == "mainnet":
        return 1
    raise errors.ConfigError(f"network: {network!r} is not known; use 'testnet' or 'mainnet'")


def to_network(network: NetworkName | pycardano.Network) -> pycardano.Network:
    """Map a network name to pycardano's enum, naming the allowed values on a typo."""
    import pycardano

    if isinstance(network, pycardano.Network):
        return network
    return pycardano.Network(network_id(network))


def payment_address(
    vk: pycardano.PaymentVerificationKey, network: NetworkName | pycardano.Network = "testnet"
) -> pycardano.Address:
    """Enterprise address (no stake part) of a payment vkey, like ``cardano-cli address build``."""
    import pycardano

    raw = primitives.enterprise_address(primitives.key_hash(bytes(vk.payload)), to_network(network).value)
    return pycardano.Address.from_primitive(raw)


def generate_party_keys(name: str) -> PartyKeys:
    """Fresh random Hydra and payment key pairs for ``name``."""
    return PartyKeys(
        name=name,
        hydra_seed=bytes(nacl.signing.SigningKey.generate()),
        payment_seed=bytes(nacl.signing.SigningKey.generate()),
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


def _key_cbor_hex(key: bytes) -> str:
    """A 32-byte key as the envelope's cborHex: a CBOR byte string (``5820`` + the key)."""
    return cbor2.dumps(key).hex()


def save_party_keys(keys: PartyKeys, directory: Path, network: NetworkName = "testnet") -> None:
    """Write hydra.sk, hydra.vk, payment.sk, payment.vk and payment.addr into ``directory``.

    A directory it creates is 0700 and the signing keys 0600: only their owner can read them.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(directory / "hydra.sk", _envelope(HYDRA_SK_TYPE, "", _key_cbor_hex(keys.hydra_seed)), secret=True)
    _write(directory / "hydra.vk", _envelope(HYDRA_VK_TYPE, "", _key_cbor_hex(keys.hydra_vkey)), secret=False)
    _write(
        directory / "payment.sk",
        _envelope(PAYMENT_SK_TYPE, "Payment Signing Key", _key_cbor_hex(keys.payment_seed)),
        secret=True,
    )
    _write(
        directory / "payment.vk",
        _envelope(PAYMENT_VK_TYPE, "Payment Verification Key", _key_cbor_hex(keys.payment_vkey)),
        secret=False,
    )
    _write(directory / "payment.addr", keys.address_text(network), secret=False)


def _read_envelope(path: Path, expected_types: tuple[str, ...]) -> bytes:
    """Return the 32-byte key of an envelope, with errors that name the file and the problem."""
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
    try:
        key = bytes.fromhex(cbor_hex[4:]) if cbor_hex.startswith("5820") and len(cbor_hex) == 68 else b""
    except ValueError:
        key = b""
    if len(key) != 32:  # fromhex skips whitespace, so a length check alone is not enough
        raise errors.ConfigError(f"key file {path}: cborHex must be 5820 followed by 32 bytes of hex")
    return key


def load_signing_key(path: Path, expected_type: str) -> bytes:
    """Load one Ed25519 signing-key envelope (Hydra or payment): its 32-byte seed."""
    return _read_envelope(path, (expected_type,))


def load_party_keys(directory: Path, name: str | None = None) -> PartyKeys:
    """Load the keys :func:`save_party_keys` wrote; checks each vk matches its sk."""
    keys = PartyKeys(
        name=name or directory.name,
        hydra_seed=load_signing_key(directory / "hydra.sk", HYDRA_SK_TYPE),
        payment_seed=load_signing_key(directory / "payment.sk", PAYMENT_SK_TYPE),
    )
    for file, vk in (("hydra.vk", keys.hydra_vkey), ("payment.vk", keys.payment_vkey)):
        path = directory / file
        if path.exists() and _read_envelope(path, (HYDRA_VK_TYPE, PAYMENT_VK_TYPE, "")) != vk:
            raise errors.ConfigError(f"key file {path} does not match its signing key; regenerate the pair")
    return keys
