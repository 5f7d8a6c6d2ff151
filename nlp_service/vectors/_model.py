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
             exports: Sequence[str] = (), keyed_vectors: Any = None) -> Path:
        """Write the model atomically, with word2vec ``exports`` (from gensim's ``keyed_vectors`` when given)."""
        for fmt in exports:
            if fmt not in EXPORT_FORMATS:
                raise InvalidInput(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
        with atomic_model_dir(models_dir, self.name, overwrite=overwrite) as tmp:
            self.store.save(tmp / STORE_DIR)
            for fmt in exports:
                _export(self.store, keyed_vectors, tmp, fmt)
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

    def analogy(self, a: str, b: str, c: str, *, topn: int, method: Literal["3cosadd", "3cosmul"] = "3cosadd"
                ) -> list[Neighbor]:
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


def _export(store: VectorStore, kv: Any, folder: Path, fmt: str) -> None:
    from gensim.models import KeyedVectors

    if kv is None:
        kv = KeyedVectors(store.dim, dtype=np.float32)
        kv.add_vectors(store.words, np.asarray(store.unit) * np.asarray(store.norms)[:, None])
    binary = fmt == "word2vec-binary"
    kv.save_word2vec_format(str(folder / ("vectors.bin" if binary else "vectors.txt")), binary=binary)
