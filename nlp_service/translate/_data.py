"""Parallel text for training: read, clean (dedupe, length filter), seeded split."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import DataError, iter_parallel
from ._params import LengthFilter


@dataclass
class ParallelData:
    """Deduplicated, filtered pairs, each with the file it came from."""

    source_lang: str
    target_lang: str
    sources: list[str]
    targets: list[str]
    origins: list[str]  # file stem of each pair, for per-domain scores
    files: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for s, t in zip(self.sources, self.targets, strict=True):
            digest.update(s.encode())
            digest.update(b"\t")
            digest.update(t.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def subset(self, rows: Sequence[int]) -> tuple[list[str], list[str], list[str]]:
        return ([self.sources[i] for i in rows], [self.targets[i] for i in rows], [self.origins[i] for i in rows])


def origin_name(path: str | Path) -> str:
    name = Path(path).name
    for suffix in (".gz", ".bz2", ".zip", ".tsv", ".csv", ".jsonl", ".txt"):
        name = name.removesuffix(suffix)
    return name


def read_parallel(paths: Sequence[str | Path], source: str, target: str, *, length: LengthFilter | None = None,
                  fmt: str | None = None, source_column: str | None = None, target_column: str | None = None
                  ) -> ParallelData:
    """Read pairs from several files; drop exact duplicate sources (a sentence in both train and test would
    inflate the score) and pairs outside the length filter."""
    length = length or LengthFilter()
    data = ParallelData(source, target, [], [], [])
    seen: set[str] = set()
    dropped = {"duplicate": 0, "length": 0}
    for path in paths:
        n = 0
        for src, tgt in iter_parallel(path, source, target, fmt=fmt, source_column=source_column,
                                      target_column=target_column):
            n += 1
            src, tgt = " ".join(src.split()), " ".join(tgt.split())
            if src in seen:
                dropped["duplicate"] += 1
                continue
            if not length.keep(src, tgt):
                dropped["length"] += 1
                continue
            seen.add(src)
            data.sources.append(src)
            data.targets.append(tgt)
            data.origins.append(origin_name(path))
        data.files.append({"path": str(path), "pairs": n})
    data.dropped = dropped
    if not data.sources:
        raise DataError(f"no {source}->{target} pairs left in {[str(p) for p in paths]} after filtering "
                        f"(dropped: {dropped})")
    return data


def split_pairs(n: int, *, validation: float, test: float, seed: int) -> dict[str, list[int]]:
    """Seeded random split into train / validation / test row lists (each at least one row when n >= 3)."""
    if not 0 <= validation < 1 or not 0 <= test < 1 or validation + test >= 1:
        raise ValueError("validation and test fractions must be in [0, 1) and sum to less than 1")
    rows = list(range(n))
    random.Random(seed).shuffle(rows)
    n_test = max(1, round(n * test)) if test > 0 and n >= 3 else 0
    n_val = max(1, round(n * validation)) if validation > 0 and n >= 3 else 0
    return {"test": sorted(rows[:n_test]), "validation": sorted(rows[n_test : n_test + n_val]),
            "train": sorted(rows[n_test + n_val :])}
