"""Offline text for language-model federations: documents, token blocks, per-party shards.

The bundled corpus is the Python reference documentation's topic pages that CPython ships as
``pydoc_data.topics`` (part of every Python install and of Debian's ``libpython3.x-stdlib``;
PSF licence): 79 topics ("assignment", "class", "exceptions", ...) and about 465,000 characters
of real technical English. Each topic is a document; its id is the block's label, so the
``dirichlet:ALPHA`` partition gives each party a different mix of topics (non-IID), and ``iid``
deals the blocks out evenly. A user corpus is a directory of ``*.txt`` files, one document each.

Every document is tokenised and cut into blocks of ``seq_len`` tokens (the tail shorter than a
block is dropped). The held-out set is a seeded ``test_fraction`` of the blocks, common to all
parties; the rest is partitioned with ``hydrafed.worker.partition``.

Public API::

    Document(name: str, text: str)
    load_documents(path: Path | None = None) -> list[Document]
    tokenize_blocks(documents, encode, seq_len) -> (blocks: LongTensor[n, seq_len], labels: ndarray)
    TextSplit(train: list[Tensor], test: Tensor)      # train[i]: party i's blocks
    split_blocks(blocks, labels, *, parties, partition, test_fraction, seed, sample_limit=None) -> TextSplit
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from hydrafed.errors import ConfigError
from hydrafed.worker.partition import partition_indices


@dataclass(frozen=True)
class Document:
    """One named text; its position in the corpus is the label used for non-IID splits."""

    name: str
    text: str


def load_documents(path: Path | None = None) -> list[Document]:
    """The bundled Python topic pages, or every ``*.txt`` file under ``path`` (sorted by name)."""
    if path is None:
        from pydoc_data import topics  # type: ignore[import-untyped,unused-ignore]

        pages: dict[str, str] = topics.topics
        return [Document(name, pages[name]) for name in sorted(pages)]
    if not path.is_dir():
        raise ConfigError(f"datasetPath {path} is not a directory: point it at a folder of .txt files")
    files = sorted(path.rglob("*.txt"))
    if not files:
        raise ConfigError(f"datasetPath {path} has no .txt files: add one text file per document")
    return [
        Document(str(f.relative_to(path)), f.read_text(encoding="utf-8", errors="replace")) for f in files
    ]


def tokenize_blocks(
    documents: Sequence[Document], encode: Callable[[str], list[int]], seq_len: int
) -> tuple[torch.Tensor, npt.NDArray[np.int64]]:
    """All documents cut into ``seq_len``-token blocks, and each block's document index."""
    if seq_len < 2:
        raise ConfigError(f"sequence length {seq_len} is too short: use at least 2 tokens")
    blocks: list[torch.Tensor] = []
    labels: list[int] = []
    for index, doc in enumerate(documents):
        ids = torch.tensor(encode(doc.text), dtype=torch.long)
        whole = ids.numel() // seq_len
        if whole:
            blocks.extend(ids[: whole * seq_len].view(whole, seq_len))
            labels.extend([index] * whole)
    if not blocks:
        raise ConfigError(
            f"the corpus has no document of at least {seq_len} tokens: add text or shorten the blocks"
        )
    return torch.stack(blocks), np.asarray(labels, dtype=np.int64)


@dataclass(frozen=True)
class TextSplit:
    """Each party's training blocks and the common held-out blocks."""

    train: list[torch.Tensor]
    test: torch.Tensor


def split_blocks(
    blocks: torch.Tensor,
    labels: npt.NDArray[np.int64],
    *,
    parties: int,
    partition: str,
    test_fraction: float,
    seed: int,
    sample_limit: int | None = None,
) -> TextSplit:
    """Seeded held-out set, then the remaining blocks partitioned between ``parties``."""
    rng = np.random.default_rng([seed, 0x7E47])
    order = rng.permutation(len(labels))
    if sample_limit is not None:
        order = order[:sample_limit]
    n_test = max(1, round(len(order) * test_fraction))
    if len(order) - n_test < parties:
        raise ConfigError(
            f"{len(order)} text blocks leave {len(order) - n_test} for training, fewer than "
            f"{parties} parties: raise sampleLimit or lower testFraction"
        )
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    shards = partition_indices(labels[train_idx], parties, partition, seed)
    train = [blocks[torch.from_numpy(train_idx[s])] for s in shards]
    return TextSplit(train=train, test=blocks[torch.from_numpy(test_idx)])
