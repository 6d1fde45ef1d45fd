"""Hypothesis strategies and the settings profiles of the fuzz tests.

Each test runs under ``PROFILE``: ``fuzz`` (the default: 200 examples per test, so the unit
suite stays fast) or, with ``HYPOTHESIS_PROFILE=long``, 5,000 examples per test for the run
recorded in docs/reliability.md. No example database is written into the checkout.
"""

from __future__ import annotations

import os
from typing import Any

import cbor2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "fuzz", max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long",
    max_examples=5_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))
"""Decorate each fuzz test with this (scoped: other tests' hypothesis settings are untouched)."""

#: Tags a transaction may carry, and some it may not (dates, value sharing, rationals, URIs).
TAGS = st.sampled_from([2, 3, 24, 121, 258, 259, 1280, 0, 1, 28, 29, 30, 32, 55799, 2**40])

INTS = st.one_of(
    st.integers(-(2**64) + 1, 2**64 - 1),
    st.integers(-(2**600), 2**600),  # bignums, some over the 64-byte limit
    st.sampled_from([0, 1, 28, 32, 2**63, 2**64 - 1, 500_000_000, -1]),
)

SCALARS = st.one_of(
    INTS,
    st.binary(max_size=80),
    st.text(max_size=80),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)


def cbor_values(max_leaves: int = 40) -> st.SearchStrategy[Any]:
    """Anything cbor2 can encode: scalars, arrays, maps and tagged values, nested."""
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(
                st.one_of(st.integers(0, 30), st.binary(max_size=30), st.text(max_size=8)), inner, max_size=6
            ),
            st.builds(cbor2.CBORTag, TAGS, inner),
        ),
        max_leaves=max_leaves,
    )


def json_values(max_leaves: int = 40) -> st.SearchStrategy[Any]:
    """Any JSON document."""
    scalar = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
    )
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=12), inner, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with bytes flipped, cut, duplicated or inserted: near-valid input."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
            pos = draw(st.integers(0, max(0, len(out) - 1)))
            if op == "flip" and out:
                out[pos] = draw(st.integers(0, 255))
            elif op == "cut":
                out = out[:pos]
            elif op == "insert":
                out[pos:pos] = draw(st.binary(min_size=1, max_size=9))
            elif out:
                out[pos:pos] = out[pos : pos + draw(st.integers(1, 16))]
        return bytes(out)

    return build()
