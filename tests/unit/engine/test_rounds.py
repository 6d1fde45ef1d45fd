"""Round membership from decoded announcements: what counts, what is ignored, and the order."""

from __future__ import annotations

from typing import Any

import pytest

from hydrafed.hydra import keys, messages, tx
from hydrafed.rounds import RoundBook, spec_hash
from hydrafed.spec import FederationSpec, StorageSpec, TrainingSpec

pytestmark = pytest.mark.unit

PARAMS: dict[str, Any] = {"txFeeFixed": 0, "txFeePerByte": 0, "utxoCostPerByte": 4310}


@pytest.fixture(scope="module")
def party_keys() -> dict[str, keys.PartyKeys]:
    return {name: keys.generate_party_keys(name) for name in ("alice", "bob", "carol")}


def _utxo(k: keys.PartyKeys, n: int = 0) -> dict[str, Any]:
    return {f"{n:02x}" * 32 + "#0": {"address": str(k.address()), "value": {"lovelace": 100_000_000}}}


def _envelope(
    k: keys.PartyKeys,
    *,
    round_no: int = 1,
    party: str | None = None,
    fed: str = "fed",
    digest: str = "ab",
    utxo_index: int = 0,
) -> dict[str, str]:
    ann = tx.Announcement(
        fed=fed,
        round=round_no,
        party=party or k.name,
        uri=f"local://{k.name}/fed/rounds/{round_no}/{k.name}.safetensors",
        sha256="0" * 64,
        samples=100,
        metrics={"loss": 0.5},
        spec_hash=digest,
    )
    return tx.build_announcement_tx(
        ann, keys=k, utxo=_utxo(k, utxo_index), peer_addresses=[], protocol_parameters=PARAMS
    )


def _book(party_keys: dict[str, keys.PartyKeys]) -> RoundBook:
    return RoundBook("fed", "ab", {n: k.participant_id for n, k in party_keys.items()})


def test_round_completes_when_every_member_announced_sorted_by_party(
    party_keys: dict[str, keys.PartyKeys],
) -> None:
    # Prepare
    book = _book(party_keys)
    carol, alice, bob = (_envelope(party_keys[n]) for n in ("carol", "alice", "bob"))

    # Execute
    first = book.observe_envelopes([carol, alice], snapshot=1)

    # Assert
    assert [e.announcement.party for e in first] == ["carol", "alice"]
    assert not book.is_complete(1)
    assert book.announced(1) == ["alice", "carol"]
    book.observe_envelopes([bob], snapshot=2)
    assert book.is_complete(1)
    entries = book.round_announcements(1)
    assert [e.announcement.party for e in entries] == ["alice", "bob", "carol"]
    assert [e.snapshot for e in entries] == [1, 2, 1]
    assert entries[1].tx_id == bob["txId"]


def test_duplicates_foreign_and_forged_announcements_are_ignored(
    party_keys: dict[str, keys.PartyKeys],
) -> None:
    # Prepare
    book = _book(party_keys)
    outsider = keys.generate_party_keys("mallory")
    alice = _envelope(party_keys["alice"])
    envelopes = [
        alice,
        alice,  # the same tx seen twice (replayed history): counted once, silently
        _envelope(party_keys["alice"], utxo_index=1),  # a second announcement for the same round
        _envelope(party_keys["bob"], fed="other"),  # another federation
        _envelope(party_keys["bob"], digest="cd"),  # another spec
        _envelope(outsider),  # not a member
        _envelope(outsider, party="carol"),  # claims to be carol, signed by mallory
        {"type": "Tx ConwayEra", "txId": "ff" * 32, "cborHex": "84a0a0f5f6"},  # not an announcement
    ]

    # Execute
    counted = book.observe_envelopes(envelopes, snapshot=1)

    # Assert
    assert [e.tx_id for e in counted] == [alice["txId"]]
    assert book.announced(1) == ["alice"]
    reasons = [ignored.reason for ignored in book.ignored]
    assert len(reasons) == 5
    assert "already announced round 1" in reasons[0]
    assert "federation 'other'" in reasons[1]
    assert "spec hash cd" in reasons[2]
    assert "'mallory' is not a member" in reasons[3]
    assert "not signed by carol" in reasons[4]
    # A spec mismatch is pinned on a party only when that party's key signed the announcement.
    assert [(i.code, i.party) for i in book.ignored] == [
        ("Duplicate", "alice"),
        ("OtherFederation", "bob"),
        ("SpecMismatch", "bob"),
        ("NotMember", "mallory"),
        ("NotSigned", "carol"),
    ]


def test_rounds_are_kept_apart_and_snapshots_feed_the_book(party_keys: dict[str, keys.PartyKeys]) -> None:
    # Prepare
    book = _book(party_keys)
    envs = [_envelope(k, round_no=2) for k in party_keys.values()]
    snapshot = messages.SnapshotConfirmed.model_validate(
        {"tag": "SnapshotConfirmed", "headId": "00" * 28, "snapshot": {"number": 7, "confirmed": envs}}
    )

    # Execute
    counted = book.observe(snapshot)

    # Assert
    assert len(counted) == 3
    assert book.is_complete(2) and not book.is_complete(1)
    assert {e.snapshot for e in book.round_announcements(2)} == {7}
    assert book.observe(messages.parse_output({"tag": "Greetings"})) == []


def test_spec_hash_ignores_the_local_storage_root_but_not_training() -> None:
    base = FederationSpec(storage=StorageSpec(backend="local", root="/tmp/a"))
    moved = FederationSpec(storage=StorageSpec(backend="local", root="/srv/b"))
    retrained = FederationSpec(
        training=TrainingSpec(learning_rate=0.5), storage=StorageSpec(backend="local", root="/tmp/a")
    )
    assert spec_hash(base) == spec_hash(moved)
    assert spec_hash(base) != spec_hash(retrained)
    assert len(spec_hash(base)) == 16


def _cutoff(
    k: keys.PartyKeys, *, party: str | None = None, round_no: int = 1, utxo_index: int = 9
) -> dict[str, str]:
    cut = tx.Cutoff(fed="fed", round=round_no, party=party or k.name, spec_hash="ab")
    return tx.build_cutoff_tx(cut, keys=k, utxo=_utxo(k, utxo_index), protocol_parameters=PARAMS)


def test_a_signed_cutoff_tx_fixes_a_quorum_round_and_a_forged_one_does_not(
    party_keys: dict[str, keys.PartyKeys],
) -> None:
    # Prepare: quorum 2; bob forges a cutoff in carol's name before the real one
    book = RoundBook(
        "fed", "ab", {n: k.participant_id for n, k in party_keys.items()}, total_rounds=3, quorum=2
    )
    alice, bob = (_envelope(party_keys[n]) for n in ("alice", "bob"))
    forged = _cutoff(party_keys["bob"], party="carol", utxo_index=7)
    real = _cutoff(party_keys["carol"])
    late = _envelope(party_keys["carol"], utxo_index=3)

    # Execute
    book.observe_envelopes([alice, bob, forged, real, late], snapshot=4)

    # Assert
    assert tx.decode_cutoff(real) == tx.Cutoff("fed", 1, "carol", "ab")
    assert tx.decode_announcement(real) is None and tx.decode_cutoff(alice) is None
    assert book.cutoffs[1].tx_id == real["txId"]
    assert book.is_complete(1) and book.announced(1) == ["alice", "bob"]
    assert [(i.code, i.party) for i in book.ignored] == [("NotSigned", "carol"), ("Late", "carol")]
    assert [type(item).__name__ for item in book.stream] == [
        "ConfirmedAnnouncement", "ConfirmedAnnouncement", "ConfirmedCutoff", "ConfirmedAnnouncement"
    ]  # fmt: skip
