"""The native vector store: unit-normalised float32 matrix, memory-mapped, plus a vocabulary.

Files in a store folder::

    store.json      dimensions, count, subword parameters
    vocab.txt       one word a line, row order (frequency order when the source had it)
    vocab_*.npy     offsets into vocab.txt and a hash table: word lookup without building a dict
    vectors.npy     (count, dim) float32, each row of unit length
    norms.npy       (count,) float32, the original lengths (raw vector = unit * norm)
    ngrams.npy      (bucket, dim) float32, fastText subword buckets (optional)
    ann.usearch     HNSW index over vectors.npy (optional; usearch, memory-mapped when loaded)
    hnsw.bin        the same, from before usearch (hnswlib): approximate queries fall back to exact search

Opening a store maps the matrices instead of reading them, and nothing is recomputed at
query time (gensim computes norms on its first query), so a restart is ready at once.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInput, NotFound
from ._ann import ANN_FILE, ExactIndex, HnswIndex, is_old_index, recall_at_k
from ._subword import SubwordVectors
from ._vocab import Vocab

log = logging.getLogger(__name__)

STORE_FILE = "store.json"
STORE_FORMAT = 1

Query = str | np.ndarray
Source = Literal["vocabulary", "subwords"]


class WordNotFound(NotFound, KeyError):
    """One or more words have no vector (not in the vocabulary and no subword n-grams)."""

    code = "word_not_found"

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(words)
        super().__init__(f"not in vocabulary: {', '.join(repr(w) for w in self.words)}", words=self.words)


class NoAnnIndex(InvalidInput):
    """Approximate search was asked of a store built without an HNSW index."""

    code = "no_approximate_index"


def unit_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit length (zero rows stay zero) and the original norms, float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
    safe = np.where(norms > 0, norms, np.float32(1.0))
    return (matrix / safe[:, None]).astype(np.float32), norms


def _unitvec(vec: np.ndarray) -> np.ndarray:
    # In float64: the norm of a float32 vector with large components overflows float32 (1e38 x 100
    # dimensions would give inf, and a zero vector).
    vec = np.asarray(vec, dtype=np.float64)
    norm = np.linalg.norm(vec)
    return (vec / norm).astype(np.float32) if norm > 0 else vec.astype(np.float32)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties: lower index first)."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
    return part[np.lexsort((part, -scores[part]))]


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _mapped_npy_file(array: np.ndarray) -> Path | None:
    """The ``.npy`` file ``array`` maps whole, as float32 rows (``np.load(..., mmap_mode="r")`` of a store's
    or the fastText reader's file), or None: a slice, a copy or another dtype is not a file on disk."""
    if not (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.filename):
        return None  # a slice's base is its parent array, not the mapping
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        return None
    path = Path(array.filename)
    try:
        with open(path, "rb") as fh:
            read_header = _NPY_HEADER_READERS.get(np.lib.format.read_magic(fh))
            if read_header is None:
                return None
            shape, fortran, dtype = read_header(fh)
            start = fh.tell()
    except (OSError, ValueError):
        return None
    if fortran or dtype != np.float32 or tuple(shape) != array.shape or start != array.offset:
        return None
    return path


def _save_matrix(target: Path, array: np.ndarray) -> None:
    """``np.save`` as float32, except that a matrix mapped from a whole ``.npy`` file is linked (or, across
    filesystems, copied by the kernel): saving a 2.4 GB memory map with ``np.save`` would read all of it
    into this process's resident memory, and write a second copy of the data for nothing."""
    source = _mapped_npy_file(array)
    if source is None:
        np.save(target, np.ascontiguousarray(array, dtype=np.float32))
        return
    if target.exists() and os.path.samefile(source, target):
        return  # saved into the folder it was opened from
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(source, target)  # copy_file_range/sendfile: no pages of it in this process


@dataclass
class Neighbor:
    word: str
    score: float


class VectorStore:
    """Word vectors with exact (BLAS) and approximate (HNSW) neighbour search."""

    def __init__(
        self,
        words: Sequence[str] | Vocab,
        unit_vectors: np.ndarray,
        norms: np.ndarray,
        *,
        subwords: SubwordVectors | None = None,
        ann: HnswIndex | ExactIndex | None = None,
        path: Path | None = None,
    ) -> None:
        vocab = words if isinstance(words, Vocab) else Vocab.from_words(words)
        if unit_vectors.ndim != 2 or unit_vectors.shape[0] != len(vocab) or norms.shape != (len(vocab),):
            raise ValueError(
                f"inconsistent store: {len(vocab)} words, vectors {unit_vectors.shape}, norms {norms.shape}"
            )
        self.vocab = vocab
        self.unit = unit_vectors
        self.norms = norms
        self.subwords = subwords
        self._ann = ann
        self._ann_lock = threading.Lock()
        self.path = path

    # ---- construction, persistence -----------------------------------------------------------

    @classmethod
    def from_vectors(
        cls, words: list[str], vectors: np.ndarray, *, subwords: SubwordVectors | None = None
    ) -> VectorStore:
        unit, norms = unit_rows(vectors)
        return cls(list(words), unit, norms, subwords=subwords)

    @classmethod
    def from_keyed_vectors(cls, kv: Any, limit: int | None = None) -> VectorStore:
        """From gensim ``KeyedVectors`` (or ``FastTextKeyedVectors``, keeping its n-grams)."""
        n = len(kv.index_to_key) if limit is None else min(limit, len(kv.index_to_key))
        words = [str(w) for w in kv.index_to_key[:n]]
        subwords = None
        ngrams = getattr(kv, "vectors_ngrams", None)
        if ngrams is not None and getattr(kv, "bucket", 0):
            subwords = SubwordVectors(np.asarray(ngrams, dtype=np.float32), int(kv.min_n), int(kv.max_n))
        return cls.from_vectors(words, np.asarray(kv.vectors[:n]), subwords=subwords)

    def save(self, folder: Path) -> None:
        """Write the store's files into ``folder`` (callers make it atomic, see ``artifacts``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.vocab.save(folder)
        _save_matrix(folder / "vectors.npy", self.unit)
        _save_matrix(folder / "norms.npy", self.norms)
        if self.subwords is not None:
            _save_matrix(folder / "ngrams.npy", self.subwords.ngrams)
        self.save_ann(folder)

    def save_ann(self, folder: Path) -> None:
        """Write the index (if any) and ``store.json`` into ``folder``, which holds the other files already.

        ``convert --reindex`` uses it alone, linking the matrices from the old folder. An old
        (hnswlib) index is not carried over: it would be read by nothing."""
        folder = Path(folder)
        meta: dict[str, Any] = {"format": STORE_FORMAT, "count": len(self), "dim": self.dim, "subwords": None}
        if self.subwords is not None:
            meta["subwords"] = {"min_n": self.subwords.min_n, "max_n": self.subwords.max_n,
                                "bucket": self.subwords.bucket}
        if isinstance(self._ann, HnswIndex):
            self._ann.save(folder / ANN_FILE)
            meta["ann"] = self._ann.params
        (folder / STORE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, *, mmap: bool = True, load_ann: bool = False) -> VectorStore:
        folder = Path(folder)
        try:
            meta = json.loads((folder / STORE_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != STORE_FORMAT:
                raise ValueError(f"unsupported store format {meta.get('format')!r}")
            mode = "r" if mmap else None
            unit = np.load(folder / "vectors.npy", mmap_mode=mode)
            norms = np.load(folder / "norms.npy", mmap_mode=mode)
            words = Vocab.load(folder)
            if unit.shape != (meta["count"], meta["dim"]) or len(words) != meta["count"]:
                raise ValueError(
                    f"files disagree: store.json says {meta['count']} x {meta['dim']}, "
                    f"vectors.npy is {unit.shape}, the vocabulary has {len(words)} words"
                )
            subwords = None
            if meta.get("subwords"):
                ngrams = np.load(folder / "ngrams.npy", mmap_mode=mode)
                subwords = SubwordVectors(ngrams, int(meta["subwords"]["min_n"]), int(meta["subwords"]["max_n"]))
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot open vector store {folder}: {exc}") from exc
        store = cls(words, unit, norms, subwords=subwords, path=folder)
        store._ann_params = meta.get("ann")
        if load_ann:
            store.load_ann()
        return store

    # ---- approximate index ------------------------------------------------------------------

    _ann_params: dict[str, Any] | None = None

    @property
    def has_ann(self) -> bool:
        return self._ann is not None or self._ann_params is not None

    @property
    def ann_info(self) -> dict[str, Any] | None:
        """The approximate index's parameters and measured recall (None without an index)."""
        return self._ann.params if self._ann is not None else self._ann_params

    @property
    def ann_loaded(self) -> bool:
        return self._ann is not None

    @property
    def ann_is_old(self) -> bool:
        """Whether the index is hnswlib's (from before usearch): approximate queries are exact then."""
        return self.has_ann and is_old_index(self.ann_info, self.path)

    def load_ann(self) -> HnswIndex | ExactIndex:
        """Map the index once (thread-safe); raise :class:`NoAnnIndex` if none.

        An old hnswlib index cannot be read without hnswlib (which needs a compiler to install):
        approximate queries then get exact search, said once in the log."""
        if self._ann is not None:
            return self._ann
        with self._ann_lock:
            if self._ann is None:
                if self.path is not None and is_old_index(self._ann_params, self.path):
                    model = self.path.parent if self.path.name == "store" else self.path
                    log.warning("%s: old hnswlib index; approximate queries use exact search until "
                                "`nlp-service convert --reindex %s` or a rebuild", model, model)
                    self._ann = ExactIndex(self.unit, dict(self._ann_params or {}))
                elif self.path is None or not (self.path / ANN_FILE).is_file():
                    raise NoAnnIndex("this model has no approximate-search index (convert/train with --ann)")
                else:
                    try:
                        self._ann = HnswIndex.load(self.path / ANN_FILE, self._ann_params)
                    except (RuntimeError, ValueError) as exc:
                        raise ValueError(f"cannot open the approximate index {self.path / ANN_FILE}: {exc}") from exc
                    if len(self._ann) != len(self):
                        self._ann = None
                        raise ValueError(f"{self.path / ANN_FILE} holds a different number of vectors than "
                                         f"the store ({len(self)})")
        return self._ann

    def build_ann(self, *, connectivity: int = 16, expansion_add: int = 200, recall_queries: int = 1000,
                  ef_search: int = 64, progress: bool = True) -> dict[str, Any]:
        """Build the HNSW index and measure its recall@10 against exact search."""
        self._ann = HnswIndex.build(self.unit, connectivity=connectivity, expansion_add=expansion_add,
                                    progress=progress)
        recall = recall_at_k(self.unit, self._ann, k=10, queries=recall_queries, ef=ef_search)
        self._ann.params.update({"recall_at_10": recall["recall_at_k"], "recall_queries": recall["queries"],
                                 "ef_search": ef_search})
        return dict(self._ann.params)

    # ---- lookups ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.vocab)

    def __contains__(self, word: object) -> bool:
        return word in self.vocab

    @property
    def words(self) -> list[str]:
        """All words in row order (materialised on first use)."""
        return self.vocab.to_list()

    @property
    def dim(self) -> int:
        return int(self.unit.shape[1])

    def lookup(self, word: str) -> tuple[np.ndarray, Source]:
        """Unit vector of ``word`` and where it came from; :class:`WordNotFound` if none."""
        idx = self.vocab.get(word)
        if idx is not None:
            return np.asarray(self.unit[idx]), "vocabulary"
        if self.subwords is not None:
            vec = self.subwords.vector(word)
            if vec is not None:
                return _unitvec(vec), "subwords"
        raise WordNotFound([word])

    def vector(self, word: str, *, normalized: bool = False) -> tuple[np.ndarray, Source]:
        """The word's vector, raw (as trained) unless ``normalized``."""
        idx = self.vocab.get(word)
        if idx is not None:
            unit = np.asarray(self.unit[idx])
            return (unit if normalized else unit * self.norms[idx]), "vocabulary"
        if self.subwords is not None:
            vec = self.subwords.vector(word)
            if vec is not None:
                return (_unitvec(vec) if normalized else vec), "subwords"
        raise WordNotFound([word])

    def check_words(self, words: Sequence[str]) -> None:
        """Raise one :class:`WordNotFound` naming every word that has no vector."""
        missing = [w for w in words if w not in self.vocab and (self.subwords is None or not self.subwords.hashes(w))]
        if missing:
            raise WordNotFound(missing)

    def similarity(self, word1: str, word2: str) -> float:
        self.check_words([word1, word2])
        return float(np.dot(self.lookup(word1)[0], self.lookup(word2)[0]))

    # ---- neighbours ---------------------------------------------------------------------------

    def _mean_query(self, positive: Sequence[Query], negative: Sequence[Query]) -> tuple[np.ndarray, set[int]]:
        """gensim's ``get_mean_vector(pre_normalize=True, post_normalize=True)`` and the input rows."""
        words = [q for q in [*positive, *negative] if isinstance(q, str)]
        self.check_words(words)
        if not positive and not negative:
            raise ValueError("give at least one positive or negative word or vector")
        mean = np.zeros(self.dim, dtype=np.float64)  # float64: query vectors may be near float32's limit
        for sign, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                vec = self.lookup(item)[0] if isinstance(item, str) else np.asarray(item, dtype=np.float64)
                if vec.shape != (self.dim,):
                    raise ValueError(f"vector has {vec.shape[0]} dimensions, the model has {self.dim}")
                if not np.all(np.isfinite(vec)):
                    raise ValueError("vector: every component must be a finite number")
                mean += sign * vec
        mean = mean / (len(positive) + len(negative))
        exclude = {i for i in map(self.vocab.get, words) if i is not None}
        return _unitvec(mean), exclude

    def most_similar(
        self,
        positive: Sequence[Query] = (),
        negative: Sequence[Query] = (),
        *,
        topn: int = 10,
        approximate: bool = False,
        ef: int = 64,
    ) -> list[Neighbor]:
        """Nearest words by cosine to the normalised mean (3CosAdd); input words excluded.

        The exact path gives the same ranking as gensim's ``KeyedVectors.most_similar``.
        """
        query, exclude = self._mean_query(positive, negative)
        want = topn + len(exclude)
        index = self.load_ann() if approximate else None  # an old hnswlib index (ExactIndex): the exact path
        if isinstance(index, HnswIndex):
            labels = index.query(query, want, ef=ef)[0][0]
            labels = np.sort(labels[labels >= 0])
            # Scores from the store's matrix, as the exact path computes them: true cosines whatever
            # precision the index keeps, and the candidates ranked by them (ties: lower row first).
            scores = np.asarray(self.unit[labels]) @ query
            best = np.lexsort((labels, -scores))
            pairs = zip(labels[best].tolist(), scores[best].tolist(), strict=True)
        else:
            scores = self.unit @ query
            best = _top(scores, want)
            pairs = zip(best.tolist(), scores[best].tolist(), strict=True)
        out = [Neighbor(self.vocab.word(i), float(s)) for i, s in pairs if i not in exclude and i >= 0]
        return out[:topn]

    def most_similar_cosmul(
        self, positive: Sequence[Query] = (), negative: Sequence[Query] = (), *, topn: int = 10
    ) -> list[Neighbor]:
        """3CosMul (Levy & Goldberg 2014), as gensim's ``most_similar_cosmul``."""
        if not positive:
            raise ValueError("3CosMul needs at least one positive word")
        words = [q for q in [*positive, *negative] if isinstance(q, str)]
        self.check_words(words)
        exclude = {i for i in map(self.vocab.get, words) if i is not None}

        def shifted(item: Query) -> np.ndarray:
            vec = self.lookup(item)[0] if isinstance(item, str) else np.asarray(item, dtype=np.float32)
            return (1 + self.unit @ vec) / 2

        scores = np.prod([shifted(p) for p in positive], axis=0)
        if negative:
            scores = scores / (np.prod([shifted(n) for n in negative], axis=0) + 0.000001)
        else:
            scores = scores / (1.0 + 0.000001)
        best = _top(scores, topn + len(exclude))
        return [Neighbor(self.vocab.word(i), float(scores[i])) for i in best.tolist() if i not in exclude][:topn]

    def analogy(self, a: str, b: str, c: str, *, topn: int = 1,
                method: Literal["3cosadd", "3cosmul"] = "3cosadd") -> list[Neighbor]:
        """``a`` is to ``b`` as ``c`` is to ... ? (b - a + c)."""
        if method == "3cosmul":
            return self.most_similar_cosmul([b, c], [a], topn=topn)
        return self.most_similar([b, c], [a], topn=topn)

    # ---- texts --------------------------------------------------------------------------------

    def mean_vector(self, tokens: Sequence[str], *, normalized: bool = False) -> tuple[np.ndarray | None, list[str]]:
        """Mean of the tokens' raw vectors (OOV tokens use subwords when the model has them).

        Returns the vector (None when no token has one) and the tokens not in the vocabulary.
        """
        [(mean, oov)] = self.mean_vectors([tokens], normalized=normalized)
        return mean, oov

    def mean_vectors(self, texts: Sequence[Sequence[str]], *, normalized: bool = False
                     ) -> list[tuple[np.ndarray | None, list[str]]]:
        """:meth:`mean_vector` of each token list, computed together: one gather of every known token's row,
        then each text's rows summed in token order (the same float32 sums as one text alone)."""
        ids: list[int] = []
        subword_rows: dict[int, np.ndarray] = {}  # position in ``ids`` -> an OOV token's subword vector
        used: list[int] = []
        oovs: list[list[str]] = []
        vocab_get = self.vocab.get
        for tokens in texts:
            oov: list[str] = []
            count = 0
            for tok in tokens:
                idx = vocab_get(tok)
                if idx is None:
                    oov.append(tok)
                    vec = self.subwords.vector(tok) if self.subwords is not None else None
                    if vec is None:
                        continue
                    subword_rows[len(ids)] = vec
                    idx = 0
                ids.append(idx)
                count += 1
            used.append(count)
            oovs.append(oov)
        out: list[tuple[np.ndarray | None, list[str]]] = [(None, oov) for oov in oovs]
        if not ids:
            return out
        index = np.asarray(ids, dtype=np.int64)
        rows = np.asarray(self.unit[index], dtype=np.float32) * np.asarray(self.norms[index], dtype=np.float32)[:, None]
        for pos, vec in subword_rows.items():
            rows[pos] = vec
        first = 0
        for i, count in enumerate(used):
            if count:
                # Summed along the rows, in order (reduceat sums in another order: other last bits).
                mean = rows[first : first + count].sum(axis=0) / np.float32(count)
                out[i] = (_unitvec(mean) if normalized else mean, oovs[i])
                first += count
        return out
