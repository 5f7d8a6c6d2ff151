"""word2vec pipeline: raw text -> tokens (parallel, cached) -> phrases -> word2vec -> evaluation -> artifact."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlp_service.data import DataError
from nlp_service.text import Tokenizer
from nlp_service.vectors import (
    EXPORT_FORMATS,
    VectorStore,
    Word2VecParams,
    evaluate_keyed_vectors,
    learn_phrases,
    params_dict,
    save_vectors_model,
    tokenize_corpus,
    train_word2vec,
)


def build_word2vec(
    corpus: Sequence[Path],
    models_dir: Path,
    name: str,
    *,
    params: Word2VecParams | None = None,
    tokenizer: Tokenizer | None = None,
    column: str | None = None,
    cache_dir: Path,
    similarity_file: Path | None = None,
    analogy_file: Path | None = None,
    exports: Sequence[str] = (),
    ann: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """The word2vec pipeline: raw text -> tokens (cached) -> phrases -> word2vec -> eval -> artifact."""
    params = params or Word2VecParams()
    tokenizer = tokenizer or Tokenizer()
    params.validate()
    for fmt in exports:
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    for f in (similarity_file, analogy_file):
        if f is not None and not Path(f).is_file():
            raise DataError(f"no such evaluation file: {f}")
    start = time.perf_counter()
    tokenized, tok_stats = tokenize_corpus(
        [Path(c) for c in corpus], tokenizer, cache_dir, column=column, workers=params.workers, progress=progress
    )
    phrases = None
    if params.phrases:
        tokenized, phrases = learn_phrases(tokenized, params, progress=progress)
    model, train_stats = train_word2vec(tokenized, params, progress=progress)
    metrics: dict[str, Any] = {"tokenize": tok_stats, "train": train_stats}
    metrics.update(evaluate_keyed_vectors(model.wv, similarity_file=similarity_file, analogy_file=analogy_file))
    store = VectorStore.from_keyed_vectors(model.wv)
    metrics["pipeline_seconds"] = round(time.perf_counter() - start, 2)
    data = {
        "source": "word2vec",
        "corpus": [{"path": str(c), "name": Path(c).name, "size": Path(c).stat().st_size} for c in corpus],
        "column": column,
        "sentences": tok_stats["sentences"],
        "tokens": tok_stats["words"],
        "phrases": len(phrases.phrasegrams) if phrases else 0,
    }
    path = save_vectors_model(
        models_dir, name, store, tokenizer=tokenizer, params={"word2vec": params_dict(params)}, data=data,
        metrics=metrics, phrases=phrases, ann=ann, exports=exports, keyed_vectors=model.wv,
        overwrite=overwrite, progress=progress,
    )
    return path, metrics
