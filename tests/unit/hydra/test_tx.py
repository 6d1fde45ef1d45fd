"""Announcement txs: built with pycardano, accepted by the ledger rules, decoded back."""

from __future__ import annotations

from typing import Any

import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import keys, ledger, tx
from hydrafed.hydra import utxo as utxo_mod
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS

pytestmark = pytest.mark.unit

PARAMS = ledger.LedgerParams.from_json(DEFAULT_PROTOCOL_PARAMETERS)


def _setup(
    lovelace: int = 50_000_000,
) -> tuple[keys.PartyKeys, list[keys.PartyKeys], dict[str, dict[str, Any]]]:
    me = keys.generate_party_keys("me")
    peers = [keys.generate_party_keys(f"p{i}") for i in range(3)]
    head_utxo = {
        "11" * 32 + "#0": utxo_mod.txout_to_json(pycardano.TransactionOutput(me.address(), lovelace))
    }
    return me, peers, head_utxo


def _announcement(**kw: object) -> tx.Announcement:
    base: dict[str, object] = {
        "fed": "mnist-demo",
        "round": 3,
        "party": "me",
        "uri": "sj://bucket-of-me/rounds/3/" + "very-long-object-name-" * 5 + ".safetensors",
        "sha256": "ab" * 32,
        "samples": 1234,
        "metrics": {"accuracy": 0.9375, "loss": 0.25},
        "spec_hash": "cd" * 32,
        "start_sha256": "ef" * 32,
    }
    base.update(kw)
    return tx.Announcement(**base)  # type: ignore[arg-type]


def _announcement_tx(
    me: keys.PartyKeys,
    head_utxo: dict[str, dict[str, Any]],
    peers: list[keys.PartyKeys] | tuple[()] = (),
    **kw: Any,
) -> dict[str, str]:
    """``_announcement()`` built by ``me`` paying ``peers``, with the default protocol parameters."""
    return tx.build_announcement_tx(
        _announcement(),
        keys=me,
        utxo=head_utxo,
        peer_addresses=[str(p.address()) for p in peers],
        protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
        **kw,
    )


def test_announcement_round_trip_passes_the_ledger() -> None:
    # Prepare
    me, peers, head_utxo = _setup()
    ann = _announcement()

    # Execute
    env = tx.build_announcement_tx(
        ann,
        keys=me,
        utxo=head_utxo,
        peer_addresses=[str(p.address()) for p in peers],
        protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
    )
    valid = ledger.validate_tx(
        env["cborHex"], utxo_mod.utxo_from_json(head_utxo), PARAMS, pycardano.Network.TESTNET, env["txId"]
    )

    # Assert
    assert env["type"] == "Tx ConwayEra" and env["description"] == ""
    assert tx.decode_announcement(env) == ann
    assert valid.tx_id == env["txId"]
    amounts = sorted(out.amount for out in valid.produced.values())
    assert amounts[:3] == [1_000_000] * 3
    assert amounts[3] == 50_000_000 - 3_000_000
    assert tx.tx_signers(env) == {me.participant_id}
    # pycardano's own decoder reads the hand-encoded CBOR as the same Conway tx.
    decoded = pycardano.Transaction.from_cbor(env["cborHex"])
    assert decoded.id.payload.hex() == env["txId"]
    assert decoded.transaction_body.fee == ledger.min_fee(len(bytes.fromhex(env["cborHex"])), PARAMS)
    assert [str(o.address) for o in decoded.transaction_body.outputs[:3]] == [str(p.address()) for p in peers]


def test_long_strings_are_split_at_64_bytes() -> None:
    text = "é" * 70  # 140 bytes; must not be cut inside a character
    chunks = tx.split_string(text)
    assert isinstance(chunks, list)
    assert all(len(c.encode()) <= 64 for c in chunks)
    assert "".join(chunks) == text
    assert tx.split_string("short") == "short"


def test_fee_follows_protocol_parameters() -> None:
    me, peers, head_utxo = _setup()
    params = {**DEFAULT_PROTOCOL_PARAMETERS, "txFeeFixed": 155381, "txFeePerByte": 44}
    env = tx.build_announcement_tx(
        _announcement(),
        keys=me,
        utxo=head_utxo,
        peer_addresses=[str(peers[0].address())],
        protocol_parameters=params,
    )
    decoded = pycardano.Transaction.from_cbor(env["cborHex"])
    size = len(bytes.fromhex(env["cborHex"]))
    assert decoded.transaction_body.fee >= 155381 + 44 * size
    ledger.validate_tx(
        env["cborHex"],
        utxo_mod.utxo_from_json(head_utxo),
        ledger.LedgerParams.from_json(params),
        pycardano.Network.TESTNET,
    )


def test_below_min_ada_per_peer_is_a_config_error() -> None:
    me, peers, head_utxo = _setup()
    with pytest.raises(errors.ConfigError, match="lovelace_per_peer"):
        tx.build_announcement_tx(
            _announcement(),
            keys=me,
            utxo=head_utxo,
            peer_addresses=[str(peers[0].address())],
            lovelace_per_peer=500_000,
            protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
        )


def test_insufficient_funds_and_no_funds_are_head_errors() -> None:
    me, peers, head_utxo = _setup(lovelace=3_000_000)
    with pytest.raises(errors.HeadError, match="commit more funds"):
        tx.build_announcement_tx(
            _announcement(),
            keys=me,
            utxo=head_utxo,
            peer_addresses=[str(p.address()) for p in peers],
            protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
        )
    with pytest.raises(errors.HeadError, match="commit funds first"):
        tx.build_announcement_tx(
            _announcement(),
            keys=me,
            utxo={},
            peer_addresses=[],
            protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
        )


def test_bad_announcement_fields_name_the_field() -> None:
    with pytest.raises(errors.ConfigError, match=r"announcement\.sha256"):
        _announcement(sha256="xyz")
    with pytest.raises(errors.ConfigError, match=r"announcement\.metrics\.loss"):
        _announcement(metrics={"loss": float("nan")})


def test_decode_returns_none_for_other_txs_and_malformed_metadata() -> None:
    me, _peers, head_utxo = _setup()
    plain = _announcement_tx(me, head_utxo, label=674)
    assert tx.decode_announcement(plain) is None  # other label
    aux = pycardano.AuxiliaryData(
        pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: {"round": "three"}}))
    )
    body = pycardano.TransactionBody(inputs=[utxo_mod.parse_txin("11" * 32 + "#0")], outputs=[], fee=0)
    bad = pycardano.Transaction(body, pycardano.TransactionWitnessSet(), auxiliary_data=aux)
    assert tx.decode_announcement({"cborHex": bad.to_cbor_hex()}) is None
    assert tx.decode_announcement({"cborHex": "zz"}) is None
    assert tx.decode_announcement({}) is None


def test_start_sha256_is_optional_on_the_wire_and_checked_when_given() -> None:
    # Prepare: an announcement without the field, as hydrafed wrote them before it existed
    me, _peers, head_utxo = _setup()
    old = _announcement(start_sha256="")

    # Execute
    env = tx.build_announcement_tx(
        old, keys=me, utxo=head_utxo, peer_addresses=[], protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS
    )

    # Assert: no key on the wire, decoded as "" (not announced); a bad value names the field
    assert "startSha256" not in tx.announcement_metadata(old)
    assert tx.announcement_metadata(_announcement())["startSha256"] == "ef" * 32
    decoded = tx.decode_announcement(env)
    assert decoded == old and decoded is not None and decoded.start_sha256 == ""
    with pytest.raises(errors.ConfigError, match=r"announcement\.start_sha256"):
        _announcement(start_sha256="AB" * 32)


def test_tx_signers_of_unreadable_envelopes_are_empty() -> None:
    # A peer's tx that does not decode names no signer, so the round book never counts it.
    assert tx.tx_signers({}) == set()
    assert tx.tx_signers({"cborHex": "zz"}) == set()
    assert tx.tx_signers({"cborHex": "84a0a0f5f6"[:-2]}) == set()
    assert tx.tx_signers({"cborHex": "84a0a0f5f6"}) == set()  # well-formed, no witnesses


def test_outputs_with_tokens_or_datums_are_not_spent() -> None:
    # A peer could pay us an output with a datum or a token; our announcements must still build.
    me, peers, head_utxo = _setup()
    own = str(me.address())
    head_utxo["22" * 32 + "#0"] = {"address": own, "value": {"lovelace": 90_000_000}, "inlineDatum": 1}
    head_utxo["33" * 32 + "#1"] = {"address": own, "value": {"lovelace": 80_000_000, "ab" * 28: {"": 1}}}

    env = _announcement_tx(me, head_utxo, peers)

    spent = pycardano.Transaction.from_cbor(env["cborHex"]).transaction_body.inputs
    assert [i.transaction_id.payload.hex() for i in spent] == ["11" * 32]


def test_decode_confirmed_reads_claim_and_signers_as_the_single_decoders_do() -> None:
    # Prepare: an announcement and a cutoff by the same party, and txs that carry no claim
    me, peers, head_utxo = _setup()
    ann = _announcement_tx(me, head_utxo, peers)
    cut = tx.build_cutoff_tx(
        tx.Cutoff(fed="mnist-demo", round=3, party="me", spec_hash="cd" * 32),
        keys=me,
        utxo=head_utxo,
        protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
    )
    other_label = _announcement_tx(me, head_utxo, label=674)

    # Execute
    decoded_ann, decoded_cut = tx.decode_confirmed(ann), tx.decode_confirmed(cut)

    # Assert
    assert decoded_ann == tx.DecodedTx(_announcement(), frozenset({me.participant_id}))
    assert decoded_ann.claim == tx.decode_announcement(ann) and tx.decode_cutoff(ann) is None
    assert decoded_cut is not None and decoded_cut.claim == tx.decode_cutoff(cut)
    assert isinstance(decoded_cut.claim, tx.Cutoff) and tx.decode_announcement(cut) is None
    assert decoded_cut.signers == tx.tx_signers(cut) == {me.participant_id}
    for no_claim in (other_label, {"cborHex": "zz"}, {"cborHex": "84a0a0f5f6"}, {}):
        assert tx.decode_confirmed(no_claim) is None
