"""Models: the paper's sizes, initial weights that depend only on the seed, clear errors."""

from __future__ import annotations

import pytest
import torch

from hydrafed.errors import ConfigError
from hydrafed.worker.models import build_model, count_parameters

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "params"), [("mlp", 199_210), ("cnn", 1_663_370)])
def test_paper_model_sizes_on_28x28(name: str, params: int) -> None:
    model = build_model(name, (28, 28), 10, seed=0)

    assert count_parameters(model) == params
    assert model(torch.zeros(4, 28, 28)).shape == (4, 10)


def test_models_take_the_8x8_digits_too() -> None:
    for name in ("mlp", "cnn"):
        assert build_model(name, (8, 8), 10, seed=0)(torch.zeros(2, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_initial_weights_depend_only_on_the_seed(name: str) -> None:
    torch.manual_seed(123)
    first = build_model(name, seed=5).state_dict()
    torch.manual_seed(456)
    again = build_model(name, seed=5).state_dict()
    other = build_model(name, seed=6).state_dict()

    assert all(torch.equal(first[k], again[k]) for k in first)
    key = next(iter(first))
    assert not torch.equal(first[key], other[key])


def test_building_a_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    build_model("mlp", seed=1)

    assert torch.equal(torch.rand(3), expected)


def test_unknown_model_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'resnet'.*choose one of mlp, cnn"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="too small for the cnn"):
        build_model("cnn", (3, 3))
