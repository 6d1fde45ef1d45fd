"""lora-exact on known tensors: exact when the mean product fits the rank, FedAvg is not."""

from __future__ import annotations

import pytest
import torch

from hydrafed.errors import AggregationError
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.aggregation.fedavg import fedavg
from hydrafed.worker.aggregation.lora_exact import LoraExact, lora_exact, lora_pairs

pytestmark = pytest.mark.unit

A, B = "m.q_proj.lora_A.weight", "m.q_proj.lora_B.weight"


def _update(party: str, samples: int, a: torch.Tensor, b: torch.Tensor, **extra: torch.Tensor) -> Update:
    return Update(party, samples, {A: a, B: b, **extra})


def _product(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return tensors[B].double() @ tensors[A].double()


def test_rank_one_products_are_averaged_exactly_fedavg_is_not() -> None:
    # Prepare: two rank-1 adapters on the same direction of A, weighted 1:3
    a = torch.tensor([[1.0, 2.0, 0.0]])
    b1, b2 = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [2.0]])
    updates = [_update("p1", 1, a, b1), _update("p2", 3, 2 * a, b2)]
    expected = 0.25 * (b1 @ a) + 0.75 * (b2 @ (2 * a))
    # Execute
    exact, residuals = lora_exact(updates)
    plain = fedavg(updates)
    # Assert
    torch.testing.assert_close(_product(exact), expected.double(), rtol=0, atol=1e-6)
    assert residuals == {"m.q_proj.weight": pytest.approx(0.0, abs=1e-12)}
    assert float((_product(plain) - expected).abs().max()) > 0.5


def test_full_rank_mean_keeps_the_best_rank_r_part_and_reports_the_rest() -> None:
    # Prepare: orthogonal rank-1 updates whose mean has rank 2 > r = 1
    a1, a2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    b1, b2 = torch.tensor([[3.0], [0.0]]), torch.tensor([[0.0], [1.0]])
    # Execute
    exact, residuals = lora_exact([_update("p1", 1, a1, b1), _update("p2", 1, a2, b2)])
    # Assert: mean = diag(1.5, 0.5); its best rank-1 part is diag(1.5, 0)
    torch.testing.assert_close(
        _product(exact), torch.tensor([[1.5, 0.0], [0.0, 0.0]], dtype=torch.float64), atol=1e-6, rtol=0
    )
    assert residuals["m.q_proj.weight"] == pytest.approx(0.5 / (1.5**2 + 0.5**2) ** 0.5)


def test_single_party_round_trips_its_product_and_other_tensors_use_fedavg() -> None:
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 16, generator=generator), torch.randn(8, 4, generator=generator)
    head1, head2 = torch.ones(3), torch.zeros(3)
    result = LoraExact().aggregate([_update("p2", 1, a, b, head=head2), _update("p1", 1, a, b, head=head1)])
    torch.testing.assert_close(_product(result.tensors), (b @ a).double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.tensors["head"], torch.full((3,), 0.5))
    assert result.tensors[A].dtype == torch.float32
    assert set(result.state) == {"m.q_proj.weight.residual"}


def test_order_of_arrival_does_not_change_a_bit() -> None:
    generator = torch.Generator().manual_seed(2)
    updates = [
        _update(
            f"p{i}", i + 1, torch.randn(2, 6, generator=generator), torch.randn(5, 2, generator=generator)
        )
        for i in range(3)
    ]
    first, _ = lora_exact(updates)
    second, _ = lora_exact(list(reversed(updates)))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_registry_serves_lora_exact() -> None:
    assert get_aggregator("lora-exact").name == "lora-exact"


def test_unpaired_and_non_lora_tensors_are_refused_with_the_key() -> None:
    with pytest.raises(AggregationError, match=r"lora_A.weight.*no matching B"):
        lora_pairs([A])
    with pytest.raises(AggregationError, match="no matching A"):
        lora_pairs([B])
    with pytest.raises(AggregationError, match="use fedavg"):
        lora_exact([Update("p1", 1, {"fc.weight": torch.ones(2, 2)})])
