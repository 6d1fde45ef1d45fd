"""The seam between the round loop and what is trained.

The round loop (``hydrafed.worker.party``) never knows whether it federates an MLP on MNIST or
LoRA adapters on a 4-bit Llama: it talks to a ``LocalTask``. A task owns its model, its data
shard and its optimiser; what it exchanges with peers is a flat mapping of named tensors (the
whole state dict for small models, only the adapter tensors for QLoRA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    """What one round of local training produced, besides the new weights."""

    samples: int
    """Training examples this party holds: the FedAvg weight."""
    seconds: float
    """Wall time spent in local training (for the overhead split in reports)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Training metrics, e.g. {"loss": 0.12}."""


class LocalTask(Protocol):
    """One party's model, data shard and optimiser, driven round by round."""

    def exchanged_state(self) -> Tensors:
        """The tensors this party uploads (detached CPU copies, deterministic key order)."""
        ...

    def load_exchanged_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the exchanged tensors with the aggregated global ones."""
        ...

    def train_round(self, round_no: int) -> TrainResult:
        """Train locally from the currently loaded global state."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Metrics on the common held-out set, e.g. {"accuracy": 0.95, "loss": 0.17}."""
        ...
