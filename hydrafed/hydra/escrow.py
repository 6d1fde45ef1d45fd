"""Deposits in escrow with penalties: one native-script address per party, inside the head.

Party P's deposit sits at ``any[ NofK(M, others' payment keys), all[P's key, after(refund)] ]``:
M of the other parties can move it (a slash pays it to them in equal shares, a release after
the last round pays it back to P), and P alone can take it back once the refund slot has come.
The script cannot judge evidence; every slash is therefore a deterministic transaction that
each party rebuilds byte for byte from the evidence and its own view of the ledger, checks, and
only then signs (:func:`vote_slash`). A party whose check fails refuses, so a slash with wrong
shares or unfounded evidence never gathers M signatures.

If the accused withholds its snapshot signature it blocks every in-head tx; the others then
close the head, the escrow output fans out unchanged under the same script, and the same slash
is rebuilt against the L1 UTxO with an L1 fee (``params``) and signed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import cbor2
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor, ledger, multisig
from hydrafed.hydra import keys as keys_mod
from hydrafed.hydra import tx as tx_mod
from hydrafed.hydra import utxo as utxo_mod
from hydrafed.spec import EscrowSpec

#: Metadata label of slash and release txs (announcements use 1990).
ESCROW_LABEL = 1991


class EscrowRefused(errors.HeadError):
    """A party will not sign: the evidence does not hold or the tx is not the one it rebuilt."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One party as the escrow sees it: name, payment key hash (56 hex) and address."""

    name: str
    key_hash: str
    address: pycardano.Address

    @classmethod
    def of(cls, party: keys_mod.PartyKeys, network: keys_mod.NetworkName = "testnet") -> Member:
        return cls(party.name, party.participant_id, party.address(network))

    @classmethod
    def parse(cls, name: str, key_hash: str, address: str) -> Member:
        """From the public facts a Party carries (bech32 address, key hash hex)."""
        try:
            return cls(name, key_hash, pycardano.Address.from_primitive(address))
        except (pycardano.DecodingException, ValueError, TypeError) as exc:
            raise errors.ConfigError(f"party {name}: address {address!r} is not a bech32 address") from exc


@dataclasses.dataclass(frozen=True)
class EscrowTerms:
    """What every party agrees on (from the Federation spec): members, M, refund slot, amount."""

    fed: str
    members: tuple[Member, ...]
    threshold: int
    refund_slot: int
    amount: int
    network: pycardano.Network = pycardano.Network.TESTNET

    def __post_init__(self) -> None:
        names = [m.name for m in self.members]
        if len(names) < 2 or len(set(names)) != len(names):
            raise errors.ConfigError(f"escrow members: need at least 2 distinct parties, got {names}")
        if not 1 <= self.threshold <= len(names) - 1:
            raise errors.ConfigError(
                f"escrow.threshold: {self.threshold} must be between 1 and {len(names) - 1} "
                "(the number of other parties)"
            )
        if self.refund_slot < 0 or self.amount <= 0:
            raise errors.ConfigError("escrow: refundSlot must be >= 0 and amount > 0 lovelace")

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise errors.ConfigError(f"escrow: {name!r} is not a member ({[m.name for m in self.members]})")

    def others(self, name: str) -> list[Member]:
        self.member(name)
        return [m for m in self.members if m.name != name]

    def script(self, name: str) -> pycardano.NativeScript:
        """``any[ NofK(M, others), all[owner, InvalidBefore(refund slot)] ]`` for party ``name``."""
        own = self.member(name)
        return pycardano.ScriptAny(
            [
                pycardano.ScriptNofK(self.threshold, [_pubkey(m.key_hash) for m in self.others(name)]),
                pycardano.ScriptAll([_pubkey(own.key_hash), pycardano.InvalidBefore(self.refund_slot)]),
            ]
        )

    def address(self, name: str) -> pycardano.Address:
        return pycardano.Address(payment_part=self.script(name).hash(), network=self.network)


def _pubkey(key_hash: str) -> pycardano.ScriptPubkey:
    return pycardano.ScriptPubkey(pycardano.VerificationKeyHash(bytes.fromhex(key_hash)))


# -- evidence ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HashMismatch:
    """The object behind an announcement does not hash to the announced sha256."""

    round: int
    accused: str
    announcement_tx: str
    announced_sha256: str
    object_sha256: str

    def metadata(self) -> dict[str, Any]:
        return {
            "reason": "hash-mismatch",
            "announcementTx": self.announcement_tx,
            "announcedSha256": self.announced_sha256,
            "objectSha256": self.object_sha256,
        }


@dataclasses.dataclass(frozen=True)
class Equivocation:
    """Two different announcements by the accused for one round."""

    round: int
    accused: str
    first_tx: str
    second_tx: str

    def metadata(self) -> dict[str, Any]:
        return {"reason": "equivocation", "firstTx": self.first_tx, "secondTx": self.second_tx}


Evidence = HashMismatch | Equivocation
#: The sha256 (hex) a voter computes itself for an announced object, None when it cannot read it.
ObjectHasher = Callable[[tx_mod.Announcement], str | None]


def _announcement(
    terms: EscrowTerms, txs: Mapping[str, Mapping[str, Any]], tx_id: str, accused: str, rnd: int
) -> tx_mod.Announcement:
    """The accused's announcement ``tx_id`` for round ``rnd`` as this voter's ledger holds it."""
    envelope = txs.get(tx_id)
    if envelope is None:
        raise EscrowRefused(f"evidence names tx {tx_id}, which is not among the confirmed txs")
    decoded = tx_mod.decode_confirmed(envelope)
    ann = decoded.claim if decoded is not None else None
    if (
        not isinstance(ann, tx_mod.Announcement)
        or ann.fed != terms.fed
        or ann.party != accused
        or ann.round != rnd
    ):
        raise EscrowRefused(f"tx {tx_id} is not {accused}'s announcement for round {rnd} of {terms.fed}")
    if decoded is None or terms.member(accused).key_hash not in decoded.signers:
        raise EscrowRefused(
            f"tx {tx_id} is not signed by {accused}'s payment key: it proves nothing of {accused}"
        )
    return ann


def check_evidence(
    terms: EscrowTerms,
    evidence: Evidence,
    confirmed_txs: Mapping[str, Mapping[str, Any]],
    object_sha256: ObjectHasher,
) -> None:
    """Check ``evidence`` against this party's own ledger and objects; :class:`EscrowRefused` if not.

    ``confirmed_txs`` are the envelopes this party saw confirmed, by tx id. For a hash mismatch
    the voter downloads the object itself (``object_sha256``): it must hash to what the
    evidence says, and that must differ from what the accused announced.
    """
    if isinstance(evidence, HashMismatch):
        ann = _announcement(terms, confirmed_txs, evidence.announcement_tx, evidence.accused, evidence.round)
        if ann.sha256 != evidence.announced_sha256:
            raise EscrowRefused(f"{evidence.accused} announced {ann.sha256}, not {evidence.announced_sha256}")
        seen = object_sha256(ann)
        if seen is None:
            raise EscrowRefused(f"cannot read {ann.uri} to check the evidence")
        if seen == ann.sha256:
            raise EscrowRefused(f"{ann.uri} hashes to the announced {ann.sha256}: no mismatch")
        if seen != evidence.object_sha256:
            raise EscrowRefused(f"{ann.uri} hashes to {seen} here, not {evidence.object_sha256}")
        return
    if evidence.first_tx == evidence.second_tx:
        raise EscrowRefused("equivocation evidence names the same tx twice")
    first = _announcement(terms, confirmed_txs, evidence.first_tx, evidence.accused, evidence.round)
    second = _announcement(terms, confirmed_txs, evidence.second_tx, evidence.accused, evidence.round)
    if first == second:
        raise EscrowRefused(f"txs {evidence.first_tx} and {evidence.second_tx} announce the same update")


# -- transactions -----------------------------------------------------------------------------


#: Escrow spends are multisig txs; their witnesses travel between parties as :class:`Witness`.
EscrowTx = multisig.MultisigTx
Witness = multisig.Witness


def escrow_inputs(terms: EscrowTerms, name: str, utxo: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Party ``name``'s ADA-only escrow outputs in ``utxo`` (API JSON or pycardano), by reference."""
    return sorted(tx_mod.select_inputs(utxo, terms.address(name)))


def _spend(
    terms: EscrowTerms,
    owner: str,
    inputs: Sequence[tuple[str, int]],
    pay: Callable[[int], list[tuple[pycardano.Address, int]]],
    meta: Mapping[str, Any] | None,
    params: ledger.LedgerParams,
    signers: int,
    validity_start: int | None = None,
) -> EscrowTx:
    """Build an escrow spend whose outputs ``pay(total - fee)`` chooses; fee from ``params``."""
    if not inputs:
        raise errors.HeadError(
            f"no escrow output of {owner} at {terms.address(owner)}: lock the deposit first"
        )
    total = sum(c for _, c in inputs)
    script = terms.script(owner)
    aux = multisig.aux_data(ESCROW_LABEL, meta) if meta is not None else None
    fee = 0
    for _ in range(4):  # the fee barely changes the size: converges in two passes
        outputs = pay(total - fee)
        for address, coin in outputs:
            need = ledger.min_lovelace_ada_only(bytes(address.to_primitive()), coin, params)
            if coin < need:
                raise errors.ConfigError(
                    f"escrow.amountLovelace: an output of {coin} lovelace to {address} is below its "
                    f"min-ADA of {need}; raise the escrow amount"
                )
        body = multisig.encode_body(inputs, list(outputs), fee, aux, validity_start=validity_start)
        needed = ledger.min_fee(multisig.sized_tx_bytes(body, signers, script, aux), params)
        if needed <= fee:
            return EscrowTx(body, aux, script)
        fee = needed
    raise errors.HeadError("escrow fee did not converge")  # pragma: no cover - fees are linear


def decode_action(envelope: Mapping[str, Any]) -> dict[str, Any] | None:
    """The escrow metadata (label 1991) of a tx, strings re-joined; None if it carries none."""
    try:
        spans = cbor.tx_item_spans(bytes.fromhex(str(envelope["cborHex"])))
        aux = cbor2.loads(spans[3]) if len(spans) == 4 else None
    except (KeyError, ValueError, errors.HeadError, cbor2.CBORDecodeError):
        return None
    meta = aux.value.get(0) if isinstance(aux, cbor2.CBORTag) and isinstance(aux.value, dict) else None
    body = meta.get(ESCROW_LABEL) if isinstance(meta, dict) else None
    if not isinstance(body, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in body.items():
        try:
            out[str(key)] = value if isinstance(value, int) else tx_mod.join_string(value)
        except ValueError:
            return None
    return out


def equal_shares(total: int, recipients: Sequence[Member]) -> list[tuple[pycardano.Address, int]]:
    """``total`` split equally, in member order; the remainder (< n lovelace) goes to the first."""
    share, rest = divmod(total, len(recipients))
    return [(m.address, share + (rest if i == 0 else 0)) for i, m in enumerate(recipients)]


def build_slash(
    terms: EscrowTerms,
    evidence: Evidence,
    inputs: Sequence[tuple[str, int]],
    params: ledger.LedgerParams,
) -> EscrowTx:
    """The slash of ``evidence.accused``: its escrow to the others in equal shares, with evidence.

    Deterministic in its arguments, so every party rebuilds the same bytes; on L1 pass the L1
    protocol parameters and the fee comes out of the escrow before the split.
    """
    others = terms.others(evidence.accused)
    meta = {
        "fed": tx_mod.split_string(terms.fed),
        "action": "slash",
        "round": evidence.round,
        "accused": tx_mod.split_string(evidence.accused),
        **evidence.metadata(),
    }
    return _spend(
        terms, evidence.accused, inputs, lambda t: equal_shares(t, others), meta, params, terms.threshold
    )


def build_release(
    terms: EscrowTerms, owner: str, inputs: Sequence[tuple[str, int]], params: ledger.LedgerParams
) -> EscrowTx:
    """After the last round: M others pay the owner's escrow back to it."""
    meta = {"fed": tx_mod.split_string(terms.fed), "action": "release", "party": tx_mod.split_string(owner)}
    addr = terms.member(owner).address
    return _spend(terms, owner, inputs, lambda t: [(addr, t)], meta, params, terms.threshold)


def build_refund(
    terms: EscrowTerms, owner: str, inputs: Sequence[tuple[str, int]], params: ledger.LedgerParams
) -> EscrowTx:
    """The owner alone takes its escrow back, valid from the refund slot on."""
    addr = terms.member(owner).address
    return _spend(terms, owner, inputs, lambda t: [(addr, t)], None, params, 1, terms.refund_slot)


def build_lock_tx(
    terms: EscrowTerms,
    party: keys_mod.PartyKeys,
    utxo: Mapping[str, Any],
    params: ledger.LedgerParams,
) -> dict[str, str]:
    """In the head: pay ``terms.amount`` from the party's own outputs to its escrow address."""
    own = terms.member(party.name).address
    chosen = tx_mod.select_inputs(utxo, own)
    total = sum(c for _, c in chosen)
    escrow = terms.address(party.name)
    fee = 0
    for _ in range(4):
        change = total - terms.amount - fee
        need = ledger.min_lovelace_ada_only(bytes(own.to_primitive()), max(change, 0), params)
        if change < need:
            raise errors.HeadError(
                f"party {party.name} holds {total} lovelace in the head; locking {terms.amount} in escrow "
                f"needs {terms.amount + fee + need} (escrow + fee + min-ADA change): commit more funds"
            )
        body = multisig.encode_body(chosen, [(escrow, terms.amount), (own, change)], fee, None)
        body_hash = hashlib.blake2b(body, digest_size=32).digest()
        witness = [
            [bytes(party.payment_verification_key.payload), bytes(party.payment_signing_key.sign(body_hash))]
        ]
        raw = b"\x84" + body + cbor2.dumps({0: witness}) + b"\xf5\xf6"
        needed = ledger.min_fee(len(raw), params)
        if needed <= fee:
            return {"type": "Tx ConwayEra", "description": "", "cborHex": raw.hex(), "txId": body_hash.hex()}
        fee = needed
    raise errors.HeadError("escrow lock fee did not converge")  # pragma: no cover


def vote_slash(
    terms: EscrowTerms,
    voter: keys_mod.PartyKeys,
    proposal: EscrowTx,
    evidence: Evidence,
    utxo: Mapping[str, Any],
    params: ledger.LedgerParams,
    confirmed_txs: Mapping[str, Mapping[str, Any]],
    object_sha256: ObjectHasher,
) -> Witness:
    """Rebuild the slash from this party's own view, check the evidence, and only then sign.

    Refuses (:class:`EscrowRefused`) when the voter is the accused, when the proposal's bytes
    differ from the rebuilt ones (other shares, inputs, fee or metadata), or when the evidence
    does not hold against this party's ledger and its own download of the object.
    """
    if voter.name == evidence.accused:
        raise EscrowRefused(f"{voter.name} is the accused: it does not vote on its own slash")
    rebuilt = build_slash(terms, evidence, escrow_inputs(terms, evidence.accused, utxo), params)
    if (rebuilt.body_cbor, rebuilt.aux_cbor) != (proposal.body_cbor, proposal.aux_cbor):
        raise EscrowRefused(
            f"the proposed slash {proposal.tx_id} is not the one {voter.name} rebuilt ({rebuilt.tx_id}): "
            "its inputs, shares, fee or evidence differ"
        )
    check_evidence(terms, evidence, confirmed_txs, object_sha256)
    return proposal.sign(voter)


def vote_release(
    terms: EscrowTerms,
    voter: keys_mod.PartyKeys,
    proposal: EscrowTx,
    owner: str,
    utxo: Mapping[str, Any],
    params: ledger.LedgerParams,
) -> Witness:
    """Sign a release only if it is exactly the one this party rebuilds (all to the owner)."""
    rebuilt = build_release(terms, owner, escrow_inputs(terms, owner, utxo), params)
    if (rebuilt.body_cbor, rebuilt.aux_cbor) != (proposal.body_cbor, proposal.aux_cbor):
        raise EscrowRefused(f"the proposed release {proposal.tx_id} is not the one {voter.name} rebuilt")
    return proposal.sign(voter)


def gather(
    proposal: EscrowTx, terms: EscrowTerms, owner: str, witnesses: Iterable[Witness]
) -> dict[str, str]:
    """The envelope to submit once M of the other parties signed; HeadError before that.

    It carries exactly M witnesses (the first by vkey), whoever else signed, so the tx is the
    same size as the fee assumed and the same whichever party assembles it.
    """
    eligible = {m.key_hash for m in terms.others(owner)}
    chosen = sorted({w.vkey: w for w in witnesses if w.key_hash in eligible}.items())[: terms.threshold]
    if len(chosen) < terms.threshold:
        raise errors.HeadError(
            f"{len(chosen)} of the {terms.threshold} signatures the escrow of {owner} needs are in; "
            "wait for more"
        )
    return proposal.envelope(w for _, w in chosen)  # exactly M: the fee was sized for M


def check_refund_slot(
    refund_slot: int,
    *,
    current_slot: int,
    training_seconds: float,
    contestation_period: float,
    parties: int,
    slot_length: float = 1.0,
    margin_seconds: float = 3600.0,
) -> None:
    """ConfigError unless the refund slot leaves time to train, close, contest, fan out and slash.

    Worst case from Close to fanout is ``(1 + parties) * contestation_period`` (every party
    may contest once); ``margin_seconds`` covers the slash vote and the L1 submission.
    """
    needed = training_seconds + (1 + parties) * contestation_period + margin_seconds
    earliest = current_slot + int(-(-needed // slot_length))
    if refund_slot < earliest:
        raise errors.ConfigError(
            f"escrow.refundSlot: {refund_slot} is too early; training ({training_seconds:.0f} s), close and "
            f"contestation ((1 + {parties}) x {contestation_period:.0f} s) and a {margin_seconds:.0f} s "
            "margin "
            f"from slot {current_slot} need slot {earliest} or later"
        )


# -- what the ledger says about each escrow -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EscrowState:
    """One party's escrow as the confirmed txs show it.

    ``state``: ``none`` (never locked), ``locked``, ``slashed``, ``released``, ``refunded``
    (spent by the owner, without escrow metadata) or ``spent`` (spent by M others without
    escrow metadata). ``tx_id`` is the tx that made it so; a slash names ``round`` and
    ``reason``.
    """

    state: str = "none"
    tx_id: str | None = None
    round: int | None = None
    reason: str | None = None


def terms_from_spec(fed: str, members: Sequence[Member], spec: EscrowSpec) -> EscrowTerms:
    """The terms of ``spec.escrow`` for these members (sorted by name); network from their addresses."""
    ordered = tuple(sorted(members, key=lambda m: m.name))
    return EscrowTerms(
        fed=fed,
        members=ordered,
        threshold=spec.threshold,
        refund_slot=spec.refund_slot,
        amount=spec.amount_lovelace,
        network=ordered[0].address.network if ordered else pycardano.Network.TESTNET,
    )


def escrow_states(terms: EscrowTerms, confirmed: Iterable[Mapping[str, Any]]) -> dict[str, EscrowState]:
    """Each member's :class:`EscrowState` from the confirmed tx envelopes, in ledger order.

    Metadata alone proves nothing: a slash or release counts only when the tx really spent one
    of that party's escrow outputs (which the ledger allowed only with the script satisfied).
    """
    owner_of = {str(terms.address(m.name)): m.name for m in terms.members}
    open_outputs: dict[str, str] = {}  # escrow output ref -> owner
    states = {m.name: EscrowState() for m in terms.members}
    for envelope in confirmed:
        try:
            decoded = ledger.decode_tx(str(envelope["cborHex"]))
            inputs = ledger.decode_inputs(decoded)
            outputs = ledger.decode_outputs(decoded)
        except (KeyError, errors.HeadError):
            continue
        spent = {open_outputs.pop(ref) for ref in inputs if ref in open_outputs}
        action = decode_action(envelope) or {}
        for owner in sorted(spent):
            kind = action.get("action")
            named = action.get("accused") if kind == "slash" else action.get("party")
            if kind == "slash" and named == owner:
                rnd = action.get("round")
                states[owner] = EscrowState(
                    "slashed", decoded.tx_id, rnd if isinstance(rnd, int) else None, str(action.get("reason"))
                )
            elif kind == "release" and named == owner:
                states[owner] = EscrowState("released", decoded.tx_id)
            elif terms.member(owner).key_hash in tx_mod.tx_signers(envelope):
                states[owner] = EscrowState("refunded", decoded.tx_id)
            else:
                states[owner] = EscrowState("spent", decoded.tx_id)
        for out in outputs:
            locker = owner_of.get(utxo_mod.address_text(out.address))
            if locker is not None:
                open_outputs[utxo_mod.txin_key(decoded.tx_id, out.ix)] = locker
                states[locker] = EscrowState("locked", decoded.tx_id)
    return states
