"""fit.all_finite: one pass over min and max finds any NaN or infinity, in every float dtype."""

from __future__ import annotations

import pytest
import torch

from hydrafed.worker.fit import all_finite

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_single_bad_value_anywhere_is_found(dtype: torch.dtype, bad: float) -> None:
    tensor = torch.randn(200, 78).to(dtype)
    assert all_finite(tensor)
    tensor[123 % 200, 77] = bad
    assert not all_finite(tensor)


def test_empty_and_scalar_tensors() -> None:
    assert all_finite(torch.empty(0))
    assert all_finite(torch.tensor(1.0))
    assert not all_finite(torch.tensor(float("nan")))
