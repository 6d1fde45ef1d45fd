"""Folding a round's FedAvg one update at a time: the same bits as averaging the held updates.

``RunningSum`` (``aggregation.fedavg``) against ``fedavg`` on the same inputs, and ``RoundFold``
(``worker.party``), which folds each screened update as soon as its predecessors in party order
are folded, against ``aggregate_round`` over the whole round, whatever the order of arrival.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from hydrafed.errors import AggregationError
from hydrafed.worker import aggregation
from hydrafed.worker.aggregation import Update, get_aggregator
from hydrafed.worker.aggregation.fedavg import RunningSum, fedavg
from hydrafed.worker.party import RoundFold, Screened, aggregate_round
from tests.unit.worker.update_samples import sample_updates

pytestmark = pytest.mark.unit


def _bits(tensors: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {k: t.contiguous().view(-1).view(torch.uint8).numpy().tobytes() for k, t in tensors.items()}


def _folded(updates: list[Update]) -> dict[str, torch.Tensor]:
    fold = RunningSum()
    for update in sorted(updates, key=lambda u: u.party):
        fold.add(update)
    return fold.result().tensors


@pytest.mark.parametrize(
    "samples",
    [
        [275, 276, 1, 8000, 3, 0, 412],  # the reference task's counts, one diverged party
        [2**29 - 1, 2**29, 2**39, 7, 10**12],  # around and past the exact one-pass bound
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64, torch.int32, torch.bool])
def test_the_running_sum_is_bit_identical_to_fedavg(samples: list[int], dtype: torch.dtype) -> None:
    # Prepare
    updates = sample_updates(samples, dtype)

    # Execute
    got, expected = _folded(updates), fedavg(updates)

    # Assert
    assert list(got) == list(expected)
    assert {k: t.dtype for k, t in got.items()} == {k: t.dtype for k, t in expected.items()}
    assert _bits(got) == _bits(expected)


def test_fedavg_folds_and_the_robust_rules_hold_every_update() -> None:
    assert isinstance(aggregation.fold(get_aggregator("fedavg")), RunningSum)
    for name in ("median", "trimmed-mean", "krum", "multi-krum", "lora-exact"):
        assert aggregation.fold(get_aggregator(name)) is None


def test_a_clipped_fedavg_holds_every_update() -> None:
    from hydrafed.spec import RobustSpec

    assert aggregation.fold(get_aggregator("fedavg", RobustSpec(clipNorm=1.0))) is None


def test_the_running_sum_refuses_what_fedavg_refuses() -> None:
    a, z = Update("a", 5, {"w": torch.zeros(2)}), Update("z", 5, {"w": torch.zeros(2)})
    fold = RunningSum()
    fold.add(z)
    with pytest.raises(AggregationError, match="'a' comes after 'z'"):
        fold.add(a)
    with pytest.raises(AggregationError, match="'z' has more than one update"):
        fold.add(z)
    with pytest.raises(AggregationError, match="party 'zz' reports -1 samples"):
        fold.add(Update("zz", -1, {"w": torch.zeros(2)}))
    with pytest.raises(AggregationError, match=r"party 'zz' tensor 'w' is torch.float32 \(3,\)"):
        fold.add(Update("zz", 1, {"w": torch.zeros(3)}))
    with pytest.raises(AggregationError, match="no updates"):
        RunningSum().result()
    zero = RunningSum()
    zero.add(Update("a", 0, {"w": torch.zeros(2)}))
    with pytest.raises(AggregationError, match="lower the learning rate"):
        zero.result()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_update_is_named_though_only_the_sums_are_scanned(bad: float) -> None:
    # Prepare: the hostile update comes second; the one after it would cancel an infinity
    good = Update("a", 5, {"w": torch.tensor([1.0, 2.0]), "v": torch.zeros(3)})
    hostile = Update("m", 1, {"w": torch.tensor([1.0, 2.0]), "v": torch.tensor([0.0, bad, 0.0])})
    fold = RunningSum()
    fold.add(good)

    # Execute / Assert: the same message as fedavg's
    with pytest.raises(AggregationError, match=r"party 'm' tensor 'v' holds NaN or infinity"):
        fold.add(hostile)
    with pytest.raises(AggregationError, match=r"party 'm' tensor 'v' holds NaN or infinity"):
        fedavg([good, hostile])


def test_a_diverged_party_with_no_weight_may_hold_nan_and_an_overflow_passes_on() -> None:
    diverged = Update("b", 0, {"w": torch.tensor([float("nan"), 1.0], dtype=torch.float64)})
    huge = [Update(p, 2**20, {"w": torch.tensor([1e308, 1.0], dtype=torch.float64)}) for p in "acd"]

    got = _folded([*huge, diverged])

    assert _bits(got) == _bits(fedavg([*huge, diverged]))
    assert torch.isinf(got["w"][0]) and got["w"][1] == 1.0


def _verdicts(updates: list[Update], excluded: set[str]) -> list[Screened]:
    return [
        Screened(u.party, None, "BadUpdate", "refused") if u.party in excluded else Screened(u.party, u)
        for u in updates
    ]


@pytest.mark.parametrize(("spill", "in_memory"), [(False, 4), (True, 0), (True, 2)])
@pytest.mark.parametrize("seed", range(6))
def test_a_round_folded_in_any_order_of_arrival_is_the_held_round_bit_for_bit(
    seed: int, spill: bool, in_memory: int, tmp_path: Path
) -> None:
    # Prepare: 9 members, 2 excluded after download, 1 never counted (the round was cut off)
    updates = sample_updates([275, 276, 0, 8000, 3, 412, 19, 280, 277], torch.float32, seed=seed)
    members = [u.party for u in updates]
    excluded, cut = {members[1], members[6]}, members[4]
    counted = [u for u in updates if u.party != cut]
    arrivals = _verdicts(counted, excluded)
    random.Random(seed).shuffle(arrivals)
    start = {k: torch.zeros_like(t) for k, t in updates[0].tensors.items()}
    aggregator = get_aggregator("fedavg")
    fold = aggregation.fold(aggregator)
    assert fold is not None
    spill_dir = tmp_path / "waiting" if spill else None
    round_fold = RoundFold(
        fold, random.Random(seed).sample(members, len(members)), spill_dir, in_memory=in_memory
    )

    # Execute
    returned = [round_fold.offer(v) for v in arrivals]
    round_fold.settle([u.party for u in counted])
    got = fold.result()

    # Assert: verdicts keep their codes, lose their tensors; the result is the held path's
    assert [(v.party, v.code, v.update) for v in returned] == [(v.party, v.code, None) for v in arrivals]
    usable = [u for u in counted if u.party not in excluded]
    expected = aggregate_round(aggregator, usable, start, None)
    assert _bits(got.tensors) == _bits(expected.tensors)
    assert got.state == expected.state == {}
    if spill_dir is not None:  # what waited beyond in_memory went through a file, removed once folded
        assert (round_fold.spilled > 0) == (round_fold.most_held > in_memory)
        assert list(spill_dir.iterdir()) == []


def test_an_update_waits_only_for_its_predecessors_in_party_order(tmp_path: Path) -> None:
    updates = sample_updates([1, 2, 3, 4], torch.float32)
    fold = RunningSum()
    round_fold = RoundFold(fold, [u.party for u in updates], tmp_path, in_memory=0)

    round_fold.offer(Screened(updates[2].party, updates[2]))
    round_fold.offer(Screened(updates[3].party, updates[3]), spill=False)
    assert (fold.count, round_fold.most_held) == (0, 2)
    assert [p.name for p in tmp_path.iterdir()] == [f"{updates[2].party}.waiting.safetensors"]
    round_fold.offer(Screened(updates[0].party, None, "HashMismatch"))
    assert fold.count == 0
    round_fold.absent(updates[1].party)  # e.g. a party that was not counted
    assert fold.count == 2
    round_fold.settle([updates[0].party, updates[2].party, updates[3].party])

    assert _bits(fold.result().tensors) == _bits(fedavg(updates[2:]))


def test_settling_a_round_with_an_unscreened_member_or_a_wrong_absence_fails() -> None:
    updates = sample_updates([1, 2], torch.float32)
    names = [u.party for u in updates]
    unscreened = RoundFold(RunningSum(), names)
    unscreened.offer(Screened(names[1], updates[1]))
    with pytest.raises(AggregationError, match=f"stopped at '{names[0]}'"):
        unscreened.settle(names)
    wrong = RoundFold(RunningSum(), names)
    wrong.absent(names[0])
    with pytest.raises(AggregationError, match="after being taken as absent"):
        wrong.settle(names)
