"""Rounds of updates for the aggregation tests: seeded, with magnitudes that differ per party."""

from __future__ import annotations

import torch

from hydrafed.worker.aggregation import Update


def sample_updates(samples: list[int], dtype: torch.dtype, seed: int = 11) -> list[Update]:
    """One update per sample count (parties ``party-00``...), tensors of ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    updates = []
    for i, count in enumerate(samples):
        scale = 10.0 ** (i % 5 - 2)  # magnitudes from 0.01 to 100: the low bits differ per party
        values = {
            k: torch.randn(shape, generator=gen, dtype=torch.float64) * scale
            for k, shape in {"w": (200, 78), "b": (200,), "s": ()}.items()
        }
        if not dtype.is_floating_point:
            values = {k: torch.round(v * 1000) for k, v in values.items()}
        updates.append(Update(f"party-{i:02d}", count, {k: v.to(dtype) for k, v in values.items()}))
    return updates
