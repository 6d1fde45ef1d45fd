"""Benchmarks against the anchors; `python -m bench.all` runs them all (see docs/benchmarks.md)."""
