"""Broken transactions get TxInvalid with the ledger's reason and leave the head's UTxO untouched."""

from __future__ import annotations

import pycardano
import pytest

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import confirms
from tests.unit.hydra.helpers import make_tx

pytestmark = pytest.mark.integration


def _own_input(utxo: dict[str, dict[str, object]], owner: keys.PartyKeys) -> tuple[str, int]:
    for key, out in utxo.items():
        if out["address"] == str(owner.address()):
            value = out["value"]
            assert isinstance(value, dict)
            return key, int(value["lovelace"])
    raise AssertionError("owner has no UTxO")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad_signature", "InvalidWitnessesUTXOW"),
        ("double_spend", "BadInputsUTxO"),
        ("unbalanced", "ValueNotConservedUTxO"),
        ("below_min_ada", "BabbageOutputTooSmallUTxO"),
        ("wrong_metadata_hash", "ConflictingMetadataHash"),
    ],
)
async def test_invalid_tx_is_rejected_and_changes_nothing(
    case: str,
    reason: str,
    open_head: tuple[Devnet, list[client_mod.HydraClient], list[keys.PartyKeys]],
) -> None:
    # Prepare
    _, clients, (alice, bob, _) = open_head
    utxo = await clients[0].get_snapshot_utxo()
    key, amount = _own_input(utxo, alice)
    pay = [(bob.address(), 2_000_000), (alice.address(), amount - 2_000_000)]
    if case == "bad_signature":
        env = make_tx(alice, [key], pay, signing_key=bob.payment_signing_key)
    elif case == "double_spend":
        first = make_tx(alice, [key], pay)
        await clients[0].send(messages.NewTx(transaction=first))
        await clients[0].wait_for("SnapshotConfirmed", confirms(first["txId"]), since=0)
        utxo = await clients[0].get_snapshot_utxo()
        env = make_tx(alice, [key], [(bob.address(), 3_000_000), (alice.address(), amount - 3_000_000)])
    elif case == "unbalanced":
        env = make_tx(alice, [key], [(bob.address(), 2_000_000), (alice.address(), amount)])
    elif case == "below_min_ada":
        env = make_tx(alice, [key], [(bob.address(), 400_000), (alice.address(), amount - 400_000)])
    else:
        aux = pycardano.AuxiliaryData(pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: "x"})))
        other = pycardano.AuxiliaryData(pycardano.AlonzoMetadata(metadata=pycardano.Metadata({1990: "y"})))
        env = make_tx(alice, [key], pay, aux=aux, aux_hash=other.hash())
    since = [c.position for c in clients]

    # Execute
    await clients[0].send(messages.NewTx(transaction=env))

    # Assert: every node reports TxInvalid with the reason; the confirmed UTxO is unchanged.
    for c, start in zip(clients, since, strict=True):
        out = await c.wait_for("TxInvalid", since=start, timeout=10)
        assert isinstance(out, messages.TxInvalid)
        assert reason in out.reason
        assert out.transaction["cborHex"] == env["cborHex"]
        assert not any(isinstance(e, messages.TxValid) for e in c.events[start:])
    assert await clients[1].get_snapshot_utxo() == utxo
    # POST /transaction answers 400 SubmitTxInvalid for the same tx.
    with pytest.raises(errors.HeadError, match=f"400.*{reason}"):
        await clients[2].submit_transaction(env)
    assert await clients[2].get_snapshot_utxo() == utxo
