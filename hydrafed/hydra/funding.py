"""Bring a party's L1 funds into an open head: POST /commit, sign, submit on L1, wait.

This is the 2.x deposit flow (``CommitRecorded`` → ``DepositActivated`` → ``CommitApproved``
→ ``CommitFinalized``). It reads the party's L1 outputs from the devnet's emulated L1; against
a real hydra-node, pass ``l1_utxo`` from your own chain query instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pycardano

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import messages


def sign_envelope(envelope: Mapping[str, Any], signing_key: pycardano.PaymentSigningKey) -> dict[str, str]:
    """Add a vkey witness over the body hash to an unsigned tx envelope (cardano-cli sign)."""
    tx = pycardano.Transaction.from_cbor(str(envelope["cborHex"]))
    vk = pycardano.PaymentVerificationKey.from_signing_key(signing_key)
    witness = pycardano.VerificationKeyWitness(vk, signing_key.sign(tx.transaction_body.hash()))
    tx.transaction_witness_set.vkey_witnesses = [*(tx.transaction_witness_set.vkey_witnesses or []), witness]
    return {"type": "Tx ConwayEra", "description": "", "cborHex": tx.to_cbor_hex(), "txId": str(tx.id)}


async def commit_funds(
    client: client_mod.HydraClient,
    keys: keys_mod.PartyKeys,
    lovelace: int | None = None,
    *,
    network: keys_mod.NetworkName = "testnet",
    l1_utxo: Mapping[str, Any] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - passed on to wait_for
) -> str:
    """Deposit the party's L1 outputs (all, or enough to cover ``lovelace``); return the deposit txid."""
    address = str(keys.address(network))
    available = dict(l1_utxo) if l1_utxo is not None else await client.devnet_l1_utxo(address)
    chosen: dict[str, Any] = {}
    total = 0
    for key, out in sorted(available.items(), key=lambda kv: -int(kv[1]["value"].get("lovelace", 0))):
        if lovelace is not None and total >= lovelace:
            break
        chosen[key] = out
        total += int(out["value"].get("lovelace", 0))
    if not chosen or (lovelace is not None and total < lovelace):
        raise errors.HeadError(
            f"party {keys.name} has {total} lovelace on L1 at {address}; cannot commit {lovelace}"
        )
    since = client.position
    draft = await client.commit(chosen)
    signed = sign_envelope(draft, keys.payment_signing_key)
    await client.submit_cardano_transaction(signed)
    tx_id = signed["txId"]
    await client.wait_for(
        "CommitFinalized",
        lambda out: isinstance(out, messages.CommitFinalized) and out.deposit_tx_id == tx_id,
        timeout=timeout,
        since=since,
    )
    return tx_id
