"""The small full models federated on MNIST-like data: the paper's MLP and a small CNN.

Initial weights are a pure function of the seed, so every party starts from the same global
model without exchanging round-0 weights. Models take the image size of the dataset (28x28 for
MNIST/IDX, 8x8 for scikit-learn digits).

Public API::

    MODEL_NAMES = ("mlp", "cnn")
    build_model(name, input_shape=(28, 28), num_classes=10, *, seed=0) -> torch.nn.Module
    count_parameters(model) -> int

MLP: input-200-200-classes with ReLU (784-200-200-10 on MNIST: 199,210 parameters).
CNN: conv5x5(32)-pool-conv5x5(64)-pool-fc(512)-classes with ReLU (padding keeps the size, so
it works on 8x8 digits too; 28x28: 1,663,370 parameters, the paper's CNN).
"""

from __future__ import annotations

import torch
from torch import nn

from hydrafed.errors import ConfigError
from hydrafed.spec import ModelName

MODEL_NAMES = (ModelName.MLP.value, ModelName.CNN.value)


class MLP(nn.Module):
    """Two hidden ReLU layers of 200 units (McMahan et al.'s "2NN")."""

    def __init__(self, input_shape: tuple[int, int], num_classes: int, hidden: int = 200) -> None:
        super().__init__()
        inputs = input_shape[0] * input_shape[1]
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class CNN(nn.Module):
    """Two 5x5 conv layers (32, 64 channels) with 2x2 max-pooling, then FC 512 (the paper's CNN)."""

    def __init__(self, input_shape: tuple[int, int], num_classes: int) -> None:
        super().__init__()
        height, width = (input_shape[0] // 2) // 2, (input_shape[1] // 2) // 2
        if height < 1 or width < 1:
            raise ConfigError(f"images of {input_shape} are too small for the cnn model: use mlp")
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * height * width, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.net(x)  # type: ignore[no-any-return]


def build_model(
    name: ModelName | str, input_shape: tuple[int, int] = (28, 28), num_classes: int = 10, *, seed: int = 0
) -> nn.Module:
    """A freshly initialised model whose weights depend only on (name, shape, classes, seed)."""
    try:
        model_name = ModelName(name)
    except ValueError:
        model_name = None
    if model_name not in (ModelName.MLP, ModelName.CNN):
        raise ConfigError(f"model {name!r} is not an image model: choose one of {', '.join(MODEL_NAMES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model_name == ModelName.MLP:
            return MLP(input_shape, num_classes)
        return CNN(input_shape, num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (for reports and sizing)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
