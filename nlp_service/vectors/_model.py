"""The ``vectors`` model kind: a vector store plus the tokenizer (and phrases) it was built with.

A model folder holds ``store/`` (see :mod:`._store`), optional word2vec exports and the manifest,
whose ``extra`` holds the tokenizer and the phrases, so a text is split at query time exactly as
the corpus was at training time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, write_manifest
from ..errors import InvalidInput
from ..text import PhraseMerger, Tokenizer
from ._params import EXPORT_FORMATS
from ._store import Neighbor, NoAnnIndex, Source, VectorStore, WordNotFound

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

KIND = "vectors"
FORMAT_VERSION = 1
STORE_DIR = "store"
# Where ``save(exports=...)`` writes each format in the model folder.
EXPORT_FILES = {"word2vec-text": "vectors.txt", "word2vec-binary": "vectors.bin", "fasttext-bin": "model.bin",
                "fasttext-vec": "vectors.vec"}


@dataclass
class VectorsModel:
    """A vectors model: what the service queries."""

    name: str
    manifest: Manifest
    store: VectorStore
    tokenizer: Tokenizer
    phrases: PhraseMerger | None = None
    kind: str = KIND

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Settings | None = None) -> VectorsModel:
        folder = Path(folder)
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        try:
            store = VectorStore.load(folder / STORE_DIR)
        except ValueError as exc:
            raise ArtifactError(str(exc)) from exc
        tokenizer = Tokenizer.from_dict(manifest.extra.get("tokenizer", {}))
        phrases_raw = manifest.extra.get("phrases")
        phrases = PhraseMerger.from_dict(phrases_raw) if phrases_raw else None
        return cls(name=folder.name, manifest=manifest, store=store, tokenizer=tokenizer, phrases=phrases)

    def save(self, models_dir: Path, *, overwrite: bool = False, extra_files: Mapping[str, bytes] | None = None,
             exports: Sequence[str] = (), trained: Any = None) -> Path:
        """Write the model atomically, with ``exports`` (:data:`EXPORT_FILES`) from the gensim model it was
        ``trained`` as when given (``fasttext-bin`` needs a gensim ``FastText`` model: a Facebook ``.bin``
        holds the training state, which a converted store does not have)."""
        for fmt in exports:
            if fmt not in EXPORT_FORMATS:
                raise InvalidInput(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
        if "fasttext-bin" in exports and not hasattr(getattr(trained, "wv", None), "vectors_ngrams"):
            raise InvalidInput("the fasttext-bin export is for models trained with `train fasttext`")
        keyed_vectors = trained.wv if trained is not None else self.to_keyed_vectors() if exports else None
        with atomic_model_dir(models_dir, self.name, overwrite=overwrite) as tmp:
            self.store.save(tmp / STORE_DIR)
            for fmt in exports:
                if fmt == "fasttext-bin":
                    from gensim.models.fasttext import save_facebook_model

                    save_facebook_model(trained, str(tmp / EXPORT_FILES[fmt]))
                else:
                    keyed_vectors.save_word2vec_format(str(tmp / EXPORT_FILES[fmt]), binary=fmt == "word2vec-binary")
            for rel, content in (extra_files or {}).items():
                (tmp / rel).write_bytes(content)
            self.manifest.extra.update({"tokenizer": self.tokenizer.to_dict(), "store_dir": STORE_DIR})
            if self.phrases is not None:
                self.manifest.extra["phrases"] = self.phrases.to_dict()
            write_manifest(tmp, self.manifest)
        return Path(models_dir) / self.name

    def warm_up(self, settings: Settings | None = None) -> None:
        """Import the tokenizer and (if configured) map the HNSW index before the first request (an old
        hnswlib index says here, in the log, that approximate queries will be exact)."""
        self.tokens("hola")
        if settings is not None and settings.preload_ann and self.store.has_ann:
            self.store.load_ann()

    def close(self) -> None:
        pass

    # ---- queries: errors name this model ------------------------------------------------------

    @contextlib.contextmanager
    def _named_errors(self) -> Iterator[None]:
        try:
            yield
        except WordNotFound as exc:
            exc.message += f" (model {self.name!r})"
            exc.details["model"] = self.name
            raise
        except NoAnnIndex as exc:
            exc.details["model"] = self.name
            raise

    def tokens(self, text: str) -> list[str]:
        """Tokens of ``text`` exactly as the training corpus was tokenized."""
        tokens = self.tokenizer.tokenize(text)
        return self.phrases(tokens) if self.phrases else tokens

    def similarity(self, word1: str, word2: str) -> float:
        with self._named_errors():
            return self.store.similarity(word1, word2)

    def neighbors(self, positive: Sequence[str | Sequence[float]], negative: Sequence[str] = (), *, topn: int,
                  approximate: bool = False, ef: int = 64) -> list[Neighbor]:
        """Nearest words to the mean of ``positive`` minus ``negative`` (words, or query vectors with the
        model's dimensions); the input words are left out."""
        query = [q if isinstance(q, str) else self._query_vector(q) for q in positive]
        with self._named_errors():
            return self.store.most_similar(query, list(negative), topn=topn, approximate=approximate, ef=ef)

    def _query_vector(self, values: Sequence[float]) -> np.ndarray:
        if len(values) != self.store.dim:
            raise InvalidInput(f"vector has {len(values)} values, model {self.name!r} has {self.store.dim} "
                               "dimensions", code="wrong_dimensions", expected=self.store.dim, got=len(values))
        vec = np.asarray(values, dtype=np.float32)
        if not np.all(np.isfinite(vec)) or not np.any(vec):
            raise InvalidInput("vector must be finite and not all zeros", code="invalid_vector")
        return vec

    def analogy(self, a: str, b: str, c: str, *, topn: int = 5, method: Literal["3cosadd", "3cosmul"] = "3cosadd"
                ) -> list[Neighbor]:
        """``a`` is to ``b`` as ``c`` is to ...? The ``topn`` best answers (5, as ``/v1/analogy``), input words
        left out: 3CosAdd (gensim's ``most_similar(positive=[b, c], negative=[a])``) or 3CosMul."""
        with self._named_errors():
            self.store.check_words([a, b, c])  # the missing words in the order asked
            return self.store.analogy(a, b, c, topn=topn, method=method)

    def word_vectors(self, words: Sequence[str], *, normalized: bool = False) -> list[tuple[np.ndarray, Source]]:
        """Each word's vector and where it came from; one error naming every word without one."""
        with self._named_errors():
            self.store.check_words(words)
            return [self.store.vector(word, normalized=normalized) for word in words]

    def text_vector(self, text: str, *, normalized: bool = False) -> tuple[np.ndarray | None, list[str], list[str]]:
        """Mean of the text's token vectors (None if no token has one), its tokens, and the unknown ones."""
        [result] = self.text_vectors([text], normalized=normalized)
        return result

    def text_vectors(self, texts: Sequence[str], *, normalized: bool = False
                     ) -> list[tuple[np.ndarray | None, list[str], list[str]]]:
        """:meth:`text_vector` of each text, the means computed together."""
        tokens = [self.tokens(text) for text in texts]
        means = self.store.mean_vectors(tokens, normalized=normalized)
        return [(vec, toks, oov) for toks, (vec, oov) in zip(tokens, means, strict=True)]

    # ---- the Python API: gensim's names, over the methods above (the endpoints' code) ----------------

    def most_similar(self, positive: str | Sequence[str | Sequence[float]] = (), negative: str | Sequence[str] = (),
                     topn: int = 10, *, approximate: bool = False, ef: int = 64) -> list[tuple[str, float]]:
        """gensim's ``KeyedVectors.most_similar``: the ``topn`` words nearest (by cosine) to the mean of
        ``positive`` (a word, words, or vectors) minus ``negative``, as (word, cosine) pairs, best first; the
        input words are left out. What ``/v1/neighbors`` answers. ``approximate`` searches the HNSW index with
        breadth ``ef`` (at least ``topn``)."""
        if isinstance(positive, str) or (isinstance(positive, np.ndarray) and positive.ndim == 1):
            positive = [positive]
        negative = [negative] if isinstance(negative, str) else list(negative)
        found = self.neighbors(list(positive), negative, topn=topn, approximate=approximate, ef=max(ef, topn))
        return [(n.word, n.score) for n in found]

    def encode(self, texts: str | Sequence[str], *, normalize: bool = False) -> np.ndarray:
        """Text embeddings as one float32 array, (len(texts), dimensions) (one row for one text given as a
        string): each the mean of the text's token vectors, as ``/v1/embeddings/texts`` computes it
        (:meth:`text_vectors`; ``normalize``: unit length). A text with no token that has a vector gets a row of
        zeros, as gensim's ``get_mean_vector(..., ignore_missing=True)``, spaCy's ``Doc.vector`` and fastText's
        sentence vectors do (the endpoint answers null there; :meth:`text_vectors` says which tokens were
        unknown)."""
        one = isinstance(texts, str)
        found = self.text_vectors([texts] if isinstance(texts, str) else texts, normalized=normalize)
        matrix = np.zeros((len(found), self.store.dim), dtype=np.float32)
        for row, (vector, _, _) in zip(matrix, found, strict=True):
            if vector is not None:
                row[:] = vector
        return matrix[0] if one else matrix

    def to_keyed_vectors(self) -> Any:
        """The vocabulary's vectors, raw (as trained), as gensim ``KeyedVectors``: same words in the same
        order, so gensim's ``most_similar`` gives this model's. fastText subword n-grams are not carried (plain
        ``KeyedVectors`` have none): words outside the vocabulary have no vector there."""
        from gensim.models import KeyedVectors

        keyed_vectors = KeyedVectors(self.store.dim, dtype=np.float32)
        keyed_vectors.add_vectors(self.store.words,
                                  np.asarray(self.store.unit) * np.asarray(self.store.norms)[:, None])
        return keyed_vectors

    def save_word2vec_format(self, path: str | Path, *, binary: bool = False) -> Path:
        """Write the vocabulary's vectors in word2vec's text (or ``binary``) format, which gensim, fastText
        tools and ``nlp-service convert`` read."""
        self.to_keyed_vectors().save_word2vec_format(str(path), binary=binary)
        return Path(path)

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        ann = self.store.ann_info
        return {
            "name": self.name,
            "kind": self.kind,
            "created_at": m.created_at,
            "source": m.data.get("source"),
            "words": len(self.store),
            "dimensions": self.store.dim,
            "subwords": self.store.subwords is not None,
            "approximate_index": bool(ann),
            "ann_recall_at_10": ann.get("recall_at_10") if ann else None,
            "tokenizer": self.tokenizer.to_dict(),
            "metrics": m.metrics,
        }


def vectors_manifest(name: str, *, params: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any]) -> Manifest:
    return Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data, metrics=metrics)
