"""The audit's rules on a ledger record built from real, signed announcement txs and real buckets.

Each case starts from an honest 3-party, 2-round federation whose global weights the test
derives itself (FedAvg in float64), then changes one thing: an object, a tx, a start digest,
a final claim. The audit must name the round, the party and the cause, and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pycardano
import pytest
import safetensors.torch
import torch
from rich.console import Console
from typer.testing import CliRunner

from hydrafed import errors
from hydrafed.cli import app
from hydrafed.hydra import keys, messages, tx
from hydrafed.hydra import utxo as utxo_mod
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS
from hydrafed.rounds import spec_hash
from hydrafed.spec import FederationSpec, StorageBackend, StorageSpec, TrainingSpec
from hydrafed.storage import LocalStore, sha256_file
from hydrafed.worker import audit_inputs, audit_output
from hydrafed.worker.aggregation import Update
from hydrafed.worker.aggregation.fedavg import fedavg
from hydrafed.worker.audit import AuditInput, check_final, run_audit
from hydrafed.worker.party import state_sha256

pytestmark = pytest.mark.unit

FED = "audited"
NAMES = ("alice", "bob", "carol")
HEAD = "ab" * 28


@dataclasses.dataclass
class Federation:
    """An honest run's ingredients; ``announcements`` in ledger order, editable by a case."""

    spec: FederationSpec
    keys: dict[str, keys.PartyKeys]
    buckets: Path
    announcements: list[tuple[str, tx.Announcement | tx.Cutoff]]
    """(signing party, announcement or cutoff) in ledger order."""
    globals: list[str]
    """state_sha256 of the initial weights, then of each round's aggregate."""
    initial: dict[str, torch.Tensor]

    def inputs(self, claims: dict[str, str] | None = None) -> AuditInput:
        outputs: list[messages.ServerOutput] = [messages.parse_output({"tag": "HeadIsOpen", "headId": HEAD})]
        for number, (signer, ann) in enumerate(self.announcements, start=1):
            outputs.append(_snapshot(number, _envelope(self.keys[signer], ann)))
        return AuditInput(
            fed=FED,
            spec=self.spec,
            members={n: self.keys[n].participant_id for n in NAMES},
            outputs=outputs,
            stores={n: LocalStore(self.buckets, read_prefix=(n, f"{FED}/rounds/")) for n in NAMES},
            final_claims={"report": self.globals[-1]} if claims is None else claims,
        )

    def object(self, round_no: int, party: str) -> Path:
        return self.buckets / party / FED / "rounds" / str(round_no) / f"{party}.safetensors"


def _envelope(signer: keys.PartyKeys, ann: tx.Announcement | tx.Cutoff) -> dict[str, str]:
    utxo = {
        "11" * 32 + "#0": utxo_mod.txout_to_json(pycardano.TransactionOutput(signer.address(), 50_000_000))
    }
    if isinstance(ann, tx.Cutoff):
        return tx.build_cutoff_tx(
            ann, keys=signer, utxo=utxo, protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS
        )
    return tx.build_announcement_tx(
        ann, keys=signer, utxo=utxo, peer_addresses=[], protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS
    )


def _snapshot(number: int, envelope: dict[str, str]) -> messages.ServerOutput:
    return messages.parse_output(
        {
            "tag": "SnapshotConfirmed",
            "headId": HEAD,
            "snapshot": {"headId": HEAD, "version": 1, "number": number, "confirmed": [envelope]},
            "signatures": {"multiSignature": []},
        }
    )


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    # Prepare an honest run: every party "trains" (a seeded perturbation), uploads, announces.
    buckets = tmp_path / "buckets"
    spec = FederationSpec(
        training=TrainingSpec(rounds=2), storage=StorageSpec(backend=StorageBackend.LOCAL, root=str(buckets))
    )
    party_keys = {n: keys.generate_party_keys(n) for n in NAMES}
    store = LocalStore(buckets)
    for name in NAMES:
        store.ensure_bucket(name)
    generator = torch.Generator().manual_seed(7)
    current = {"layer.bias": torch.zeros(3), "layer.weight": torch.randn(3, 4, generator=generator)}
    digests = [state_sha256(current)]
    initial = {k: v.clone() for k, v in current.items()}
    announcements = []
    for round_no in (1, 2):
        updates = []
        for index, name in enumerate(NAMES):
            trained = {k: v + torch.randn(v.shape, generator=generator) for k, v in current.items()}
            path = tmp_path / f"{name}-{round_no}.safetensors"
            safetensors.torch.save_file(trained, str(path))
            key = f"{FED}/rounds/{round_no}/{name}.safetensors"
            store.put(name, key, path)
            samples = 10 * (index + 1)
            updates.append(Update(name, samples, trained))
            ann = tx.Announcement(
                fed=FED,
                round=round_no,
                party=name,
                uri=store.uri(name, key),
                sha256=sha256_file(path),
                samples=samples,
                spec_hash=spec_hash(spec),
                start_sha256=digests[-1],
            )
            announcements.append((name, ann))
        current = fedavg(updates)
        digests.append(state_sha256(current))
    return Federation(spec, party_keys, buckets, announcements, digests, initial)


def _codes(report: Any) -> list[tuple[int, str, str]]:
    return [(f.round, f.party, f.code) for f in report.findings]


def test_an_honest_run_re_derives_bit_for_bit(federation: Federation) -> None:
    # Execute
    report = run_audit(federation.inputs())

    # Assert
    assert report.ok and report.findings == []
    assert [r.aggregate_sha256 for r in report.rounds] == federation.globals[1:]
    assert [r.start_sha256 for r in report.rounds] == federation.globals[:2]
    assert [r.members for r in report.rounds] == [list(NAMES)] * 2
    assert [r.reproduced for r in report.rounds] == [True, True]
    assert report.final_sha256 == federation.globals[-1] and report.head_id == HEAD
    assert audit_output.failure_line(report) is None
    data = report.to_json()
    assert data["ok"] is True and data["firstFailure"] is None and data["finalClaims"]["report"]["matches"]
    assert {a["object"] for r in data["rounds"] for a in r["announcements"]} == {"ok"}


def test_without_final_claims_the_last_round_is_unclaimed_but_green(federation: Federation) -> None:
    report = run_audit(federation.inputs(claims={}))
    assert report.ok and report.rounds[-1].reproduced is None


@pytest.mark.parametrize("change", ["tampered", "missing"])
def test_a_changed_object_is_named_by_round_and_party(federation: Federation, change: str) -> None:
    # Prepare
    path = federation.object(2, "bob")
    if change == "tampered":
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()

    # Execute
    report = run_audit(federation.inputs())

    # Assert: round 1 stays green; round 2 fails, naming the object first
    report_line = audit_output.failure_line(report)
    assert report.rounds[0].ok and not report.rounds[1].ok
    if change == "tampered":  # excluded by the workers' rule: the rest no longer gives the final model
        assert _codes(report) == [(2, "bob", "HashMismatch"), (2, "", "FinalMismatch")]
        assert report.rounds[1].reproduced is False
    else:  # unreadable: the round cannot be re-derived at all
        assert _codes(report) == [(2, "bob", "MissingObject")]
        assert report.rounds[1].aggregate_sha256 is None
    code = report.findings[0].code
    assert report.rounds[1].announcements[1].object == code
    assert report_line is not None and report_line.startswith(f"audit failed at round 2, party bob: {code}")


def test_an_update_every_party_excluded_is_audited_by_the_same_rule(federation: Federation) -> None:
    # Prepare: bob announced round 2 with a digest his object does not have; every party
    # excluded it (party.screen_update) and aggregated alice's and carol's alone
    index, (signer, ann) = next(
        (i, item)
        for i, item in enumerate(federation.announcements)
        if item[1].round == 2 and item[0] == "bob"
    )
    federation.announcements[index] = (signer, dataclasses.replace(ann, sha256="99" * 32))
    rest = []
    for name in ("alice", "carol"):
        tensors = safetensors.torch.load_file(str(federation.object(2, name)))
        samples = next(a.samples for _, a in federation.announcements if (a.round, a.party) == (2, name))
        rest.append(Update(name, samples, tensors))
    excluded_final = state_sha256(fedavg(rest))

    # Execute
    report = run_audit(federation.inputs(claims={"every party": excluded_final}))

    # Assert: the round reproduces without bob; bob's offence is named
    assert _codes(report) == [(2, "bob", "HashMismatch")]
    assert report.rounds[1].aggregate_sha256 == excluded_final and report.rounds[1].reproduced is True
    assert "excluded" in report.findings[0].message


def test_an_announcement_signed_by_another_member_is_a_forgery(federation: Federation) -> None:
    # Prepare: before carol's real round-2 announcement, bob signs one that claims to be carol's
    real = next(a for s, a in federation.announcements if a.round == 2 and a.party == "carol")
    forged = dataclasses.replace(real, sha256="00" * 32)
    index = federation.announcements.index(("carol", real))
    federation.announcements.insert(index, ("bob", forged))

    # Execute
    report = run_audit(federation.inputs())

    # Assert: the real one counted, the rounds re-derive, the forgery is named with its signer
    assert _codes(report) == [(2, "carol", "NotSigned")]
    (finding,) = report.findings
    assert finding.signed_by == ("bob",) and "signed by bob" in finding.message
    assert all(r.aggregate_sha256 == g for r, g in zip(report.rounds, federation.globals[1:], strict=True))
    assert not report.ok


def test_an_announcement_from_a_non_member_is_named(federation: Federation) -> None:
    outsider = keys.generate_party_keys("mallory")
    federation.keys["mallory"] = outsider
    first = federation.announcements[0][1]
    federation.announcements.append(("mallory", dataclasses.replace(first, party="mallory")))
    report = run_audit(federation.inputs())
    assert _codes(report) == [(1, "mallory", "NotMember")]
    assert report.findings[0].signed_by == (outsider.participant_id,)


def test_a_party_that_aggregated_differently_is_named_in_the_next_round(federation: Federation) -> None:
    # Prepare: carol announces round 2 as started from weights other than round 1's aggregate
    index, (signer, ann) = next(
        (i, item)
        for i, item in enumerate(federation.announcements)
        if item[1].round == 2 and item[0] == "carol"
    )
    federation.announcements[index] = (signer, dataclasses.replace(ann, start_sha256="12" * 32))

    # Execute
    report = run_audit(federation.inputs())

    # Assert
    assert _codes(report) == [(2, "carol", "StartMismatch")]
    assert "carol aggregated round 1 differently" in report.findings[0].message
    assert report.rounds[0].reproduced is True  # the others started from what the audit derives


def test_a_round_nobody_started_from_does_not_reproduce(federation: Federation) -> None:
    federation.announcements = [
        (s, dataclasses.replace(a, start_sha256="34" * 32) if a.round == 2 else a)
        for s, a in federation.announcements
    ]
    report = run_audit(federation.inputs())
    assert _codes(report) == [(1, "", "NotReproduced")]
    assert report.rounds[0].reproduced is False and not report.rounds[0].ok


def test_round_one_members_must_agree_on_the_initial_weights(federation: Federation) -> None:
    federation.announcements[0] = (
        "alice",
        dataclasses.replace(federation.announcements[0][1], start_sha256="56" * 32),
    )
    report = run_audit(federation.inputs())
    assert _codes(report) == [(1, "alice", "StartMismatch")]
    assert report.rounds[0].start_sha256 == federation.globals[0]


def test_older_announcements_without_a_start_are_findings(federation: Federation) -> None:
    federation.announcements = [
        (s, dataclasses.replace(a, start_sha256="")) for s, a in federation.announcements
    ]
    report = run_audit(federation.inputs())
    assert {(f.code, f.round) for f in report.findings} == {("NoStartHash", 1), ("NoStartHash", 2)}
    assert [r.aggregate_sha256 for r in report.rounds] == federation.globals[1:]


def test_a_missing_announcement_leaves_the_round_incomplete(federation: Federation) -> None:
    federation.announcements = [
        (s, a) for s, a in federation.announcements if (a.round, a.party) != (2, "bob")
    ]
    report = run_audit(federation.inputs())
    assert ("IncompleteRound", 2, "bob") in {(f.code, f.round, f.party) for f in report.findings}
    assert report.rounds[1].aggregate_sha256 is None and not report.ok


def test_a_final_claim_that_differs_is_named(federation: Federation) -> None:
    report = run_audit(
        federation.inputs(claims={"report.json bob": "78" * 32, "nft": federation.globals[-1]})
    )
    assert _codes(report) == [(2, "", "FinalMismatch")]
    assert "report.json bob" in report.findings[0].message
    assert report.rounds[-1].reproduced is True  # the NFT names what the ledger gives
    alone = run_audit(federation.inputs(claims={"report.json bob": "78" * 32}))
    assert alone.rounds[-1].reproduced is False


def test_check_final_is_the_seam_for_final_model_claims() -> None:
    assert check_final("aa" * 32, {"nft": "AA" * 32}) == []
    (finding,) = check_final("aa" * 32, {"nft": "bb" * 32})
    assert finding.code == "FinalMismatch" and "nft" in finding.message
    (finding,) = check_final(None, {"nft": "bb" * 32})
    assert "no final model" in finding.message


def test_ledger_files_are_json_lines_and_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps({"tag": "HeadIsOpen", "headId": HEAD}) + "\n\n" + "{not json\n")
    with pytest.raises(errors.ConfigError, match=r"history\.jsonl:3 is not JSON"):
        audit_inputs.read_ledger_file(path)
    with pytest.raises(errors.ConfigError, match="no such file"):
        audit_inputs.read_ledger_file(tmp_path / "absent.jsonl")
    path.write_text(json.dumps({"tag": "HeadIsOpen", "headId": HEAD}) + "\n")
    (output,) = audit_inputs.read_ledger_file(path)
    assert isinstance(output, messages.HeadIsOpen)


def test_member_key_hashes_come_from_addresses() -> None:
    party = keys.generate_party_keys("alice")
    assert audit_inputs.key_hash_of(str(party.address()), where="x") == party.participant_id
    with pytest.raises(errors.ConfigError, match="where: 'nope' is not a bech32"):
        audit_inputs.key_hash_of("nope", where="where")


def test_a_run_dir_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="simulate --out"):
        audit_inputs.from_run_dir(tmp_path / "absent")
    with pytest.raises(errors.ConfigError, match=r"report\.json is missing"):
        audit_inputs.from_run_dir(tmp_path)


def _announced(federation: Federation, round_no: int, party: str) -> tuple[int, tx.Announcement]:
    for index, (_, item) in enumerate(federation.announcements):
        if isinstance(item, tx.Announcement) and (item.round, item.party) == (round_no, party):
            return index, item
    raise AssertionError(f"no announcement of {party} for round {round_no}")


def test_offences_against_the_round_rules_are_named(federation: Federation) -> None:
    # Prepare: alice announces round 1 twice; the audit is told carol may claim at most 5 samples
    _, first = _announced(federation, 1, "alice")
    federation.announcements.append(("alice", dataclasses.replace(first, sha256="aa" * 32)))
    inputs = dataclasses.replace(federation.inputs(), max_samples={"carol": 5})

    # Execute
    report = run_audit(inputs)

    # Assert: the duplicate does not count; carol's claims (30 samples) exceed her cap every
    # round, so her announcements do not count either
    named = {(f.round, f.party, f.code) for f in report.findings}
    assert {
        (1, "alice", "Duplicate"),
        (1, "carol", "TooManySamples"),
        (2, "carol", "TooManySamples"),
    } <= named
    assert report.rounds[0].members == ["alice", "bob"] and not report.ok
    assert report.members == list(NAMES)
    console = Console(record=True, width=160)
    audit_output.print_report(report, console)
    assert "2, not carol" in console.export_text()


def test_a_quorum_round_is_cut_off_and_the_late_member_is_no_offender(federation: Federation) -> None:
    # Prepare: quorum 2; in round 2 alice cuts the round off after alice and bob: carol is late
    spec = federation.spec.model_copy(
        update={"round_policy": federation.spec.round_policy.model_copy(update={"quorum": 2})}
    )
    digest = spec_hash(spec)
    federation.spec = spec
    federation.announcements = [
        (s, dataclasses.replace(a, spec_hash=digest)) for s, a in federation.announcements
    ]
    index, _ = _announced(federation, 2, "carol")
    federation.announcements.insert(index, ("alice", tx.Cutoff(FED, 2, "alice", digest)))
    rest = []
    for name in ("alice", "bob"):
        _, ann = _announced(federation, 2, name)
        rest.append(Update(name, ann.samples, safetensors.torch.load_file(str(federation.object(2, name)))))
    cut_final = state_sha256(fedavg(rest))

    # Execute
    report = run_audit(federation.inputs(claims={"every party": cut_final}))

    # Assert
    assert report.ok, report.findings
    assert report.rounds[1].members == ["alice", "bob"] and report.final_sha256 == cut_final


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "RUN_DIR.*--worker-config FILE or --manifests FILE..., one of them"),
        (["run", "--worker-config", "w.yaml"], "only one"),
        (["run", "--nft-asset", "xyz"], "--nft-asset 'xyz': expected a sha256"),
        (["run", "--node-url", "http://x:1"], "--node-url: a simulate run's head is closed"),
    ],
)
def test_the_command_names_bad_input(args: list[str], message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        CliRunner().invoke(app, ["audit", *args], catch_exceptions=False)


def test_round_one_is_checked_against_the_initial_model_when_given(federation: Federation) -> None:
    # Execute: the true initial weights, then other ones
    honest = run_audit(dataclasses.replace(federation.inputs(), initial_state=federation.initial))
    other = {k: v + 1 for k, v in federation.initial.items()}
    wrong = run_audit(dataclasses.replace(federation.inputs(), initial_state=other))

    # Assert
    assert honest.ok and honest.rounds[0].start_sha256 == federation.globals[0]
    assert _codes(wrong) == [(1, "", "InitialMismatch")]


def test_a_snapshot_of_another_head_is_left_out_and_named(federation: Federation) -> None:
    # Prepare: the record also holds a snapshot of another head, with an announcement in it
    inputs = federation.inputs()
    signer, ann = federation.announcements[0]
    stray = messages.parse_output(
        {
            "tag": "SnapshotConfirmed",
            "headId": "cd" * 28,
            "snapshot": {"number": 99, "confirmed": [_envelope(federation.keys[signer], ann)]},
        }
    )

    # Execute
    report = run_audit(dataclasses.replace(inputs, outputs=[*inputs.outputs, stray]))

    # Assert
    assert _codes(report) == [(0, "", "OtherHead")]
    assert [r.aggregate_sha256 for r in report.rounds] == federation.globals[1:]


def test_manifests_must_hold_one_federation_and_exported_parties(tmp_path: Path) -> None:
    ledger = tmp_path / "history.jsonl"
    ledger.write_text("")
    path = tmp_path / "m.yaml"
    path.write_text("kind: Party\nmetadata: {name: a}\nspec: {federation: f, bucket: abc}\n")
    with pytest.raises(errors.ConfigError, match="one Federation manifest, found 0"):
        audit_inputs.from_manifests([path], ledger=ledger)
    with pytest.raises(errors.ConfigError, match="--ledger FILE or --node-url URL"):
        audit_inputs.from_manifests([path])
    path.write_text(
        "kind: Federation\nmetadata: {name: f}\nspec: {}\n---\n"
        "kind: Party\nmetadata: {name: a}\nspec: {federation: f, bucket: abc, local: true}\n"
    )
    with pytest.raises(errors.ConfigError, match=r"Party a: spec\.cardanoVkey and spec\.readGrantSecretRef"):
        audit_inputs.from_manifests([path], ledger=ledger)
