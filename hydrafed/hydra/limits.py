"""Size and depth limits for everything the Hydra layer reads from others: one place, one number each.

Peers' transactions, clients' requests to the devnet and a node's outputs to our client are
untrusted. Each parser checks these bounds before it allocates in proportion to what the input
*declares*, so a small message can never cost more than a small answer (docs/reliability.md).
"""

from __future__ import annotations

MAX_TX_BYTES = 64 * 1024
"""A transaction's CBOR, decoded at all only below this (4x cardano's 16 KiB ``maxTxSize``)."""

MAX_CBOR_DEPTH = 32
"""Nesting of arrays, maps and tags in a transaction (a Conway payment tx needs 6)."""

MAX_BIGNUM_BYTES = 64
"""Payload of a CBOR bignum (tags 2 and 3): Plutus integers fit; a 3000-byte integer does not."""

ALLOWED_CBOR_TAGS = frozenset({2, 3, 24, 102, 258, 259, *range(121, 128), *range(1280, 1401)})
"""Tags Conway payment transactions use: bignums, embedded CBOR, Plutus constructors, sets,
Alonzo auxiliary data. Any other (dates, value sharing that builds cycles, ...) is refused."""

MAX_REASON_CHARS = 1024
"""A TxInvalid / SubmitTxInvalid / InvalidInput reason, and an echoed input, are cut here."""

MAX_HTTP_BODY = 1024 * 1024
"""A request body to a node's HTTP API (413 beyond)."""

MAX_WS_FRAME = 1024 * 1024
"""A client's WebSocket frame to a node (closed with 1009, message too big, beyond)."""

MAX_CLIENT_QUEUE = 10_000
"""Frames queued for one slow WebSocket client before the node drops it (it may reconnect)."""

MAX_SERVER_FRAME = 64 * 1024 * 1024
"""A node's WebSocket frame to our client (a SnapshotConfirmed with a large UTxO fits)."""


def cut(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` if short, else its head with the length it had: reasons and echoes stay bounded."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text)} characters in all)"
