"""Labeled datasets and reproducible, stratified splits (saved with the model)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DataError, iter_labeled


@dataclass
class LabeledData:
    texts: list[str]
    labels: list[str]
    sources: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def subset(self, idx: Sequence[int]) -> LabeledData:
        return LabeledData([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.sources,
                           self.fingerprint)


def read_labeled(paths: Sequence[Path], text_column: str = "text", label_column: str = "label") -> LabeledData:
    """Read (text, label) rows from CSV/TSV/JSONL files; at least two classes are required."""
    texts: list[str] = []
    labels: list[str] = []
    digest = hashlib.sha256()
    for path in paths:
        for text, label in iter_labeled(path, text_column, label_column):
            texts.append(text)
            labels.append(label)
            digest.update(f"{label}\t{text}\n".encode())
    if not texts:
        raise DataError(f"no labeled rows in {', '.join(str(p) for p in paths)}")
    counts = Counter(labels)
    if len(counts) < 2:
        raise DataError(f"need at least two classes, found {dict(counts)}")
    return LabeledData(texts, labels, [str(p) for p in paths], digest.hexdigest())


def stratified_split(
    labels: Sequence[str], *, validation: float = 0.1, test: float = 0.1, seed: int = 13
) -> dict[str, list[int]]:
    """Row indices of train / validation / test, each keeping the class proportions."""
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError("validation and test fractions must be in [0, 1) and sum to less than 1")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    split: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        n_test = round(len(idx) * test)
        n_val = round(len(idx) * validation)
        if len(idx) - n_test - n_val < 1:
            raise DataError(f"class {label!r} has only {len(idx)} examples: too few to split")
        split["test"] += idx[:n_test].tolist()
        split["validation"] += idx[n_test : n_test + n_val].tolist()
        split["train"] += idx[n_test + n_val :].tolist()
    return {k: sorted(v) for k, v in split.items()}


def stratified_folds(labels: Sequence[str], k: int, seed: int = 13) -> list[list[int]]:
    """``k`` disjoint folds of row indices with the class proportions of ``labels``."""
    if k < 2:
        raise ValueError("k-fold cross-validation needs k >= 2")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    offset = 0
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        rng.shuffle(idx)
        for j, i in enumerate(idx.tolist()):
            folds[(j + offset) % k].append(i)
        offset += len(idx)
    return [sorted(f) for f in folds]


def split_record(
    data: LabeledData, split: dict[str, list[int]], seed: int, fractions: dict[str, float]
) -> dict[str, Any]:
    """What is saved as ``split.json``: enough to rebuild the exact split from the same files."""
    return {"seed": seed, "fractions": fractions, "data_sha256": data.fingerprint, "sources": data.sources,
            "sizes": {k: len(v) for k, v in split.items()}, "indices": split}
