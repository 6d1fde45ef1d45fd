"""state_sha256: the digest parties compare to prove they hold bit-identical weights."""

from __future__ import annotations

import pytest
import torch

from hydrafed.worker.party import state_sha256

pytestmark = pytest.mark.unit


def _state() -> dict[str, torch.Tensor]:
    return {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.tensor(1.5),
        "h": torch.ones(3, dtype=torch.bfloat16),
    }


def test_equal_states_have_equal_digests_whatever_the_key_order() -> None:
    state = _state()
    assert state_sha256(state) == state_sha256(dict(reversed(list(_state().items()))))


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["w"].view(-1).__setitem__(0, 1e-45),  # one denormal in one element
        lambda s: s.__setitem__("w", s["w"].reshape(3, 2)),  # same bytes, other shape
        lambda s: s.__setitem__("h", s["h"].to(torch.float16)),  # same values, other dtype
        lambda s: s.__setitem__("x", s.pop("w")),  # same tensor, other name
    ],
)
def test_any_difference_in_bits_shape_dtype_or_name_changes_the_digest(change: object) -> None:
    changed = _state()
    change(changed)  # type: ignore[operator]
    assert state_sha256(changed) != state_sha256(_state())
