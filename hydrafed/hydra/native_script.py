"""Native (timelock) scripts: decoding from a tx's witness set, hashing, and evaluation.

pycardano builds and hashes native scripts but cannot evaluate them, and it fails to decode an
indefinite-length script array. The devnet's ledger therefore reads scripts itself: each
script is decoded from the CBOR primitives into pycardano's classes (so builders and the ledger
share one representation) and hashed over the bytes as sent, never over a re-encoding, as
cardano-ledger does. :func:`evaluate` follows cardano-ledger's Allegra ``evalTimelock``.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeAlias

import cbor2
import pycardano

from hydrafed import errors
from hydrafed.hydra import cbor

#: Any of the six timelock forms (pycardano's classes, shared with the tx builders).
NativeScript: TypeAlias = pycardano.NativeScript

#: The language tag prefixed to a native script's bytes before hashing.
NATIVE_SCRIPT_TAG = b"\x00"


class ScriptDecodeError(errors.HeadError):
    """A native script's CBOR is not one of the six timelock forms."""


def script_hash(script_bytes: bytes) -> bytes:
    """The script hash (policy id, payment credential): blake2b-224 of ``0x00 || bytes``."""
    return hashlib.blake2b(NATIVE_SCRIPT_TAG + script_bytes, digest_size=28).digest()


def _items(value: Any) -> list[Any]:
    if isinstance(value, cbor2.CBORTag) and value.tag == 258:
        value = value.value
    if not isinstance(value, list):
        raise ScriptDecodeError("a native script's sub-scripts are not an array")
    return value


def _slot(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScriptDecodeError(f"{what} slot {value!r} is not a non-negative integer")
    return value


def from_primitive(value: Any, depth: int = 0) -> NativeScript:
    """One native script from its decoded CBOR: ``[0, keyhash]``, ``[1, [s]]`` … ``[5, slot]``."""
    if depth > 64:
        raise ScriptDecodeError("native script nests deeper than 64 levels")
    if not isinstance(value, list) or not value or not isinstance(value[0], int):
        raise ScriptDecodeError("a native script is not an array starting with its type")
    kind, args = value[0], value[1:]
    if kind == 0 and len(args) == 1 and isinstance(args[0], bytes) and len(args[0]) == 28:
        return pycardano.ScriptPubkey(pycardano.VerificationKeyHash(args[0]))
    if kind in (1, 2) and len(args) == 1:
        subs = [from_primitive(s, depth + 1) for s in _items(args[0])]
        return pycardano.ScriptAll(subs) if kind == 1 else pycardano.ScriptAny(subs)
    if kind == 3 and len(args) == 2 and isinstance(args[0], int):
        return pycardano.ScriptNofK(args[0], [from_primitive(s, depth + 1) for s in _items(args[1])])
    if kind == 4 and len(args) == 1:
        return pycardano.InvalidBefore(_slot(args[0], "invalid_before"))
    if kind == 5 and len(args) == 1:
        return pycardano.InvalidHereAfter(_slot(args[0], "invalid_hereafter"))
    raise ScriptDecodeError(f"native script of type {kind} with {len(args)} argument(s) is malformed")


def evaluate(script: NativeScript, signed_by: set[bytes], lo: int | None, hi: int | None) -> bool:
    """cardano-ledger's ``evalTimelock``: does ``script`` hold for these signers and interval?

    ``signed_by`` holds the key hashes of *verified* vkey witnesses; ``lo``/``hi`` are the tx's
    validity interval (``validity_start``, ``ttl``), None when unbounded. A time lock is judged
    against the interval, not the clock: the ledger separately requires the current slot to lie
    inside it, so ``InvalidBefore(s)`` needs ``s <= lo`` and ``InvalidHereAfter(s)`` needs
    ``hi <= s``. ``NofK`` with ``n <= 0`` holds (even for negative n), as in the ledger.
    """
    if isinstance(script, pycardano.ScriptPubkey):
        key_hash: bytes = bytes(script.key_hash.payload)
        return key_hash in signed_by
    if isinstance(script, pycardano.ScriptAll):
        return all(evaluate(s, signed_by, lo, hi) for s in script.native_scripts)
    if isinstance(script, pycardano.ScriptAny):
        return any(evaluate(s, signed_by, lo, hi) for s in script.native_scripts)
    if isinstance(script, pycardano.ScriptNofK):
        need = int(script.n)
        for sub in script.native_scripts:
            if need <= 0:
                return True
            if evaluate(sub, signed_by, lo, hi):
                need -= 1
        return need <= 0
    if isinstance(script, pycardano.InvalidBefore):
        return lo is not None and int(script.before) <= lo
    if isinstance(script, pycardano.InvalidHereAfter):
        return hi is not None and hi <= int(script.after)
    raise ScriptDecodeError(f"not a native script: {type(script).__name__}")


def _container_done(data: bytes, pos: int, count: int | None, seen: int) -> bool:
    """Whether a container's items end at ``pos``: ``count`` seen, or the break of an indefinite one."""
    if count is None:
        return pos < len(data) and data[pos] == 0xFF
    return seen >= count


def witness_script_spans(witness_set: bytes) -> list[bytes]:
    """The bytes of each native script in a witness set (key 1), exactly as sent.

    The hash of a script is taken over these bytes; re-encoding a decoded script may change
    them (indefinite-length arrays, non-minimal integers). The walk is :mod:`hydrafed.hydra.cbor`'s
    bounded one, so no declared length is trusted.
    """
    data = witness_set
    try:
        major, pos, count = cbor.item_header(data, 0)
        if major != 5:
            raise ScriptDecodeError("witness set is not a map")
        spans: list[bytes] = []
        seen = 0
        while not _container_done(data, pos, count, seen):
            seen += 1
            key_end = cbor.check_item(data, pos)
            is_scripts = cbor2.loads(data[pos:key_end]) == 1
            pos = key_end
            if not is_scripts:
                pos = cbor.check_item(data, pos)
                continue
            major, pos, length = cbor.item_header(data, pos)
            if major == 6 and length == 258:
                major, pos, length = cbor.item_header(data, pos)
            if major != 4:
                raise ScriptDecodeError("witness set key 1 (native scripts) is not an array")
            taken = 0
            while not _container_done(data, pos, length, taken):
                taken += 1
                end = cbor.check_item(data, pos)
                spans.append(data[pos:end])
                pos = end
            if length is None:
                pos += 1  # the break that ends the indefinite array
        return spans
    except (cbor.CBORLimitError, cbor2.CBORDecodeError, ValueError) as exc:
        raise ScriptDecodeError(f"witness set does not decode: {exc}") from exc


def witness_scripts(witness_set: bytes) -> dict[bytes, NativeScript]:
    """The native scripts a witness set provides, keyed by their hash."""
    scripts: dict[bytes, NativeScript] = {}
    for span in witness_script_spans(witness_set):
        try:
            value = cbor2.loads(span)
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise ScriptDecodeError(f"a native script does not decode: {exc}") from exc
        scripts[script_hash(span)] = from_primitive(value)
    return scripts
