"""The provenance NFT on the devnet: minted on the emulated L1 after fanout, refused in a fanout."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hydrafed import errors
from hydrafed.hydra import client as client_mod
from hydrafed.hydra import keys, messages, multisig, nft
from hydrafed.hydra.devnet import Devnet
from tests.integration.hydra.conftest import DevnetFactory
from tests.integration.hydra.test_escrow import confirmed
from tests.integration.hydra.test_schema import _validators

pytestmark = pytest.mark.integration

NAMES = ["alice", "bob", "carol"]
MODEL = hashlib.sha256(b"final global weights").hexdigest()
PROVENANCE = nft.Provenance(
    federation="fed",
    rounds=10,
    parties=tuple(NAMES),
    model_uri="s3://alice/fed/final/global.safetensors?this-uri-is-longer-than-sixty-four-bytes-on-purpose",
    model_sha256=MODEL,
    audit_sha256=hashlib.sha256(b"audit report").hexdigest(),
)

Net = tuple[Devnet, list[client_mod.HydraClient], dict[str, keys.PartyKeys]]


@pytest.fixture
async def head(make_devnet: DevnetFactory) -> AsyncIterator[Net]:
    net = await make_devnet(parties=NAMES, open_head=True)
    clients = [client_mod.HydraClient(url) for url in net.urls]
    for c in clients:
        await c.connect()
    yield net, clients, {n: keys.load_party_keys(net.keys_dir(n), n) for n in NAMES}
    for c in clients:
        await c.close()


async def _close(c: client_mod.HydraClient) -> int:
    pos = c.position
    await c.send(messages.Close())
    await c.wait_for("ReadyToFanout", since=pos, timeout=10)
    pos = c.position
    await c.send(messages.Fanout())
    return pos


def _policy(party: dict[str, keys.PartyKeys], deadline: int) -> Any:
    return nft.policy([party[n].participant_id for n in NAMES], len(NAMES), deadline)


async def test_after_fanout_all_parties_mint_one_token_named_by_the_model_hash(head: Net) -> None:
    # Prepare: close and fan out, then build the mint on L1 with alice paying.
    net, clients, party = head
    assert net.head is not None
    pos = await _close(clients[0])
    await clients[0].wait_for("HeadIsFinalized", since=pos, timeout=10)
    deadline = net.head.current_slot() + 600
    script = _policy(party, deadline)
    alice = party["alice"].address()
    l1 = await clients[0].devnet_l1_utxo(str(alice))
    tx = nft.build_mint(PROVENANCE, script, payer=alice, l1_utxo=l1, params=net.head.params, signers=3)
    witnesses = [tx.sign(party[n]) for n in NAMES]

    # Execute / Assert: two of three signatures are not enough, for gather nor for the L1 ledger.
    with pytest.raises(errors.HeadError, match="2 of the 3 policy signatures"):
        nft.gather(tx, party["alice"].participant_id, 3, witnesses[:2])
    with pytest.raises(errors.HeadError, match="ScriptWitnessNotValidatingUTXOW"):
        await clients[0].submit_cardano_transaction(tx.envelope(witnesses[:2]))
    envelope = nft.gather(tx, party["alice"].participant_id, 3, witnesses)
    await clients[0].submit_cardano_transaction(envelope)

    # Assert: the token is on L1 at alice's address, named by the model's sha256.
    pid = bytes(script.hash().payload).hex()
    after = await clients[0].devnet_l1_utxo(str(alice))
    tokens = [o["value"][pid] for o in after.values() if pid in o["value"]]
    assert tokens == [{MODEL: 1}]
    nft.check_model(envelope, MODEL, pid)
    with pytest.raises(nft.NftMismatch, match="asset name is"):
        nft.check_model(envelope, hashlib.sha256(b"another model").hexdigest())
    with pytest.raises(nft.NftMismatch, match="policy is"):
        nft.check_model(envelope, MODEL, "00" * 28)
    meta = nft.cip25_metadata(bytes.fromhex(pid), PROVENANCE)
    assert meta["version"] == 2
    assert meta[bytes.fromhex(pid)][bytes.fromhex(MODEL)]["auditSha256"] == PROVENANCE.audit_sha256


async def test_the_policy_refuses_a_mint_after_its_deadline(head: Net) -> None:
    net, clients, party = head
    assert net.head is not None
    pos = await _close(clients[0])
    await clients[0].wait_for("HeadIsFinalized", since=pos, timeout=10)
    deadline = net.head.current_slot() + 600
    script = _policy(party, deadline)
    alice = party["alice"].address()
    l1 = await clients[0].devnet_l1_utxo(str(alice))
    tx = nft.build_mint(PROVENANCE, script, payer=alice, l1_utxo=l1, params=net.head.params, signers=3)
    envelope = nft.gather(tx, party["alice"].participant_id, 3, [tx.sign(party[n]) for n in NAMES])
    net.head.advance_slots(601)
    with pytest.raises(errors.HeadError, match="OutsideValidityIntervalUTxO"):
        await clients[0].submit_cardano_transaction(envelope)


async def test_a_fanout_is_refused_while_the_head_holds_a_net_mint(head: Net, hydra_reference: Path) -> None:
    # Prepare: the parties mint the token inside the head (the ledger allows it).
    net, clients, party = head
    assert net.head is not None
    script = _policy(party, net.head.current_slot() + 600)
    alice = party["alice"].address()
    utxo = await clients[0].get_snapshot_utxo()
    tx = nft.build_mint(PROVENANCE, script, payer=alice, l1_utxo=utxo, params=net.head.params, signers=3)
    await confirmed(clients[0], tx.envelope([tx.sign(party[n]) for n in NAMES]))

    # Execute
    pos = await _close(clients[0])
    out = await clients[0].wait_for(("PostTxOnChainFailed", "HeadIsFinalized"), since=pos, timeout=10)

    # Assert: a clear refusal naming the asset and the fix; the head is not finalised.
    assert out.tag == "PostTxOnChainFailed"
    data = out.model_dump(by_alias=True)
    assert data["postTxError"] == {"tag": "FailedToConstructFanoutTx"}
    _validators(hydra_reference)["PostTxOnChainFailed"].validate(
        {k: v for k, v in data.items() if v is not None}
    )
    reason = data["devnetReason"]
    assert f"{bytes(script.hash().payload).hex()}.{MODEL} +1" in reason
    assert "burn those tokens inside the head" in reason
    assert (await clients[0].get_head())["tag"] == "Closed"


async def test_a_token_minted_and_burned_inside_the_head_does_not_block_the_fanout(head: Net) -> None:
    net, clients, party = head
    assert net.head is not None
    script = _policy(party, net.head.current_slot() + 600)
    pid = bytes(script.hash().payload)
    alice = party["alice"].address()
    utxo = await clients[0].get_snapshot_utxo()
    mint = nft.build_mint(PROVENANCE, script, payer=alice, l1_utxo=utxo, params=net.head.params, signers=3)
    await confirmed(clients[0], mint.envelope([mint.sign(party[n]) for n in NAMES]))
    key = f"{mint.tx_id}#0"
    token_coin = (await clients[0].get_snapshot_utxo())[key]["value"]["lovelace"]
    burn_body = multisig.encode_body(
        [(key, token_coin)],
        [(alice, token_coin)],
        0,
        None,
        ttl=nft.policy_deadline(script),
        mint={pid: {bytes.fromhex(MODEL): -1}},
    )
    burn = multisig.MultisigTx(burn_body, None, script)
    await confirmed(clients[0], burn.envelope([burn.sign(party[n]) for n in NAMES]))
    pos = await _close(clients[0])
    await clients[0].wait_for("HeadIsFinalized", since=pos, timeout=10)
    assert net.head.net_mint() == {}
