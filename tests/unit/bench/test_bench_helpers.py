"""The benchmark helpers that turn raw timings into figures and write the docs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from bench import _docs, _measure, _runs

pytestmark = pytest.mark.unit


def test_union_merges_overlapping_and_keeps_gaps() -> None:
    # Prepare: two parties overlap (0-2, 1-3), a third trains alone later (5-6)
    intervals = [(5.0, 6.0), (0.0, 2.0), (1.0, 3.0)]

    # Execute
    total = _measure.union_seconds(intervals)

    # Assert: 0-3 and 5-6
    assert total == pytest.approx(4.0)


def test_union_of_nested_and_empty() -> None:
    assert _measure.union_seconds([(0.0, 10.0), (2.0, 3.0)]) == pytest.approx(10.0)
    assert _measure.union_seconds([]) == 0.0


def test_reduce_rounds_overhead_is_wall_minus_training_union() -> None:
    records = [
        {"round": 1, "accuracy": 0.5, "wall": 3.0, "train_intervals": [[0, 1], [0.5, 2]]},
        {"round": 2, "accuracy": 0.7, "wall": 1.0, "train_intervals": [[10, 10.25], [10.5, 10.75]]},
    ]

    rounds = _runs.reduce_rounds(records)

    assert [r.train for r in rounds] == pytest.approx([2.0, 0.5])
    assert [r.overhead for r in rounds] == pytest.approx([1.0, 0.5])
    figures = _runs.RunFigures("x", 2, 0, 5.0, 1.0, 1, 0.1, 0.2, rounds)
    assert figures.final_accuracy == 0.7
    assert figures.mean("overhead") == pytest.approx(0.5)  # round 1 left out
    assert math.isnan(figures.mean("overhead", first=3))


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    # Prepare: a file with another engineer's section after ours
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n## Paper table\n\nold table\n\n## Storage throughput\n\ntheirs\n"
    )

    # Execute
    _docs.write_section("Paper table", "new table", doc)
    _docs.write_section("Per-round overhead", "overhead body", doc)

    # Assert
    text = doc.read_text()
    assert "old table" not in text
    assert "## Paper table\n\nnew table\n\n## Storage throughput\n\ntheirs\n" in text
    assert text.endswith("## Per-round overhead\n\noverhead body\n")
    assert text.startswith("# Benchmarks\n\nintro\n")


def test_write_section_creates_file_with_intro(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"

    _docs.write_section("Flower side by side", "body", doc)

    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "## Machine / versions" in text
    assert text.endswith("## Flower side by side\n\nbody\n")


def test_run_measured_reports_exit_code_wall_and_memory(tmp_path: Path) -> None:
    # Prepare: a child that allocates ~64 MiB, holds it for a second and exits 3
    code = (
        "import sys, time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "time.sleep(1.2); sys.exit(3)"
    )

    # Execute
    run = _measure.run_measured([sys.executable, "-c", code], log=tmp_path / "log.txt")

    # Assert
    assert run.returncode == 3
    assert run.wall_seconds >= 1.2
    assert run.peak_pss_mib >= 60
    assert (tmp_path / "log.txt").is_file()


def test_simulate_options_reproduce_the_spec() -> None:
    from bench import _hydrafed
    from hydrafed.spec import TrainingSpec

    # Plain SGD can only be asked for through the paper preset; explicit options override the rest
    args = _hydrafed.cli_args(TrainingSpec(rounds=20, learning_rate=0.3, momentum=0.0, local_epochs=1))
    assert args[:2] == ["--preset", "paper"]
    assert args[args.index("--lr") + 1] == "0.3"
    assert args[args.index("--local-epochs") + 1] == "1"
    assert args[args.index("--rounds") + 1] == "20"
    assert "--preset" not in _hydrafed.cli_args(TrainingSpec())
    with pytest.raises(ValueError, match=r"momentum 0\.5"):
        _hydrafed.cli_args(TrainingSpec(momentum=0.5))


def test_round_figures_from_report_phases() -> None:
    from bench import _hydrafed

    # Prepare: two parties, one round; party b trains longer and waits less
    zero = dict.fromkeys(_hydrafed.PHASES, 0.0)
    report = {
        "parties": [{"federatedAccuracy": [0.9]}, {"federatedAccuracy": [0.9]}],
        "timings": {
            "perRound": [
                {
                    "round": 1,
                    "parties": {
                        "a": {**zero, "train": 1.0, "wait": 0.5, "announce": 0.1},
                        "b": {**zero, "train": 1.4, "wait": 0.1, "announce": 0.1},
                    },
                }
            ]
        },
    }

    # Execute
    (figures,) = _hydrafed.round_figures(report)
    phases = _hydrafed.phase_means(report)

    # Assert: wall = mean of per-party sums (1.6, 1.6), train = longest training
    assert figures.wall == pytest.approx(1.6)
    assert figures.train == pytest.approx(1.4)
    assert figures.overhead == pytest.approx(0.2)
    assert phases["wait"] == pytest.approx(0.3)


def test_round_figures_tile_the_timeline_when_reports_have_timestamps() -> None:
    from bench import _hydrafed

    # Prepare: round 1 runs 100.0-102.0; a trains 100.0-101.0, b 100.5-101.2. Party a starts
    # round 2 early (102.0) while b still finishes round 1 until 102.5; round 2 ends at 104.0.
    zero = dict.fromkeys(_hydrafed.PHASES, 0.0)

    def party(start: float, train: float, end: float) -> dict[str, float]:
        return {**zero, "train": train, "startedAt": start, "finishedAt": end}

    report = {
        "parties": [{"federatedAccuracy": [0.8, 0.9]}],
        "timings": {
            "perRound": [
                {"round": 1, "parties": {"a": party(100.0, 1.0, 101.8), "b": party(100.5, 0.7, 102.5)}},
                {"round": 2, "parties": {"a": party(102.0, 1.0, 104.0), "b": party(102.6, 0.9, 103.9)}},
            ]
        },
    }

    # Execute
    first, second = _hydrafed.round_figures(report)

    # Assert: round 1 = 100.0-102.5 with training 100.0-101.2 plus a's early 102.0-102.5
    assert first.wall == pytest.approx(2.5)
    assert first.train == pytest.approx(1.2 + 0.5)
    assert first.overhead == pytest.approx(0.8)
    # round 2 = 102.5-104.0: a trains until 103.0, b 102.6-103.5, so 102.5-103.5 is training
    assert second.wall == pytest.approx(1.5)
    assert second.train == pytest.approx(1.0)
    assert second.overhead == pytest.approx(0.5)


def test_the_goal_verdict_uses_the_median_of_paired_runs() -> None:
    from bench import _runs, vs_flower

    def run(system: str, overhead: float, wall: float) -> _runs.RunFigures:
        rounds = [_runs.RoundFigures(r, 0.9, 0.3, 0.3 - overhead, overhead) for r in (1, 2, 3)]
        return _runs.RunFigures(system, 10, 0, wall, 100.0, 3, 1.0, 1.0, rounds)

    runs = {10: {"flower": run("flower", 0.2, 20.0), "hydrafed": run("hydrafed", 0.09, 15.0)}}
    # The table's run meets the goal (0.45x), but two of three paired runs do not.
    pairs = {
        10: [
            {"flower_overhead": 0.2, "hydrafed_overhead": 0.09, "flower_wall": 20.0, "hydrafed_wall": 15.0},
            {"flower_overhead": 0.2, "hydrafed_overhead": 0.11, "flower_wall": 20.0, "hydrafed_wall": 16.0},
            {"flower_overhead": 0.2, "hydrafed_overhead": 0.12, "flower_wall": 20.0, "hydrafed_wall": 22.0},
        ]
    }

    text = vs_flower.render(runs, {"flwr": "1.42.0", "ray": "2.55.1"}, 3, pairs)

    assert "overhead ratios 0.45x, 0.55x, 0.60x (median 0.55x)" in text
    assert "its per-round overhead 0.55x" in text
    assert "its process wall 0.80x (goal <= 0.5x: not met)" in text
    assert "steady round is 1.00x Flower's (goal <= 0.5x: not met)" in text


def test_the_startup_section_gives_medians_per_party_count() -> None:
    from bench import startup

    def run(first: float) -> dict[str, float]:
        return {"firstParty": first, "everyParty": first + 1, "afterRounds": 1.2, "wall": first + 4}

    data = {
        "cli": {"help": [0.2, 0.1, 0.3], "refusal": [0.4, 0.9, 0.5]},
        "imports": {"forkServer": [1.7, 1.6, 1.8], "parent": [1.3, 1.4, 1.2]},
        "runs": {"4": [run(2.0), run(9.0), run(2.5)], "29": [run(4.0), run(5.0), run(3.0)]},
        "load": "0.5 0.4 0.3",
    }

    text = startup.render(data)

    assert "| N=4 | 2.50 | 3.50 | 1.20 | 6.50 |" in text
    assert "| N=29 | 4.00 | 5.00 | 1.20 | 8.00 |" in text
    assert "`hydrafed --help` 0.20 s, a refused option (`hydrafed simulate --parties 0`) 0.50 s" in text
    assert "the fork server's preload 1.70" in text
    assert "the first round under 3 s: not met at N=29." in text  # N=4's median is 2.50
