"""FedAvg: exact weighted means, order independence, and clear errors on incompatible updates."""

from __future__ import annotations

import itertools

import pytest
import torch

from hydrafed.errors import AggregationError, ConfigError
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.aggregation.fedavg import FedAvg, fedavg
from tests.unit.worker.update_samples import sample_updates

pytestmark = pytest.mark.unit


def test_fedavg_is_the_sample_weighted_mean_on_known_tensors() -> None:
    updates = [
        Update("b", 3, {"w": torch.tensor([5.0, 6.0]), "b": torch.tensor(2.0)}),
        Update("a", 1, {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(-2.0)}),
    ]

    result = fedavg(updates)

    assert list(result) == ["b", "w"]
    assert torch.equal(result["w"], torch.tensor([4.0, 5.0]))
    assert torch.equal(result["b"], torch.tensor(1.0))
    assert result["w"].dtype == torch.float32


def test_single_update_comes_back_unchanged() -> None:
    tensor = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))

    result = fedavg([Update("only", 42, {"x": tensor})])

    assert torch.equal(result["x"], tensor)


def test_result_is_bit_identical_whatever_the_order_of_arrival() -> None:
    gen = torch.Generator().manual_seed(7)
    updates = [
        Update(
            f"party-{i}",
            100 + 37 * i,
            {"w": torch.randn(50, 20, generator=gen), "v": torch.randn(9, generator=gen)},
        )
        for i in range(5)
    ]
    expected = fedavg(updates)

    for order in itertools.islice(itertools.permutations(updates), 0, None, 17):
        got = fedavg(list(order))
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_float64_accumulation_matches_a_float64_reference() -> None:
    gen = torch.Generator().manual_seed(3)
    tensors = [torch.randn(1000, generator=gen, dtype=torch.float32) for _ in range(4)]
    samples = [13, 800, 799, 1]

    result = fedavg(
        [Update(f"p{i}", s, {"t": t}) for i, (t, s) in enumerate(zip(tensors, samples, strict=True))]
    )

    reference = sum(t.double() * s for t, s in zip(tensors, samples, strict=True)) / sum(samples)
    assert torch.equal(result["t"], reference.float())


def test_integer_tensors_are_rounded_back_to_their_dtype() -> None:
    updates = [Update("a", 1, {"n": torch.tensor([10])}), Update("b", 2, {"n": torch.tensor([11])})]

    result = fedavg(updates)

    assert result["n"].dtype == torch.int64
    assert result["n"].tolist() == [11]


def test_aggregator_interface_returns_tensors_and_no_state() -> None:
    aggregator = get_aggregator("fedavg")
    updates = [Update("a", 1, {"w": torch.zeros(2)}), Update("b", 1, {"w": torch.ones(2)})]

    result = aggregator.aggregate(updates)

    assert isinstance(aggregator, FedAvg)
    assert torch.equal(result.tensors["w"], torch.full((2,), 0.5))
    assert result.state == {}


def test_unknown_aggregator_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'bulyan'.*choose one of fedavg"):
        get_aggregator("bulyan")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"w": torch.zeros(2)}, r"party 'b' has different tensors.*missing \['v'\]"),
        ({"w": torch.zeros(2), "v": torch.zeros(1), "x": torch.zeros(1)}, r"party 'b'.*unexpected \['x'\]"),
        (
            {"w": torch.zeros(3), "v": torch.zeros(1)},
            r"party 'b' tensor 'w' is torch.float32 \(3,\), 'a' has torch.float32 \(2,\)",
        ),
        ({"w": torch.zeros(2, dtype=torch.float16), "v": torch.zeros(1)}, r"'b' tensor 'w' is .*float16"),
        ({"w": torch.tensor([0.0, float("nan")]), "v": torch.zeros(1)}, r"party 'b' tensor 'w' holds NaN"),
    ],
)
def test_incompatible_updates_name_the_party_and_the_tensor(
    bad: dict[str, torch.Tensor], message: str
) -> None:
    good = Update("a", 5, {"w": torch.zeros(2), "v": torch.zeros(1)})

    with pytest.raises(AggregationError, match=message):
        fedavg([Update("b", 5, bad), good])


def test_duplicate_party_empty_round_and_bad_sample_counts_are_rejected() -> None:
    update = Update("a", 5, {"w": torch.zeros(2)})
    with pytest.raises(AggregationError, match="'a' has more than one update"):
        fedavg([update, update])
    with pytest.raises(AggregationError, match="no updates"):
        fedavg([])
    with pytest.raises(AggregationError, match="party 'z' reports -1 samples"):
        fedavg([update, Update("z", -1, {"w": torch.zeros(2)})])
    with pytest.raises(AggregationError, match="lower the learning rate"):
        fedavg([Update("a", 0, {"w": torch.zeros(2)}), Update("z", 0, {"w": torch.zeros(2)})])


def test_an_update_with_zero_samples_has_no_weight() -> None:
    # A party whose training diverged announces 0 samples; its (even non-finite) tensors must not count.
    kept = Update("a", 5, {"w": torch.tensor([1.0, 2.0])})
    left_out = Update("z", 0, {"w": torch.tensor([float("nan"), 200.0])})

    result = fedavg([kept, left_out])

    assert torch.equal(result["w"], torch.tensor([1.0, 2.0]))


def _two_pass_fedavg(updates: list[Update]) -> dict[str, torch.Tensor]:
    """FedAvg as it was before the fused pass: convert, multiply, add, in party order."""
    ordered = sorted((u for u in updates if u.samples), key=lambda u: u.party)
    total = float(sum(u.samples for u in ordered))
    result = {}
    for key in sorted(ordered[0].tensors):
        reference = ordered[0].tensors[key]
        acc = torch.zeros(reference.shape, dtype=torch.float64)
        scratch = torch.empty_like(acc)
        for update in ordered:
            scratch.copy_(update.tensors[key])
            acc += scratch.mul_(float(update.samples))
        acc /= total
        result[key] = (
            acc.to(reference.dtype) if reference.is_floating_point() else torch.round(acc).to(reference.dtype)
        )
    return result


@pytest.mark.parametrize(
    "samples",
    [
        [275, 276, 1, 8000, 3],  # the reference task's counts
        [2**29 - 1, 2**29, 2**39, 7, 10**12],  # around and past the exact one-pass bound
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.int32])
def test_the_one_pass_average_is_bit_identical_to_the_two_pass_one(
    samples: list[int], dtype: torch.dtype
) -> None:
    updates = sample_updates(samples, dtype)

    got, expected = fedavg(updates), _two_pass_fedavg(updates)

    assert list(got) == list(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype
        assert torch.equal(got[key].view(-1).view(torch.uint8), expected[key].view(-1).view(torch.uint8))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_weighted_update_is_refused_by_name_though_only_sums_are_scanned(bad: float) -> None:
    good = Update("a", 5, {"w": torch.tensor([1.0, 2.0]), "v": torch.zeros(3)})
    hostile = Update("m", 1, {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([0.0, bad, 0.0])})
    cancelling = Update("n", 1, {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([0.0, -bad, 0.0])})

    with pytest.raises(AggregationError, match=r"party 'm' tensor 'v' holds NaN or infinity"):
        fedavg([good, hostile, cancelling])
    with pytest.raises(AggregationError, match=r"party 'm' tensor 'v' holds NaN or infinity"):
        fedavg([hostile, good])
