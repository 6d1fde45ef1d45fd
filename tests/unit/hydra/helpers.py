"""Builders for hand-made transactions, so tests can break one ledger rule at a time."""

from __future__ import annotations

from collections.abc import Sequence

import pycardano

from hydrafed.hydra import keys, utxo


def make_tx(
    signer: keys.PartyKeys,
    inputs: Sequence[str],
    outputs: Sequence[tuple[pycardano.Address, int]],
    *,
    fee: int = 0,
    aux: pycardano.AuxiliaryData | None = None,
    aux_hash: pycardano.AuxiliaryDataHash | None = None,
    signing_key: pycardano.PaymentSigningKey | None = None,
) -> dict[str, str]:
    """A signed tx envelope; ``signing_key`` lets a test sign with the wrong key."""
    body = pycardano.TransactionBody(
        inputs=[utxo.parse_txin(k) for k in inputs],
        outputs=[pycardano.TransactionOutput(a, v) for a, v in outputs],
        fee=fee,
        auxiliary_data_hash=aux_hash if aux_hash is not None else (aux.hash() if aux is not None else None),
    )
    sk = signing_key or signer.payment_signing_key
    witness = pycardano.VerificationKeyWitness(signer.payment_verification_key, sk.sign(body.hash()))
    tx = pycardano.Transaction(
        body, pycardano.TransactionWitnessSet(vkey_witnesses=[witness]), auxiliary_data=aux
    )
    return {"type": "Tx ConwayEra", "description": "", "cborHex": tx.to_cbor_hex(), "txId": str(tx.id)}
