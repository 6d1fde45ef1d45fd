"""UTxO in the hydra-node JSON shape, converted to and from pycardano outputs.

The API keys a UTxO by ``"<txid>#<ix>"`` and writes each TxOut as ``{address, value, datum,
datumhash, inlineDatum, inlineDatumRaw, inlineDatumhash, referenceScript}`` with the value as
``{"lovelace": n, "<policy>": {"<asset name hex>": q}}``. Only key and script addresses with
plain values are modelled; datums and reference scripts are refused, not silently dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import pycardano

from hydrafed import errors
from hydrafed.hydra import primitives

UTxO = dict[str, pycardano.TransactionOutput]


def txin_key(tx_id: str, index: int) -> str:
    """The API's key for one output reference."""
    return f"{tx_id}#{index}"


def parse_txin(key: str) -> pycardano.TransactionInput:
    """``"txid#ix"`` to a pycardano input, with an error naming the bad key."""
    return pycardano.TransactionInput.from_primitive(list(primitives.split_txin(key)))


def value_to_json(amount: pycardano.Value | int) -> dict[str, Any]:
    """A pycardano amount as the API's value object."""
    if isinstance(amount, int):
        return {"lovelace": amount}
    out: dict[str, Any] = {"lovelace": amount.coin}
    for policy, assets in amount.multi_asset.items():
        out[bytes(policy.payload).hex()] = {bytes(name.payload).hex(): q for name, q in assets.items()}
    return out


def value_from_json(data: Mapping[str, Any]) -> pycardano.Value:
    """The API's value object as a pycardano Value."""
    coin = data.get("lovelace", 0)
    if not isinstance(coin, int) or coin < 0:
        raise errors.ConfigError(f"value.lovelace: {coin!r} must be a non-negative integer")
    multi: dict[bytes, dict[bytes, int]] = {}
    for policy, assets in data.items():
        if policy == "lovelace":
            continue
        if not isinstance(assets, Mapping):
            raise errors.ConfigError(f"value.{policy}: expected a map of asset name hex to quantity")
        multi[bytes.fromhex(policy)] = {bytes.fromhex(name): int(q) for name, q in assets.items()}
    return (
        pycardano.Value(coin, pycardano.MultiAsset.from_primitive(multi)) if multi else pycardano.Value(coin)
    )


@functools.lru_cache(maxsize=4096)
def _bech32(raw: bytes) -> str:
    return str(pycardano.Address.from_primitive(raw))


def address_text(address: pycardano.Address) -> str:
    """Bech32 of an address, cached: a head has few addresses and encoding is slow."""
    return _bech32(bytes(address.to_primitive()))


def txout_to_json(out: pycardano.TransactionOutput) -> dict[str, Any]:
    """One output in the node's TxOut JSON (null fields present, as the node writes them)."""
    return {
        "address": address_text(out.address),
        "datum": None,
        "datumhash": None,
        "inlineDatum": None,
        "inlineDatumRaw": None,
        "inlineDatumhash": None,
        "referenceScript": None,
        "value": value_to_json(out.amount),
    }


def txout_from_json(data: Mapping[str, Any]) -> pycardano.TransactionOutput:
    """One TxOut JSON object as a pycardano output; datums and scripts are refused."""
    try:
        address = pycardano.Address.from_primitive(data["address"])
    except (KeyError, pycardano.DecodingException, ValueError, TypeError) as exc:
        raise errors.ConfigError(f"TxOut.address: {data.get('address')!r} is not a bech32 address") from exc
    for field in (
        "datum",
        "datumhash",
        "inlineDatum",
        "inlineDatumRaw",
        "inlineDatumhash",
        "referenceScript",
    ):
        if data.get(field) is not None:
            raise errors.ConfigError(f"TxOut.{field}: outputs with datums or scripts are not supported here")
    value = value_from_json(data.get("value") or {})
    amount: pycardano.Value | int = value if value.multi_asset else value.coin
    return pycardano.TransactionOutput(address, amount)


def utxo_from_json(data: Mapping[str, Any]) -> UTxO:
    """A whole UTxO map from the API."""
    result: UTxO = {}
    for key, out in data.items():
        primitives.split_txin(key)  # validates the key's shape
        result[key] = txout_from_json(out)
    return result


def utxo_to_json(utxo: Mapping[str, pycardano.TransactionOutput]) -> dict[str, Any]:
    """A whole UTxO map in the API's shape, keys sorted for stable output."""
    return {key: txout_to_json(utxo[key]) for key in sorted(utxo)}
