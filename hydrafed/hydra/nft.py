"""The provenance NFT: one token on L1 whose asset name is the final model's sha256.

Minted after fanout, never inside the head: a token minted in the head and not burned there
cannot be fanned out (the head's L1 output never held it) and blocks the fanout. The policy is
``all[ NofK(M, parties' payment keys), InvalidHereAfter(deadline) ]``: M (N for N-of-N) parties
must sign, and nobody can mint under it once the deadline slot has passed, which is what makes
one token per policy credible (a native policy cannot enforce one-shot minting by itself).
CIP-25 v2 metadata (label 721) names the federation, rounds, parties, model URI and the audit
report's sha256.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cbor2
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor, ledger, multisig
from hydrafed.hydra import tx as tx_mod

CIP25_LABEL = 721


class NftMismatch(errors.HeadError):
    """A mint tx does not certify the model it is checked against."""


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What the token certifies."""

    federation: str
    rounds: int
    parties: tuple[str, ...]
    model_uri: str
    model_sha256: str
    #: The audit report's sha256; None until an audit ran (simulate mints before any audit).
    audit_sha256: str | None = None

    def __post_init__(self) -> None:
        for name in ("model_sha256", "audit_sha256"):
            value = getattr(self, name)
            if value is None and name == "audit_sha256":
                continue
            if (
                not isinstance(value, str)
                or len(value) != 64
                or any(c not in "0123456789abcdef" for c in value)
            ):
                raise errors.ConfigError(f"nft.{name}: must be 64 lowercase hex characters")
        if self.rounds < 1 or not self.parties:
            raise errors.ConfigError("nft: rounds must be >= 1 and parties non-empty")

    @property
    def asset_name(self) -> bytes:
        """The 32 raw bytes of the model's sha256: the token *is* the hash."""
        return bytes.fromhex(self.model_sha256)


def policy(key_hashes: Iterable[str], required: int, deadline_slot: int) -> pycardano.NativeScript:
    """``all[ NofK(required, keys), InvalidHereAfter(deadline) ]``, keys in sorted order."""
    keys = sorted(set(key_hashes))
    if not 1 <= required <= len(keys):
        raise errors.ConfigError(f"nft: required signers {required} must be between 1 and {len(keys)}")
    return pycardano.ScriptAll(
        [
            pycardano.ScriptNofK(
                required,
                [pycardano.ScriptPubkey(pycardano.VerificationKeyHash(bytes.fromhex(k))) for k in keys],
            ),
            pycardano.InvalidHereAfter(deadline_slot),
        ]
    )


def policy_deadline(script: pycardano.NativeScript) -> int:
    """The deadline slot of a :func:`policy` script."""
    for sub in getattr(script, "native_scripts", []):
        if isinstance(sub, pycardano.InvalidHereAfter):
            return int(sub.after)
    raise errors.ConfigError("nft: the policy has no InvalidHereAfter deadline")


def cip25_metadata(policy_id: bytes, p: Provenance) -> dict[Any, Any]:
    """CIP-25 v2: ``{policy id bytes: {asset name bytes: {...}}, "version": 2}``, strings <= 64 B."""
    split = tx_mod.split_string
    token = {
        "name": split(f"{p.federation} model"),
        "image": split(p.model_uri),
        "description": split(
            f"hydrafed federation {p.federation}: {p.rounds} rounds, {len(p.parties)} parties"
        ),
        "federation": split(p.federation),
        "rounds": p.rounds,
        "parties": [split(name) for name in p.parties],
        "modelUri": split(p.model_uri),
        "modelSha256": p.model_sha256,
    }
    if p.audit_sha256 is not None:
        token["auditSha256"] = p.audit_sha256
    return {policy_id: {p.asset_name: token}, "version": 2}


def _min_token_coin(
    address: pycardano.Address, assets: Mapping[bytes, Mapping[bytes, int]], params: ledger.LedgerParams
) -> int:
    raw = bytes(address.to_primitive())
    coin = 0
    for _ in range(3):  # the coin's own encoding size moves the minimum a little
        size = len(cbor2.dumps([raw, [coin, {p: dict(n) for p, n in assets.items()}]]))
        need = (ledger.MIN_UTXO_OVERHEAD + size) * params.utxo_cost_per_byte
        if need <= coin:
            break
        coin = need
    return coin


def build_mint(
    provenance: Provenance,
    script: pycardano.NativeScript,
    *,
    payer: pycardano.Address,
    l1_utxo: Mapping[str, Any],
    params: ledger.LedgerParams,
    signers: int,
) -> multisig.MultisigTx:
    """The L1 mint: the payer's outputs in, the token (with min-ADA) and change back to the payer.

    ``ttl`` is the policy deadline, so the tx is valid exactly while the policy is; the fee
    is sized for ``signers`` witnesses (the payer's and the policy's). Deterministic in its
    arguments, so every party rebuilds and checks the bytes it is asked to sign.
    """
    inputs = sorted(tx_mod.select_inputs(l1_utxo, payer))
    if not inputs:
        raise errors.HeadError(f"nft: the payer {payer} has no ADA-only output on L1 to pay for the mint")
    pid = bytes(script.hash().payload)
    mint = {pid: {provenance.asset_name: 1}}
    aux = multisig.aux_data(CIP25_LABEL, cip25_metadata(pid, provenance))
    token_coin = _min_token_coin(payer, mint, params)
    total = sum(c for _, c in inputs)
    deadline = policy_deadline(script)
    fee = 0
    for _ in range(4):
        change = total - token_coin - fee
        need = ledger.min_lovelace_ada_only(bytes(payer.to_primitive()), max(change, 0), params)
        if change < need:
            raise errors.HeadError(
                f"nft: the payer holds {total} lovelace on L1; the mint needs {token_coin + fee + need}"
            )
        outputs: list[tuple[pycardano.Address, multisig.OutputValue]] = [
            (payer, (token_coin, mint)),
            (payer, change),
        ]
        body = multisig.encode_body(inputs, outputs, fee, aux, ttl=deadline, mint=mint)
        needed = ledger.min_fee(multisig.sized_tx_bytes(body, signers, script, aux), params)
        if needed <= fee:
            return multisig.MultisigTx(body, aux, script)
        fee = needed
    raise errors.HeadError("nft: the fee did not converge")  # pragma: no cover - fees are linear


def gather(
    tx: multisig.MultisigTx, payer_key_hash: str, required: int, witnesses: Sequence[multisig.Witness]
) -> dict[str, str]:
    """The envelope once the payer and ``required`` policy keys signed; HeadError before that."""
    signed = {w.key_hash for w in witnesses}
    keys = {bytes(s.key_hash.payload).hex() for s in tx.script.native_scripts[0].native_scripts}
    have = len(signed & keys)
    if payer_key_hash not in signed or have < required:
        raise errors.HeadError(
            f"nft: {have} of the {required} policy signatures are in"
            + ("" if payer_key_hash in signed else ", and the payer has not signed")
        )
    return tx.envelope(witnesses)


def minted_token(envelope: Mapping[str, Any]) -> tuple[str, str]:
    """``(policy id, asset name)`` hex of the one token a provenance mint tx creates.

    Raises :class:`NftMismatch` unless the tx mints exactly one token of quantity 1.
    """
    try:
        body = cbor2.loads(cbor.tx_item_spans(bytes.fromhex(str(envelope["cborHex"])))[0])
    except (KeyError, ValueError, errors.HeadError, cbor2.CBORDecodeError) as exc:
        raise NftMismatch(f"the mint tx does not decode: {exc}") from exc
    mint = body.get(9) if isinstance(body, dict) else None
    if not isinstance(mint, dict) or len(mint) != 1:
        raise NftMismatch("the tx does not mint exactly one policy")
    ((pid, named),) = mint.items()
    if not isinstance(named, dict) or len(named) != 1:
        raise NftMismatch("the tx does not mint exactly one asset")
    ((name, quantity),) = named.items()
    if quantity != 1 or not isinstance(pid, bytes) or not isinstance(name, bytes):
        raise NftMismatch(f"the tx mints {quantity!r} tokens, not one")
    return pid.hex(), name.hex()


def check_model(envelope: Mapping[str, Any], model_sha256: str, policy_id: str | None = None) -> None:
    """The audit's check: the token's asset name is ``model_sha256`` (and its policy, if given)."""
    pid, name = minted_token(envelope)
    if name != model_sha256:
        raise NftMismatch(f"the NFT's asset name is {name}, but the final model's sha256 is {model_sha256}")
    if policy_id is not None and pid != policy_id:
        raise NftMismatch(f"the NFT's policy is {pid}, not the federation's {policy_id}")
