"""Pure parts of the operator: membership rules, conditions, object names, worker config."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hydrafed import spec
from hydrafed.hydra import keys as keys_mod
from hydrafed.operator import children, conditions, names
from hydrafed.operator.membership import (
    PartyObject,
    Problem,
    check_federation,
    initiator,
    local_member,
    local_party,
    remote_member,
)

pytestmark = pytest.mark.unit


def _party(name: str, *, local: bool = False, grant: bool = True) -> tuple[PartyObject, keys_mod.PartyKeys]:
    keys = keys_mod.generate_party_keys(name)
    body: dict[str, object] = {"federation": "fed", "bucket": f"{name}-b", "local": local}
    if not local:
        body |= {
            "hydraVkey": keys.hydra_vkey_hex,
            "cardanoVkey": bytes(keys.payment_verification_key.payload).hex(),
            "peerAddress": f"{name}.example.org:5001",
        }
        if grant:
            body["readGrantSecretRef"] = {"name": f"{name}-grant"}
    return PartyObject(name, "ns", f"uid-{name}", spec.PartySpec.model_validate(body), {}), keys


def test_exactly_one_local_party_is_required() -> None:
    alice, _ = _party("alice", local=True)
    bob, _ = _party("bob", local=True)
    carol, _ = _party("carol")
    assert local_party("fed", [carol, alice]) is alice
    two = local_party("fed", [alice, bob, carol])
    none = local_party("fed", [carol])
    empty = local_party("fed", [])
    assert isinstance(two, Problem) and two.reason == "TwoLocalParties" and "alice, bob" in two.message
    assert isinstance(none, Problem) and none.reason == "NoLocalParty" and "carol" in none.message
    assert isinstance(empty, Problem) and "spec.federation: fed" in empty.message


def test_the_deposit_must_pay_every_peer_and_keep_change() -> None:
    parties = [_party(n)[0] for n in ("bob", "carol", "dave")] + [_party("alice", local=True)[0]]
    enough = spec.FederationSpec.model_validate({"head": {"depositLovelace": 4_000_000}})
    short = spec.FederationSpec.model_validate({"head": {"depositLovelace": 3_999_999}})
    assert check_federation("fed", enough, parties) == []
    (problem,) = check_federation("fed", short, parties)
    assert problem.reason == "DepositTooSmall" and "depositLovelace >= 4000000" in problem.message


def test_a_remote_party_without_its_grant_is_named() -> None:
    bob, _ = _party("bob", grant=False)
    (problem,) = check_federation("fed", spec.FederationSpec(), [bob, _party("alice", local=True)[0]])
    assert problem.reason == "MissingReadGrant" and "Party bob" in problem.message


def test_the_initiator_is_the_same_on_every_cluster() -> None:
    alice, alice_keys = _party("alice", local=True)
    bob, _ = _party("bob")
    members = [remote_member(bob, "testnet"), local_member(alice, alice_keys, "testnet")]
    assert initiator(members) == initiator(reversed(members)) == "alice"
    assert members[1].address == str(alice_keys.address("testnet"))
    assert members[1].key_hash == alice_keys.participant_id


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    first = conditions.put([], "HeadOpen", False, "Opening", "waiting")
    then = first[0].last_transition_time
    later = conditions.put(
        [first[0].model_copy(update={"last_transition_time": then - dt.timedelta(hours=1)})],
        "HeadOpen",
        False,
        "Opening",
        "still waiting",
    )
    flipped = conditions.put(later, "HeadOpen", True, "HeadIsOpen")
    assert later[0].last_transition_time == then - dt.timedelta(hours=1)
    assert later[0].message == "still waiting"
    assert flipped[0].status == spec.ConditionStatus.TRUE and flipped[0].last_transition_time >= then


def test_long_names_stay_dns_labels_and_distinct() -> None:
    a = names.node("f" * 40, "p" * 30)
    b = names.node("f" * 40, "p" * 29 + "q")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert names.node("mnist", "alice") == "mnist-alice-hydra"


def test_the_worker_config_names_secrets_only_by_path() -> None:
    alice, alice_keys = _party("alice", local=True)
    bob, _ = _party("bob")
    ctx = children.LocalParty(
        federation="fed",
        namespace="ns",
        federation_uid="uid",
        spec=spec.FederationSpec(),
        party=alice,
        me=local_member(alice, alice_keys, "testnet"),
        peers=(remote_member(bob, "testnet"),),
        peer_parties=(bob,),
        key_secret="alice-keys",
        protocol_parameters={},
    )
    config_map = children.worker_config_map(ctx)
    job = children.worker_job(ctx, "img", children.config_hash(config_map))
    text = json.dumps(config_map)
    config = spec.WorkerConfig.model_validate_json(config_map["data"]["config.json"])
    assert alice_keys.payment_signing_key.to_cbor_hex()[4:] not in text
    assert [m.grant_file for m in config.members] == [None, "/var/run/hydrafed/grants/bob"]
    assert config.party_index == 0 and config.api_url.endswith(".ns.svc:4001")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["grants"]["projected"]["sources"][0]["secret"]["name"] == "bob-grant"
    container = job["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    # a read-only root filesystem still needs a writable /tmp for tempfile and matplotlib
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert job["metadata"]["annotations"][names.CONFIG_HASH] == children.config_hash(config_map)
