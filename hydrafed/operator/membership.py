"""Who is in a Federation, as the Party objects in its namespace say, and what is wrong with them.

Pure functions over parsed objects: every problem comes back as a :class:`Problem` whose message
names the object, the field and the fix, so status, Events and logs all say the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pycardano

from hydrafed import spec
from hydrafed.hydra import keys as keys_mod

MAX_PARTIES = 29
"""hydra-node's limit on the parties of one head."""
MIN_CHANGE_LOVELACE = 1_000_000
"""What an announcement leaves at the sender's address at least: the change output's min-ADA."""


@dataclass(frozen=True)
class Problem:
    """Why a Federation cannot go on, for a condition: a CamelCase reason and a message."""

    reason: str
    message: str


@dataclass(frozen=True)
class PartyObject:
    """A Party as the operator's index holds it: name, parsed spec, raw status."""

    name: str
    namespace: str
    uid: str
    spec: spec.PartySpec
    status: Mapping[str, Any]


@dataclass(frozen=True)
class Member:
    """A member's public facts, derived from its verification keys."""

    name: str
    hydra_vkey: str
    cardano_vkey: str
    address: str
    key_hash: str
    bucket: str
    peer_address: str | None
    max_samples: int | None = None
    """The Party's spec.maxSamples: its announcements may claim no more."""


def network_of(head: spec.HeadSpec) -> keys_mod.NetworkName:
    """The address network of a head: mainnet or one of the test networks."""
    return "mainnet" if head.network == "mainnet" else "testnet"


def member_from_vkeys(
    name: str,
    hydra_vkey: str,
    cardano_vkey: str,
    bucket: str,
    peer: str | None,
    network: keys_mod.NetworkName,
    max_samples: int | None = None,
) -> Member:
    vk = pycardano.PaymentVerificationKey(bytes.fromhex(cardano_vkey))
    return Member(
        name=name,
        hydra_vkey=hydra_vkey,
        cardano_vkey=cardano_vkey,
        address=str(keys_mod.payment_address(vk, network)),
        key_hash=bytes(vk.hash().payload).hex(),
        bucket=bucket,
        peer_address=peer,
        max_samples=max_samples,
    )


def parse_party(obj: Mapping[str, Any]) -> PartyObject | Problem:
    """A Party object from the API, or the problem with its spec (the API server checked most)."""
    meta = obj.get("metadata", {})
    name = str(meta.get("name", ""))
    try:
        party_spec = spec.PartySpec.model_validate(obj.get("spec") or {})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return Problem("InvalidParty", f"Party {name}: {exc}".splitlines()[0])
    return PartyObject(
        name=name,
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        spec=party_spec,
        status=obj.get("status") or {},
    )


def local_party(federation: str, parties: Iterable[PartyObject]) -> PartyObject | Problem:
    """The one local Party of the Federation, or why there is none."""
    parties = sorted(parties, key=lambda p: p.name)
    if not parties:
        return Problem(
            "NoParties",
            f"no Party refers to Federation {federation}: apply one Party per member "
            f"(spec.federation: {federation}), exactly one of them with local: true",
        )
    local = [p for p in parties if p.spec.local]
    if not local:
        return Problem(
            "NoLocalParty",
            f"none of the Parties of Federation {federation} ({', '.join(p.name for p in parties)}) has "
            "local: true: set spec.local: true on this cluster's own Party",
        )
    if len(local) > 1:
        return Problem(
            "TwoLocalParties",
            f"Parties {', '.join(p.name for p in local)} of Federation {federation} all have local: true: "
            "a cluster runs exactly one party; set local: false on the others (remote parties need "
            "the facts from their `hydrafed party export`)",
        )
    return local[0]


def check_federation(fed: str, fed_spec: spec.FederationSpec, parties: list[PartyObject]) -> list[Problem]:
    """What the Federation's own spec and its remote Parties lack before a head can open."""
    problems = []
    if len(parties) > MAX_PARTIES:
        problems.append(
            Problem(
                "TooManyParties",
                f"Federation {fed} has {len(parties)} Parties; a Hydra head holds at most {MAX_PARTIES}: "
                "split the federation",
            )
        )
    peers = len(parties) - 1
    needed = peers * fed_spec.head.announce_lovelace + MIN_CHANGE_LOVELACE
    if peers > 0 and fed_spec.head.deposit_lovelace < needed:
        problems.append(
            Problem(
                "DepositTooSmall",
                f"Federation {fed}: spec.head.depositLovelace {fed_spec.head.deposit_lovelace} cannot pay "
                f"{peers} peers {fed_spec.head.announce_lovelace} lovelace each per round and keep "
                f"{MIN_CHANGE_LOVELACE} of change: create the Federation with depositLovelace >= {needed} "
                "or a lower announceLovelace",
            )
        )
    for party in parties:
        if not party.spec.local and party.spec.read_grant_secret_ref is None:
            problems.append(
                Problem(
                    "MissingReadGrant",
                    f"Party {party.name} has no spec.readGrantSecretRef: apply the Secret from "
                    f"{party.name}'s `hydrafed party export` and name it in spec.readGrantSecretRef",
                )
            )
    return problems


def remote_member(party: PartyObject, network: keys_mod.NetworkName) -> Member:
    """A remote party's facts (the API server guarantees its vkeys and peer address are set)."""
    assert party.spec.hydra_vkey and party.spec.cardano_vkey
    return member_from_vkeys(
        party.name,
        party.spec.hydra_vkey,
        party.spec.cardano_vkey,
        party.spec.bucket,
        party.spec.peer_address,
        network,
        party.spec.max_samples,
    )


def local_member(party: PartyObject, keys: keys_mod.PartyKeys, network: keys_mod.NetworkName) -> Member:
    return member_from_vkeys(
        party.name,
        keys.hydra_vkey_hex,
        bytes(keys.payment_verification_key.payload).hex(),
        party.spec.bucket,
        party.spec.peer_address,
        network,
        party.spec.max_samples,
    )


def initiator(members: Iterable[Member]) -> str:
    """The party that sends Init: the first name in sorted order, the same on every cluster."""
    return min(m.name for m in members)
