"""training.SGD: torch.optim.SGD's weights bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from hydrafed.worker import models
from hydrafed.worker.training import SGD

pytestmark = pytest.mark.unit


def _trained(optimiser_for: type, *, momentum: float, weight_decay: float, steps: int = 12) -> nn.Module:
    torch.manual_seed(7)
    model = models.build_model("mlp")
    x = torch.randn(64 * steps, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (64 * steps,), generator=torch.Generator().manual_seed(2))
    optimiser = optimiser_for(model.parameters(), lr=0.3, momentum=momentum, weight_decay=weight_decay)
    for step in range(steps):
        batch = slice(64 * step, 64 * (step + 1))
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimiser.step()
    return model


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.0, 1e-3), (0.9, 5e-4)])
def test_sgd_matches_torch_optim_sgd_bit_for_bit(momentum: float, weight_decay: float) -> None:
    ours = _trained(SGD, momentum=momentum, weight_decay=weight_decay)
    torch_sgd = _trained(torch.optim.SGD, momentum=momentum, weight_decay=weight_decay)

    theirs = torch_sgd.state_dict()
    for name, mine in ours.state_dict().items():
        assert torch.equal(mine, theirs[name]), name
    untrained = models.build_model("mlp")
    assert not torch.equal(next(iter(ours.parameters())), next(iter(untrained.parameters())))


def test_a_round_of_training_imports_no_dynamo() -> None:
    """The import this optimiser exists to avoid: it cost the fork server 1.4-2.8 s."""
    code = (
        "import sys, torch\n"
        "from hydrafed.worker import models\n"
        "from hydrafed.worker.training import TrainConfig, train_round\n"
        "model = models.build_model('mlp')\n"
        "x, y = torch.randn(200, 28, 28), torch.randint(0, 10, (200,))\n"
        "config = TrainConfig(lr=0.1, batch_size=64, epochs=1, momentum=0.9, weight_decay=1e-4)\n"
        "train_round(model, x, y, config, round_no=1, seed=0)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
