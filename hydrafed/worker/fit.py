"""The one gate every update passes before it is used: do these tensors fit ours?

Peers' files are untrusted. A peer's update (``party.load_peer_update``), the updates of a round
(``aggregation.check_compatible``) and the global state a task loads (``MnistTask``, the LM
adapters) all go through ``check_fits``: the same names, shapes and dtypes as the reference, and
no NaN or infinity in floating-point tensors. Errors name whose tensor failed and how.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hydrafed.errors import AggregationError


def check_fits(
    tensors: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    *,
    whose: str,
    against: str = "the model",
    finite: bool = True,
) -> None:
    """Raise AggregationError unless ``tensors`` matches ``reference`` name by name.

    Parameters
    ----------
    whose, against
        How the error names the two sides, e.g. ``"bob's round 3 update"`` and ``"the model"``.
    finite
        Also refuse NaN or infinity in floating-point tensors.
    """
    if set(tensors) != set(reference):
        missing, extra = sorted(set(reference) - set(tensors)), sorted(set(tensors) - set(reference))
        raise AggregationError(
            f"{whose} has different tensors than {against}: missing {missing}, unexpected {extra}"
        )
    for name in sorted(tensors):
        value, ref = tensors[name], reference[name]
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise AggregationError(
                f"{whose} tensor {name!r} is {value.dtype} {tuple(value.shape)}, "
                f"{against} has {ref.dtype} {tuple(ref.shape)}"
            )
        if finite and value.is_floating_point() and not all_finite(value):
            raise AggregationError(f"{whose} tensor {name!r} holds NaN or infinity: refused")


def all_finite(value: torch.Tensor) -> bool:
    """No NaN or infinity in ``value``: its min and max are finite (NaN propagates through both).

    One pass without a mask tensor: 0.03 ms for the MLP's 784x200 weight where
    ``isfinite(value).all()`` took 0.67 ms, and every party checks every update of every round.
    """
    if value.numel() == 0:
        return True
    low, high = torch.aminmax(value.detach())
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))
