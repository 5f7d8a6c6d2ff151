"""Approximate nearest-neighbour index (HNSW, via hnswlib) over unit-normalised vectors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

ANN_FILE = "hnsw.bin"


class HnswIndex:
    """Inner-product HNSW graph; on unit vectors inner product is cosine similarity."""

    def __init__(self, index: Any, params: dict[str, Any]) -> None:
        self._index = index
        self.params = params

    @classmethod
    def build(
        cls,
        unit_vectors: np.ndarray,
        *,
        m: int = 16,
        ef_construction: int = 200,
        threads: int = -1,
        seed: int = 100,
        progress: bool = True,
    ) -> HnswIndex:
        import hnswlib
        from tqdm.auto import tqdm

        count, dim = unit_vectors.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(count, 1), ef_construction=ef_construction, M=m, random_seed=seed)
        start = time.perf_counter()
        step = 50_000
        with tqdm(total=count, desc="building HNSW index", unit=" vectors", disable=not progress) as bar:
            for lo in range(0, count, step):
                hi = min(lo + step, count)
                index.add_items(np.ascontiguousarray(unit_vectors[lo:hi]), np.arange(lo, hi), num_threads=threads)
                bar.update(hi - lo)
        params = {
            "library": "hnswlib",
            "space": "ip",
            "M": m,
            "ef_construction": ef_construction,
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        return cls(index, params)

    @classmethod
    def load(cls, path: Path, dim: int, count: int, params: dict[str, Any] | None = None) -> HnswIndex:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path), max_elements=max(count, 1))
        return cls(index, params or {})

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    def query(self, vectors: np.ndarray, k: int, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Labels and cosine similarities of the ``k`` nearest items, best first, per query row."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        k = min(k, self._index.get_current_count())
        # ef must be >= k; set per call (cheap) so concurrent queries with different k stay correct.
        self._index.set_ef(max(ef, k))
        labels, distances = self._index.knn_query(vectors, k=k, num_threads=1)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)


def recall_at_k(
    unit_vectors: np.ndarray, index: HnswIndex, *, k: int = 10, queries: int = 1000, ef: int = 64, seed: int = 0
) -> dict[str, Any]:
    """Recall@k of ``index`` against exact search, with vocabulary words as queries."""
    count = unit_vectors.shape[0]
    rng = np.random.default_rng(seed)
    sample = rng.choice(count, size=min(queries, count), replace=False)
    k = min(k, count)
    hits = 0
    for lo in range(0, len(sample), 64):
        rows = sample[lo : lo + 64]
        q = np.asarray(unit_vectors[rows], dtype=np.float32)
        sims = q @ np.asarray(unit_vectors).T if count <= 200_000 else _chunked_scores(unit_vectors, q)
        exact = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        approx, _ = index.query(q, k, ef=ef)
        for e, a in zip(exact, approx, strict=True):
            hits += len(set(e.tolist()) & set(a.tolist()))
    return {"recall_at_k": round(hits / (len(sample) * k), 4), "k": k, "queries": len(sample), "ef_search": ef}


def _chunked_scores(unit_vectors: np.ndarray, q: np.ndarray, step: int = 262_144) -> np.ndarray:
    out = np.empty((q.shape[0], unit_vectors.shape[0]), dtype=np.float32)
    for lo in range(0, unit_vectors.shape[0], step):
        out[:, lo : lo + step] = q @ np.asarray(unit_vectors[lo : lo + step]).T
    return out
