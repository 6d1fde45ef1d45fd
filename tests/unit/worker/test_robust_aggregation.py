"""The robust aggregators' maths on small tensors: median, trimmed mean, Krum, multi-Krum, clipping."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from hydrafed.errors import AggregationError
from hydrafed.spec import RobustSpec
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.aggregation.clipping import change_norm, clip
from hydrafed.worker.aggregation.fedavg import fedavg
from hydrafed.worker.aggregation.krum import krum, scores
from hydrafed.worker.aggregation.median import median
from hydrafed.worker.aggregation.trimmed_mean import trim_count, trimmed_mean

pytestmark = pytest.mark.unit


def _updates(*rows: list[float], samples: int = 10) -> list[Update]:
    return [Update(f"p{i}", samples, {"w": torch.tensor(row)}) for i, row in enumerate(rows)]


def test_median_takes_the_middle_value_of_every_coordinate() -> None:
    # Prepare: the hostile p2 sends huge values and claims a huge sample count
    updates = _updates([1.0, 5.0], [2.0, 4.0], [1000.0, -1000.0])
    updates[2] = Update("p2", 10**12, updates[2].tensors)

    # Execute
    result = median(updates)

    # Assert
    assert torch.equal(result["w"], torch.tensor([2.0, 4.0]))


def test_median_of_an_even_count_averages_the_middle_pair_and_keeps_dtypes() -> None:
    updates = [
        Update(
            f"p{i}", 1, {"w": torch.tensor([v], dtype=torch.float32), "n": torch.tensor(v, dtype=torch.int64)}
        )
        for i, v in enumerate([1, 2, 4, 100])
    ]

    result = median(updates)

    assert torch.equal(result["w"], torch.tensor([3.0]))
    assert result["w"].dtype == torch.float32 and result["n"].dtype == torch.int64
    assert int(result["n"]) == 3


def test_median_leaves_out_zero_sample_updates() -> None:
    updates = _updates([1.0], [2.0], [3.0])
    updates.append(Update("p3", 0, {"w": torch.tensor([float("nan")])}))

    assert torch.equal(median(updates)["w"], torch.tensor([2.0]))


def test_trimmed_mean_cuts_k_values_at_each_end() -> None:
    updates = _updates([0.0], [1.0], [2.0], [3.0], [-500.0], [500.0])

    # floor(0.2 * 6) = 1 cut at each end: mean of 0, 1, 2, 3
    assert trim_count(6, 0.2) == 1
    assert torch.equal(trimmed_mean(updates, 0.2)["w"], torch.tensor([1.5]))
    # no trimming is the plain unweighted mean
    assert torch.allclose(trimmed_mean(updates, 0.0)["w"], torch.tensor([1.0]))


def test_trim_count_always_leaves_one_value() -> None:
    assert trim_count(3, 0.49) == 1
    assert trim_count(2, 0.49) == 0
    assert trim_count(1, 0.4) == 0


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    # Prepare: four close honest updates, one far away (n = 5 > 2f + 2 with f = 1)
    updates = _updates([1.0, 1.0], [1.1, 0.9], [0.9, 1.0], [1.0, 1.2], [50.0, -50.0])

    # Execute
    score = scores(updates, byzantine=1)
    chosen = krum(updates, byzantine=1, select=1)

    # Assert: p4's score is the sum of its 2 nearest squared distances, far above the others
    assert max(score, key=lambda p: score[p]) == "p4"
    best = min(score, key=lambda p: (score[p], p))
    assert torch.equal(chosen["w"], next(u for u in updates if u.party == best).tensors["w"])
    expected_p0 = sorted([0.02, 0.01, 0.04, 49.0**2 + 51.0**2])[:2]
    assert score["p0"] == pytest.approx(math.fsum(expected_p0))


def test_multi_krum_averages_the_best_n_minus_f() -> None:
    updates = _updates([1.0], [2.0], [3.0], [4.0], [1000.0])

    result = krum(updates, byzantine=1, select=None)

    assert torch.equal(result["w"], torch.tensor([2.5]))  # 1000 is left out, the rest averaged


def test_krum_refuses_too_few_updates_naming_the_field() -> None:
    with pytest.raises(AggregationError, match=r"training\.robust\.byzantine=1 needs more than 4"):
        krum(_updates([1.0], [2.0], [3.0], [4.0]), byzantine=1)


def test_clip_scales_a_large_change_to_the_bound_and_keeps_small_ones() -> None:
    current = {"w": torch.tensor([1.0, 1.0])}
    big = Update("a", 5, {"w": torch.tensor([4.0, 5.0])})  # change (3, 4): norm 5
    small = Update("b", 5, {"w": torch.tensor([1.5, 1.0])})

    clipped = clip(big, current, 1.0)

    assert change_norm(big, current) == 5.0
    assert torch.allclose(clipped.tensors["w"], torch.tensor([1.6, 1.8]))
    assert change_norm(clipped, current) == pytest.approx(1.0, rel=1e-6)
    assert clip(small, current, 1.0) is small


def test_clipped_fedavg_bounds_a_scaled_update() -> None:
    current = {"w": torch.zeros(3)}
    honest = [Update(f"h{i}", 10, {"w": torch.full((3,), 0.1)}) for i in range(4)]
    attacker = Update("x", 10, {"w": torch.full((3,), 100.0)})
    aggregator = get_aggregator("fedavg", RobustSpec(clip_norm=1.0))

    result = aggregator.aggregate([*honest, attacker], current=current).tensors["w"]

    plain = fedavg([*honest, attacker])["w"]
    assert float(plain.max()) > 19  # the attacker dominates plain FedAvg
    assert float(result.max()) < 0.3  # clipped: it moves the mean by at most 1/5 of the bound
    assert aggregator.name == "fedavg+clip"


def test_clipping_needs_the_starting_model() -> None:
    with pytest.raises(AggregationError, match="clipNorm needs"):
        get_aggregator("median", RobustSpec(clip_norm=1.0)).aggregate(_updates([1.0]))


@pytest.mark.parametrize("name", ["median", "trimmed-mean", "krum", "multi-krum"])
def test_robust_rules_are_bit_identical_whatever_the_order_of_arrival(name: str) -> None:
    gen = torch.Generator().manual_seed(11)
    updates = [
        Update(
            f"party-{i}", 50 + i, {"w": torch.randn(30, 7, generator=gen), "b": torch.randn(5, generator=gen)}
        )
        for i in range(6)
    ]
    aggregator = get_aggregator(name, RobustSpec(trim_fraction=0.2, byzantine=1))
    expected = aggregator.aggregate(updates).tensors

    for order in itertools.islice(itertools.permutations(updates), 0, None, 97):
        got = aggregator.aggregate(list(order)).tensors
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_sample_count_over_the_limit_is_refused_naming_party_and_field() -> None:
    updates = _updates([1.0], [2.0])
    updates[1] = Update("p1", 10**400, updates[1].tensors)

    with pytest.raises(AggregationError, match=r"party 'p1': samples .* is over the limit"):
        fedavg(updates)
