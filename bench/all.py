"""Every benchmark in order, each in its own process, with how long each took (`make bench`).

Usage: python -m bench.all [--only paper vs_flower ...]

Each benchmark rewrites its own section of docs/benchmarks.md and its plots under docs/img/.
Benchmarks written by other rooms (Hydra notifications, storage throughput, QLoRA) run too when
their module is present. A failing benchmark is reported and the rest still run; the exit code
is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench._env import REPO_ROOT

BENCHMARKS = ("vs_flower", "startup", "overhead", "paper", "hydra_notify", "storage_throughput", "qlora")


def main() -> None:
    """Run the benchmarks and print a timing summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    args = parser.parse_args()
    chosen = args.only or [b for b in BENCHMARKS if (REPO_ROOT / "bench" / f"{b}.py").is_file()]
    timings: list[tuple[str, float, int]] = []
    for name in chosen:
        print(f"=== bench.{name}", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=REPO_ROOT, check=False).returncode
        timings.append((name, time.perf_counter() - started, code))
        print(f"=== bench.{name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {timings[-1][1]:.0f} s")
    print("\nbenchmark             seconds  result")
    for name, seconds, code in timings:
        print(f"{name:<20}{seconds:>9.0f}  {'ok' if code == 0 else f'exit {code}'}")
    print(f"{'total':<20}{sum(t for _, t, _ in timings):>9.0f}")
    sys.exit(1 if any(code for *_, code in timings) else 0)


if __name__ == "__main__":
    main()
