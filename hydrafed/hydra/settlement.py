"""The escrow and provenance-NFT steps a head driver runs through the parties' own nodes.

``hydrafed simulate`` calls these when ``spec.escrow`` / ``spec.nft`` are enabled: every party
locks its deposit once the head is open (:func:`lock_escrow`); after the last round the others
release each deposit with M signatures (:func:`release_escrow`); after fanout the parties mint
the provenance NFT on L1 (:func:`mint_nft`). Each party builds or rebuilds every tx from its own
node's view before it signs (``escrow.vote_release``); the signatures are gathered in process
here, the one thing a deployment would carry over a channel between organisations instead.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import escrow, ledger, messages, nft
from hydrafed.hydra import keys as keys_mod
from hydrafed.spec import FederationSpec

Clients = Mapping[str, client_mod.HydraClient]


@contextlib.asynccontextmanager
async def connect(urls: Mapping[str, str]) -> AsyncIterator[dict[str, client_mod.HydraClient]]:
    """One client per party's node, closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        yield {
            n: await stack.enter_async_context(client_mod.HydraClient(u, snapshot_utxo=False))
            for n, u in urls.items()
        }


def current_slot(client: client_mod.HydraClient) -> int:
    """The node's current slot, as its Greetings reported it."""
    slot = (client.greetings.model_extra or {}).get("currentSlot")
    if not isinstance(slot, int):
        raise errors.HeadError(f"{client.ws_url} did not report currentSlot in its Greetings")
    return slot


async def submit(client: client_mod.HydraClient, envelope: Mapping[str, str], within: float = 60.0) -> None:
    """NewTx, then wait for its snapshot; HeadError with the ledger's reason if it is invalid."""
    tx_id = envelope["txId"]
    pos = client.position

    def ours(out: messages.ServerOutput) -> bool:
        if isinstance(out, messages.TxValid):
            return out.transaction_id == tx_id
        return isinstance(out, messages.TxInvalid) and out.transaction.get("txId") == tx_id

    await client.send(messages.NewTx(transaction=dict(envelope)))
    out = await client.wait_for(("TxValid", "TxInvalid"), ours, timeout=within, since=pos)
    if isinstance(out, messages.TxInvalid):
        raise errors.HeadError(f"tx {tx_id} is invalid: {out.reason}")
    await client.wait_for(
        "SnapshotConfirmed",
        lambda o: isinstance(o, messages.SnapshotConfirmed) and tx_id in o.confirmed_tx_ids,
        timeout=within,
        since=pos,
    )


def escrow_terms(
    fed: str, spec: FederationSpec, parties: Mapping[str, keys_mod.PartyKeys], network: keys_mod.NetworkName
) -> escrow.EscrowTerms:
    """The terms every party derives from the same spec and member list."""
    members = [escrow.Member.of(parties[n], network) for n in parties]
    return escrow.terms_from_spec(fed, members, spec.escrow)


async def lock_escrow(
    clients: Clients,
    parties: Mapping[str, keys_mod.PartyKeys],
    terms: escrow.EscrowTerms,
    spec: FederationSpec,
) -> dict[str, Any]:
    """Every party locks its deposit at its escrow address; refuses a refund slot that is too early."""
    first = clients[min(clients)]
    escrow.check_refund_slot(
        terms.refund_slot,
        current_slot=current_slot(first),
        training_seconds=spec.training.rounds * spec.round_policy.timeout_seconds,
        contestation_period=spec.head.contestation_period_seconds,
        parties=len(parties),
    )
    params = ledger.LedgerParams.from_json(await first.get_protocol_parameters())
    locks = {}
    for name in sorted(parties):
        client = clients[name]
        envelope = escrow.build_lock_tx(terms, parties[name], await client.get_snapshot_utxo(), params)
        await submit(client, envelope)
        locks[name] = {"state": "locked", "lockTx": envelope["txId"], "address": str(terms.address(name))}
    return locks


async def release_escrow(
    clients: Clients, parties: Mapping[str, keys_mod.PartyKeys], terms: escrow.EscrowTerms
) -> dict[str, Any]:
    """After the last round: for each party, M others rebuild, sign and submit its release."""
    params = ledger.LedgerParams.from_json(await clients[min(clients)].get_protocol_parameters())
    released = {}
    for owner in sorted(parties):
        proposer = terms.others(owner)[0].name
        utxo = await clients[proposer].get_snapshot_utxo()
        proposal = escrow.build_release(terms, owner, escrow.escrow_inputs(terms, owner, utxo), params)
        votes = []
        for voter in [m.name for m in terms.others(owner)][: terms.threshold]:
            view = await clients[voter].get_snapshot_utxo()
            votes.append(escrow.vote_release(terms, parties[voter], proposal, owner, view, params))
        await submit(clients[proposer], escrow.gather(proposal, terms, owner, votes))
        released[owner] = {
            "state": "released",
            "releaseTx": proposal.tx_id,
            "signers": sorted(m.name for m in terms.others(owner))[: terms.threshold],
        }
    return released


async def mint_nft(
    client: client_mod.HydraClient,
    parties: Mapping[str, keys_mod.PartyKeys],
    provenance: nft.Provenance,
    spec: FederationSpec,
    network: keys_mod.NetworkName,
) -> dict[str, Any]:
    """After fanout: the first party pays, every required party signs, the mint goes to L1.

    Uses the devnet's ``GET /devnet/l1-utxo`` for the payer's L1 outputs (a deployment would
    read them from its cardano-node).
    """
    names = sorted(parties)
    required = spec.nft.required_signers or len(names)
    script = nft.policy([parties[n].participant_id for n in names], required, spec.nft.policy_deadline_slot)
    payer = parties[names[0]]
    address = payer.address(network)
    params = ledger.LedgerParams.from_json(await client.get_protocol_parameters())
    l1 = await client.devnet_l1_utxo(str(address))
    tx = nft.build_mint(provenance, script, payer=address, l1_utxo=l1, params=params, signers=required + 1)
    signers = names[:required]  # the payer (first by name) is one of them
    witnesses = [tx.sign(parties[n]) for n in signers]
    envelope = nft.gather(tx, payer.participant_id, required, witnesses)
    await client.submit_cardano_transaction(envelope)
    policy_id = bytes(script.hash().payload).hex()
    return {
        "policyId": policy_id,
        "assetName": provenance.asset_name.hex(),
        "mintTx": envelope["txId"],
        "deadlineSlot": spec.nft.policy_deadline_slot,
        "requiredSigners": required,
        "signers": signers,
        "envelope": envelope,
    }


# -- The hooks a driver calls (simulate); each is a no-op when its spec part is disabled. --

RECORD_FILE = "escrow-nft.json"


async def after_open(
    urls: Mapping[str, str], parties: Mapping[str, keys_mod.PartyKeys], spec: FederationSpec, fed: str
) -> dict[str, Any]:
    """Head open and funded: lock every party's escrow (``spec.escrow.enabled``)."""
    if not spec.escrow.enabled:
        return {}
    terms = escrow_terms(fed, spec, parties, "testnet")
    async with connect(urls) as clients:
        return await lock_escrow(clients, parties, terms, spec)


async def before_close(
    urls: Mapping[str, str],
    parties: Mapping[str, keys_mod.PartyKeys],
    spec: FederationSpec,
    fed: str,
    locks: Mapping[str, Any],
) -> dict[str, Any]:
    """After the last round: release every locked escrow to its owner."""
    if not spec.escrow.enabled:
        return {}
    terms = escrow_terms(fed, spec, parties, "testnet")
    async with connect(urls) as clients:
        released = await release_escrow(clients, parties, terms)
    return {n: {**locks.get(n, {}), **released[n]} for n in sorted(parties)}


async def after_fanout(
    urls: Mapping[str, str],
    parties: Mapping[str, keys_mod.PartyKeys],
    spec: FederationSpec,
    fed: str,
    final_sha256s: set[str],
    model_uri: str,
) -> dict[str, Any]:
    """Head fanned out: mint the provenance NFT (``spec.nft.enabled``) if every party agrees."""
    if not spec.nft.enabled:
        return {}
    if len(final_sha256s) != 1:
        raise errors.HeadError(f"nft: the parties ended on different models {sorted(final_sha256s)}: no NFT")
    provenance = nft.Provenance(
        federation=fed,
        rounds=spec.training.rounds,
        parties=tuple(sorted(parties)),
        model_uri=model_uri,
        model_sha256=next(iter(final_sha256s)),
    )
    first = min(urls)
    async with client_mod.HydraClient(urls[first], snapshot_utxo=False) as client:
        return await mint_nft(client, parties, provenance, spec, "testnet")


def write_record(directory: Path, escrow_state: Mapping[str, Any], minted: Mapping[str, Any]) -> None:
    """``escrow-nft.json``: each party's escrow state and the NFT mint (its signed envelope)."""
    if escrow_state or minted:
        record = {"escrow": dict(escrow_state), "nft": dict(minted) or None}
        (directory / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def with_devnet_assets(spec: FederationSpec, parties: int, *, escrow: bool, nft: bool) -> FederationSpec:
    """``spec`` with escrow and/or the NFT enabled, slots chosen for a fresh devnet (slot 0 = start).

    Both slots leave every round's timeout, the worst-case close ((1 + parties) contestation
    periods) and a one-hour margin; M is two thirds of the other parties, rounded up.
    """
    bound = (
        spec.training.rounds * spec.round_policy.timeout_seconds
        + (2 + parties) * spec.head.contestation_period_seconds
        + 2 * 3600
    )
    update: dict[str, Any] = {}
    if escrow:
        threshold = max(1, -(-2 * (parties - 1) // 3))
        update["escrow"] = spec.escrow.model_copy(
            update={"enabled": True, "threshold": threshold, "refund_slot": bound}
        )
    if nft:
        update["nft"] = spec.nft.model_copy(update={"enabled": True, "policy_deadline_slot": bound})
    return FederationSpec.model_validate(
        {**spec.model_dump(), **{k: v.model_dump() for k, v in update.items()}}
    )


def nft_claim(record_path: Path) -> str | None:
    """The final-model digest the NFT of a run claims: its minted asset name, read from the mint tx.

    The asset name is taken from the signed mint tx in ``escrow-nft.json`` (not the record's own
    ``assetName`` field), so ``hydrafed audit`` checks what was put on the ledger.
    """
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError as exc:
        raise errors.ConfigError(
            f"{record_path}: not JSON ({exc}); rerun simulate or remove the file"
        ) from exc
    minted = record.get("nft") if isinstance(record, dict) else None
    if not minted:
        return None
    envelope = minted.get("envelope") if isinstance(minted, dict) else None
    if not isinstance(envelope, dict):
        raise errors.ConfigError(f"{record_path}: nft.envelope (the signed mint tx) is missing")
    _, asset_name = nft.minted_token(envelope)
    return asset_name
