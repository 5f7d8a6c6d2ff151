"""Approximate nearest-neighbour index (HNSW, via usearch) over unit-normalised vectors.

usearch replaced hnswlib, which publishes no wheels (installing it compiles C++, so images without
a compiler could not build). usearch ships wheels for Linux, macOS and Windows, and its saved file
is memory-mapped at load (a *view*): nothing is copied or rebuilt, so a restart stays instant.

Folders written before the switch hold ``hnsw.bin`` and say ``"library": "hnswlib"``; they still
load, and their approximate queries are answered by exact search (:class:`ExactIndex`) until the
index is rebuilt (``nlp-service convert --reindex``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ANN_FILE = "ann.usearch"
OLD_ANN_FILE = "hnsw.bin"  # hnswlib's graph, written up to the switch
LIBRARY = "usearch"
OLD_LIBRARY = "hnswlib"
METRIC = "ip"  # inner product: on unit vectors it is cosine similarity, with no norms computed per query


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


class HnswIndex:
    """usearch HNSW graph, inner product; answers ``query(vectors, k, ef)`` from many threads at once.

    The index keeps its vectors as float16 by default: half the file, and searches 1.5-2x faster
    than float32 at 300 dimensions, for the same recall@10 on real vectors within 0.001 (0.9887 vs
    0.9892 at ef 64 on w2v-es). Its similarities are float16-precise; the store recomputes the
    scores it returns from its float32 matrix.

    Why a pool of views: usearch has no per-call ``ef``: ``expansion_search`` is a property of an
    ``Index`` object, and the binding serialises every call on one object with its own mutex
    (measured: two threads on one view took 2.3x as long as on two views). A lock around
    set-ef-then-search would be correct but keep approximate search on one core, and one view per
    ef value would still queue every request that uses the default ef. So each search borrows a view
    for itself (``list.pop``/``append``, atomic), sets that view's ef and searches, then returns it:
    no other thread can touch that view's ef in between, and searches run on every core. Views
    are extra mappings of the same file (its pages are shared; each view's own tables take about
    23 bytes a vector, 4.6 MB at 200k, and it opens in about 10 ms there), opened on demand and never
    more than the cores: a semaphore makes a further request wait for a free view rather than map
    another that would only compete for CPU.
    An index still in memory (just built, not yet saved) has one object, so searches take turns.
    """

    def __init__(self, index: Any, params: dict[str, Any], *, path: Path | None = None) -> None:
        self._path = path
        self._free: list[Any] = [index]
        self._limit = threading.BoundedSemaphore(_cores() if path is not None else 1)
        self._count = len(index)
        self.params = params

    @classmethod
    def build(
        cls,
        unit_vectors: np.ndarray,
        *,
        connectivity: int = 16,
        expansion_add: int = 200,
        dtype: str = "f16",
        threads: int = 0,
        progress: bool = True,
    ) -> HnswIndex:
        """Build over ``unit_vectors`` (row i gets key i) with a progress bar; ``threads`` 0: all cores."""
        import usearch
        from tqdm.auto import tqdm
        from usearch.index import Index

        count, dim = unit_vectors.shape
        index = Index(ndim=dim, metric=METRIC, dtype=dtype, connectivity=connectivity, expansion_add=expansion_add,
                      enable_key_lookups=False)
        start = time.perf_counter()
        with tqdm(total=count, desc="building HNSW index", unit=" vectors", disable=not progress) as bar:
            def advance(done: int, _total: int) -> bool:
                bar.update(done - bar.n)
                return True

            # usearch checks a callback's annotations against the types themselves, and this module's
            # are strings (``from __future__ import annotations``).
            advance.__annotations__ = {"done": int, "_total": int, "return": bool}
            if count:
                index.add(np.arange(count, dtype=np.uint64), np.ascontiguousarray(unit_vectors, dtype=np.float32),
                          threads=threads, progress=advance if progress else None)
            bar.update(count - bar.n)
        params = {
            "library": LIBRARY,
            "library_version": usearch.__version__,
            "metric": METRIC,
            "dtype": dtype,
            "connectivity": connectivity,
            "expansion_add": expansion_add,
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        return cls(index, params)

    @classmethod
    def load(cls, path: Path, params: dict[str, Any] | None = None) -> HnswIndex:
        """Memory-map a saved index (a view: vectors and graph stay in the file, paged in as searches
        touch them; opening walks the node headers once, about 15 ms per 200k vectors)."""
        index = cls._view(path)
        return cls(index, params or {}, path=Path(path))

    @staticmethod
    def _view(path: Path) -> Any:
        from usearch.index import Index

        # No key lookups: searches return the keys stored in the graph; the lookup table would
        # cost a hash of every key at each view.
        index = Index.restore(os.fspath(path), view=True, enable_key_lookups=False)
        if index is None:
            raise ValueError(f"{path} is not a usearch index")
        return index

    def __len__(self) -> int:
        return self._count

    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically (a temporary file beside it, then one rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            if self._path is not None:  # a view: the file is the index
                shutil.copyfile(self._path, tmp)
            else:
                with self._limit:  # built here: one object, which a search may hold
                    index = self._borrow()
                    try:
                        index.save(os.fspath(tmp))
                    finally:
                        self._free.append(index)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _borrow(self) -> Any:
        """A view no other thread uses until :meth:`_give_back` (opened if none is free). Call with
        ``self._limit`` held: at most that many views are out at once."""
        try:
            return self._free.pop()
        except IndexError:  # every open view is busy, and fewer than the cores are open
            assert self._path is not None
            return self._view(self._path)

    def query(self, vectors: np.ndarray, k: int, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Labels and cosine similarities of the ``k`` nearest items, best first, per query row
        (label -1 where the graph yields fewer than ``k``)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        rows = 1 if vectors.ndim == 1 else vectors.shape[0]
        k = min(k, self._count)
        if k <= 0:
            return np.empty((rows, 0), dtype=np.int64), np.empty((rows, 0), dtype=np.float32)
        with self._limit:
            index = self._borrow()
            try:
                index.expansion_search = max(ef, k)  # ef must be >= k; this view is ours until the search ends
                matches = index.search(vectors, k, threads=1)
            finally:
                self._free.append(index)
        if rows == 1:  # usearch answers one query with only the neighbours found
            keys, distances, counts = matches.keys[None], matches.distances[None], [len(matches.keys)]
        else:
            keys, distances, counts = matches.keys, matches.distances, matches.counts
        labels = keys.astype(np.int64)
        with np.errstate(invalid="ignore"):  # the unused slots of a short answer hold sentinels
            sims = (1.0 - distances).astype(np.float32)
        if keys.shape[1] < k or min(counts) < k:  # rare: pad or blank what the graph did not yield
            labels = np.pad(labels, ((0, 0), (0, k - keys.shape[1])), constant_values=-1)
            sims = np.pad(sims, ((0, 0), (0, k - keys.shape[1])), constant_values=-np.inf)
            for row, n in enumerate(counts):
                labels[row, n:], sims[row, n:] = -1, -np.inf
        return labels, sims


class ExactIndex:
    """Stands in for an index this release cannot read (hnswlib's): exact search, same interface."""

    def __init__(self, unit_vectors: np.ndarray, params: dict[str, Any]) -> None:
        self._unit = unit_vectors
        self.params = params

    def __len__(self) -> int:
        return int(self._unit.shape[0])

    def query(self, vectors: np.ndarray, k: int, ef: int = 64) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        k = min(k, len(self))
        scores = vectors @ np.asarray(self._unit).T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if 0 < k < len(self) else \
            np.tile(np.arange(k), (vectors.shape[0], 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        labels = np.take_along_axis(part, order, axis=1).astype(np.int64)
        return labels, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def is_old_index(params: dict[str, Any] | None, folder: Path | None) -> bool:
    """Whether a store's index is hnswlib's: its parameters say so (or, with none, only hnsw.bin is there)."""
    if params and params.get("library"):
        return params["library"] == OLD_LIBRARY
    return folder is not None and (folder / OLD_ANN_FILE).is_file() and not (folder / ANN_FILE).is_file()


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
