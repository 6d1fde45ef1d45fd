"""Properties of native-script decoding and evaluation over generated scripts (hypothesis)."""

from __future__ import annotations

import cbor2
import pycardano
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydrafed.hydra import native_script

pytestmark = pytest.mark.unit

KEYS = [bytes([i]) * 28 for i in range(4)]

leaf = st.one_of(
    st.sampled_from(KEYS).map(lambda k: pycardano.ScriptPubkey(pycardano.VerificationKeyHash(k))),
    st.integers(0, 200).map(pycardano.InvalidBefore),
    st.integers(0, 200).map(pycardano.InvalidHereAfter),
)
scripts = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(pycardano.ScriptAll),
        st.lists(inner, max_size=4).map(pycardano.ScriptAny),
        st.tuples(st.integers(-1, 5), st.lists(inner, max_size=4)).map(lambda t: pycardano.ScriptNofK(*t)),
    ),
    max_leaves=12,
)
slots = st.one_of(st.none(), st.integers(0, 200))


@settings(max_examples=60, deadline=None)
@given(scripts)
def test_decoding_inverts_encoding_and_the_hash_is_pycardanos(script: pycardano.NativeScript) -> None:
    raw = script.to_cbor()
    assert native_script.from_primitive(cbor2.loads(raw)).to_cbor() == raw
    (h,) = native_script.witness_scripts(cbor2.dumps({1: [cbor2.loads(raw)]}))
    assert h == bytes(script.hash().payload)


@settings(max_examples=100, deadline=None)
@given(scripts, st.sets(st.sampled_from(KEYS)), slots, slots)
def test_more_signers_and_a_narrower_interval_never_hurt(
    script: pycardano.NativeScript, signed: set[bytes], lo: int | None, hi: int | None
) -> None:
    # evalTimelock is monotone: adding a signature, raising invalid_before or lowering
    # invalid_hereafter (a narrower interval) cannot turn a holding script into a failing one.
    holds = native_script.evaluate(script, signed, lo, hi)
    if holds:
        assert native_script.evaluate(script, signed | set(KEYS), lo, hi)
        assert native_script.evaluate(script, signed, None if lo is None else lo + 1, hi)
        assert native_script.evaluate(script, signed, lo, None if hi is None else max(0, hi - 1))
