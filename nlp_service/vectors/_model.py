"""The ``vectors`` model kind: a vector store plus the tokenizer (and phrases) it was built with."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, write_manifest
from ..text import PhraseMerger, Tokenizer
from ._convert import ConversionError, VectorFormat, read_vectors
from ._store import VectorStore

log = logging.getLogger(__name__)

KIND = "vectors"
FORMAT_VERSION = 1
STORE_DIR = "store"


@dataclass
class VectorsModel:
    """A loaded vectors artifact: what the service queries."""

    name: str
    manifest: Manifest
    store: VectorStore
    tokenizer: Tokenizer
    phrases: PhraseMerger | None = None
    kind: str = KIND

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Any = None) -> VectorsModel:
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

    def warm_up(self, settings: Any) -> None:
        """Import the tokenizer and (if configured) load the HNSW index before the first request."""
        self.tokens("hola")
        if getattr(settings, "preload_ann", False) and self.store.has_ann:
            self.store.load_ann()

    def tokens(self, text: str) -> list[str]:
        """Tokens of ``text`` exactly as the training corpus was tokenized."""
        tokens = self.tokenizer.tokenize(text)
        return self.phrases(tokens) if self.phrases else tokens

    def text_vector(self, text: str, *, normalized: bool = False) -> tuple[np.ndarray | None, list[str], list[str]]:
        tokens = self.tokens(text)
        vec, oov = self.store.mean_vector(tokens, normalized=normalized)
        return vec, tokens, oov

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        ann = self.store._ann_params or (self.store._ann.params if self.store._ann else None)
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


def save_vectors_model(
    models_dir: Path,
    name: str,
    store: VectorStore,
    *,
    tokenizer: Tokenizer,
    params: dict[str, Any],
    data: dict[str, Any],
    metrics: dict[str, Any],
    phrases: PhraseMerger | None = None,
    ann: bool = False,
    exports: Sequence[str] = (),
    keyed_vectors: Any = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a vectors artifact atomically (optionally with an HNSW index and word2vec exports)."""
    metrics = dict(metrics)
    if ann and len(store) > 1:
        ann_info = store.build_ann(progress=progress)
        metrics["ann"] = ann_info
    with atomic_model_dir(models_dir, name, overwrite=overwrite) as tmp:
        store.save(tmp / STORE_DIR)
        for fmt in exports:
            _export(store, keyed_vectors, tmp, fmt)
        extra: dict[str, Any] = {"tokenizer": tokenizer.to_dict(), "store_dir": STORE_DIR}
        if phrases is not None:
            extra["phrases"] = phrases.to_dict()
        manifest = Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data,
                            metrics=metrics, extra=extra)
        write_manifest(tmp, manifest)
    return Path(models_dir) / name


EXPORT_FORMATS = ("word2vec-text", "word2vec-binary")


def _export(store: VectorStore, kv: Any, folder: Path, fmt: str) -> None:
    from gensim.models import KeyedVectors

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    if kv is None:
        kv = KeyedVectors(store.dim, dtype=np.float32)
        kv.add_vectors(store.words, np.asarray(store.unit) * np.asarray(store.norms)[:, None])
    binary = fmt == "word2vec-binary"
    kv.save_word2vec_format(str(folder / ("vectors.bin" if binary else "vectors.txt")), binary=binary)


def convert_vectors(
    source: Path,
    models_dir: Path,
    name: str,
    *,
    fmt: VectorFormat | None = None,
    limit: int | None = None,
    ann: bool = True,
    tokenizer: Tokenizer | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Read a pretrained vectors file and write it as a native artifact (atomic)."""
    start = time.perf_counter()
    store = read_vectors(Path(source), fmt, limit=limit, progress=progress)
    if len(store) == 0:
        raise ConversionError(f"{source}: holds no vectors")
    read_seconds = time.perf_counter() - start
    # cc.es.300 keeps case and accents, and its tokens follow its own tokenizer: keep case by default.
    tokenizer = tokenizer or Tokenizer(lowercase=False, keep_punct=True)
    return save_vectors_model(
        models_dir, name, store, tokenizer=tokenizer,
        params={"limit": limit, "format": fmt or "auto"},
        data={"source": str(source), "source_name": Path(source).name, "source_size": Path(source).stat().st_size},
        metrics={"read_seconds": round(read_seconds, 2)},
        ann=ann, overwrite=overwrite, progress=progress,
    )
