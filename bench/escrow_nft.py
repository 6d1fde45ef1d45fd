"""Escrow and provenance-NFT txs: their size against the head's and L1's limits, and the cost of
the devnet ledger's check (native-script evaluation included) against a plain announcement.

For N parties (M = ceil(2 (N - 1) / 3) for the escrow, N-of-N for the NFT) it builds, with the
real builders, the slash (M witnesses, script inline, evidence metadata), the release and the
L1 mint (every witness, CIP-25 metadata), and times ``ledger.validate_tx`` on each (median of
``--repeat`` runs) beside a round announcement's check.

Run: ``.venv/bin/python -m bench.escrow_nft [--parties 4 10 29] [--repeat 200] [--docs]``;
``--docs`` writes the "Escrow and NFT txs" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import pycardano

from bench import _docs
from hydrafed.hydra import escrow, keys, ledger, nft
from hydrafed.hydra import tx as tx_mod
from hydrafed.hydra.devnet.emulated_head import DEFAULT_PROTOCOL_PARAMETERS

HEADING = "Escrow and NFT txs"
HEAD = ledger.LedgerParams.from_json(DEFAULT_PROTOCOL_PARAMETERS)
L1 = ledger.LedgerParams(tx_fee_fixed=155_381, tx_fee_per_byte=44, max_tx_size=16_384)
NET = pycardano.Network.TESTNET


def _median_ms(check: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        check()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(n: int, repeat: int) -> dict[str, float | int]:
    """Sizes (bytes) and ledger-check medians (ms) of one N-party federation's txs."""
    parties = [keys.generate_party_keys(f"p{i:02d}") for i in range(n)]
    m = max(1, -(-2 * (n - 1) // 3))
    terms = escrow.EscrowTerms(
        fed="fed",
        members=tuple(escrow.Member.of(k) for k in parties),
        threshold=m,
        refund_slot=10**6,
        amount=100_000_000,
    )
    owner, others = parties[0], parties[1:]
    ref = "aa" * 32 + "#0"
    utxo = {ref: pycardano.TransactionOutput(terms.address(owner.name), 100_000_000)}
    evidence = escrow.HashMismatch(3, owner.name, "11" * 32, "22" * 32, "33" * 32)
    slash = escrow.build_slash(terms, evidence, [(ref, 100_000_000)], HEAD)
    slash_env = escrow.gather(slash, terms, owner.name, [slash.sign(k) for k in others])
    release = escrow.build_release(terms, owner.name, [(ref, 100_000_000)], HEAD)
    release_env = escrow.gather(release, terms, owner.name, [release.sign(k) for k in others])
    funds = {"bb" * 32 + "#0": pycardano.TransactionOutput(owner.address(), 50_000_000)}
    policy = nft.policy([k.participant_id for k in parties], n, 10**6)
    provenance = nft.Provenance(
        "fed", 20, tuple(k.name for k in parties), "s3://fed/final/global.safetensors", "44" * 32, "55" * 32
    )
    mint = nft.build_mint(provenance, policy, payer=owner.address(), l1_utxo=funds, params=L1, signers=n)
    mint_env = mint.envelope([mint.sign(k) for k in parties])
    ann = tx_mod.Announcement("fed", 3, owner.name, "s3://p00/fed/rounds/3/p00", "66" * 32, 6000)
    ann_env = tx_mod.build_announcement_tx(
        ann,
        keys=owner,
        utxo=funds,
        peer_addresses=[str(k.address()) for k in others],
        protocol_parameters=DEFAULT_PROTOCOL_PARAMETERS,
    )
    return {
        "parties": n,
        "threshold": m,
        "slashBytes": len(slash_env["cborHex"]) // 2,
        "releaseBytes": len(release_env["cborHex"]) // 2,
        "mintBytes": len(mint_env["cborHex"]) // 2,
        "slashCheckMs": _median_ms(lambda: ledger.validate_tx(slash_env["cborHex"], utxo, HEAD, NET), repeat),
        "mintCheckMs": _median_ms(
            lambda: ledger.validate_tx(mint_env["cborHex"], funds, L1, NET, current_slot=10), repeat
        ),
        "announceCheckMs": _median_ms(
            lambda: ledger.validate_tx(ann_env["cborHex"], funds, HEAD, NET), repeat
        ),
    }


def section(rows: list[dict[str, float | int]], load_before: str, load_after: str, repeat: int) -> str:
    """The docs section: the table, what it measures, machine and load."""
    header = [
        "N",
        "M (slash)",
        "slash (B)",
        "release (B)",
        "L1 mint, N-of-N (B)",
        "check: slash (ms)",
        "check: mint (ms)",
        "check: announcement (ms)",
    ]
    body = [
        [
            str(r["parties"]),
            str(r["threshold"]),
            f"{r['slashBytes']:,}",
            f"{r['releaseBytes']:,}",
            f"{r['mintBytes']:,}",
            f"{r['slashCheckMs']:.2f}",
            f"{r['mintCheckMs']:.2f}",
            f"{r['announceCheckMs']:.2f}",
        ]
        for r in rows
    ]
    return "\n\n".join(
        [
            "The escrow's slash and release (M of the other parties' witnesses, the script inline, "
            "evidence metadata under label 1991) and the provenance NFT's L1 mint (every party's "
            "witness, CIP-25 metadata, L1 fees 155,381 + 44/byte), built by `hydrafed.hydra.escrow` "
            "and `hydrafed.hydra.nft`; limits: the head's `maxTxSize` 10,250 bytes, L1's 16,384. "
            f"Check: the devnet ledger's `validate_tx` on each (median of {repeat}), beside a round "
            "announcement's (N - 1 peer outputs, no script).",
            _docs.table(header, body),
            f"Machine: {_docs.machine()}; load average (1/5/15 min) {load_before} before, "
            f"{load_after} after. Rerun: `.venv/bin/python -m bench.escrow_nft --docs` "
            "(`--parties`, `--repeat`).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, nargs="+", default=[4, 10, 29])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--docs", action="store_true", help="write the section into docs/benchmarks.md")
    args = parser.parse_args()
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [measure(n, args.repeat) for n in args.parties]
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = section(rows, before, after, args.repeat)
    print(f"## {HEADING}\n\n{text}")
    if args.docs:
        _docs.write_section(HEADING, text)


if __name__ == "__main__":
    main()
