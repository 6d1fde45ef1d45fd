"""Local training and evaluation of a small image model on in-memory tensors.

The optimiser is SGD with momentum and weight decay, created fresh at the start of every round:
momentum buffers are local state that would not match the new global weights, and a fresh
optimiser keeps a party's round a pure function of (global weights, shard, round, seed).
``SGD`` applies ``torch.optim.SGD``'s update (the single-tensor path torch takes on the CPU)
without ``torch.optim``: every ``torch.optim`` optimiser imports ``torch._dynamo`` on first use,
1.4-2.8 s of import on this machine kind, which sat on the critical path of every simulate's
start-up (the fork server) and of every worker's first round. tests/unit/worker/test_training.py
checks it against ``torch.optim.SGD`` bit for bit. The
learning rate decays per round (``lr * lr_decay ** round``), the same schedule for federated,
local-only and centralized training so the baselines get the same budget.

Public API::

    TrainConfig(lr, batch_size, epochs, momentum=0.0, weight_decay=0.0, lr_decay=1.0, steps=None)
    TrainConfig.from_spec(spec: TrainingSpec) -> TrainConfig
    to_tensors(images: uint8 ndarray, labels) -> (float32 [N,H,W] in 0..1 normalised, int64 [N])
    train_round(model, x, y, config, *, round_no, seed) -> RoundStats(loss, steps, seconds)
    evaluate(model, x, y) -> {"accuracy": float, "loss": float}
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hydrafed.spec import TrainingSpec

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class TrainConfig:
    """Local optimiser settings (SGD); mirrors the training fields of TrainingSpec."""

    lr: float
    batch_size: int
    epochs: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    steps: int | None = None
    """Optimiser steps per round; when set it replaces ``epochs`` (batches continue across epochs)."""

    @classmethod
    def from_spec(cls, spec: TrainingSpec) -> TrainConfig:
        """The local optimiser a TrainingSpec asks for."""
        return cls(
            lr=spec.learning_rate,
            batch_size=spec.batch_size,
            epochs=spec.local_epochs,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            lr_decay=spec.lr_decay,
            steps=spec.local_steps,
        )

    def lr_at(self, round_no: int) -> float:
        """Learning rate of round ``round_no`` (1-based rounds; round 1 uses ``lr``)."""
        return self.lr * self.lr_decay ** max(round_no - 1, 0)


@dataclass(frozen=True)
class RoundStats:
    """What one local round did."""

    loss: float
    """Mean training loss over the round's mini-batches."""
    steps: int
    seconds: float


class SGD:
    """Plain, momentum and weight-decay SGD: ``torch.optim.SGD(params, lr, momentum, weight_decay)``.

    The same arithmetic in the same order as torch's single-tensor update (dampening 0, no
    Nesterov, not maximising), so the weights are bit-identical to ``torch.optim.SGD``'s.
    """

    def __init__(
        self, params: Iterable[nn.Parameter], *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        self.params = list(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self._buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``: the next backward writes fresh ones)."""
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.momentum != 0:
                buffer = self._buffers[i]
                if buffer is None:
                    buffer = torch.clone(grad).detach()
                    self._buffers[i] = buffer
                else:
                    buffer.mul_(self.momentum).add_(grad)
                grad = buffer
            param.add_(grad, alpha=-self.lr)


def to_tensors(
    images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images to normalised float32 tensors (MNIST mean/std) and int64 labels."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = (x - MNIST_MEAN) / MNIST_STD
    return x, torch.from_numpy(labels.astype(np.int64))


def train_round(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    round_no: int,
    seed: int,
) -> RoundStats:
    """``config.epochs`` epochs (or ``config.steps`` steps) of mini-batch SGD.

    The batch order depends only on (seed, round), so a round is reproducible.
    """
    started = time.perf_counter()
    optimiser = SGD(
        model.parameters(),
        lr=config.lr_at(round_no),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed * 1_000_003 + round_no)
    model.train()
    total, steps = 0.0, 0
    n = int(y.shape[0])
    per_epoch = math.ceil(n / config.batch_size)
    budget = config.steps if config.steps is not None else config.epochs * per_epoch
    while steps < budget:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            steps += 1
            if steps >= budget:
                break
    return RoundStats(loss=total / max(steps, 1), steps=steps, seconds=time.perf_counter() - started)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> dict[str, float]:
    """Accuracy and mean cross-entropy on (x, y)."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, int(y.shape[0]), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    n = max(int(y.shape[0]), 1)
    return {"accuracy": correct / n, "loss": loss_sum / n}
