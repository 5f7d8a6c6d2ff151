"""The options of word2vec training: the run (corpus, evaluation, output) and the hyper-parameters.

Declared once, as :func:`~nlp_service.options.option` fields: ``nlp-service train word2vec`` and
config files are derived from them (with the tokenizer's own options, :class:`~nlp_service.text.Tokenizer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..options import check, option
from ..training import name_option, overwrite_option

ExportFormat = Literal["word2vec-text", "word2vec-binary"]
EXPORT_FORMATS: tuple[str, ...] = ("word2vec-text", "word2vec-binary")


@dataclass(kw_only=True)
class Word2VecRun:
    """The corpus, the evaluation sets and where the model goes."""

    corpus: list[Path] = option(help="Text files: .txt, .jsonl, .csv, .tsv, optionally .gz/.bz2.", argument=True)
    name: str = name_option()
    column: str | None = option(None, "Text column/field of CSV, TSV or JSONL files.")
    eval_similarity: Path | None = option(None, "Word-pair file: word1<TAB>word2<TAB>score.")
    eval_analogy: Path | None = option(None, "Analogy file in questions-words.txt format.")
    export: list[ExportFormat] | None = option(None, "Also write word2vec-text / word2vec-binary.")
    ann: bool = option(True, "Build an HNSW index for approximate search.")
    overwrite: bool = overwrite_option()


@dataclass
class Word2VecParams:
    """Hyper-parameters of a word2vec run (gensim's names and defaults unless noted)."""

    architecture: Literal["cbow", "skipgram"] = option("skipgram", "skipgram or cbow.")
    loss: Literal["negative", "hs"] = option("negative", "negative sampling or hierarchical softmax (hs).")
    negative: int = option(5, "Noise words per positive (negative sampling).", min=0)
    vector_size: int = option(100, "Dimensions.", min=1)
    window: int = option(5, "Context window.", min=1)
    min_count: int = option(5, "Ignore words rarer than this.", min=1)
    sample: float = option(1e-3, "Down-sampling threshold of frequent words.", min=0)
    epochs: int = option(5, "Passes over the corpus.", min=1)
    alpha: float = option(0.025, "Initial learning rate.", above=0)
    seed: int = option(1, "Random seed (bit-exact runs also need --workers 1).")
    workers: int = option(default_factory=lambda: max(1, os.cpu_count() or 1),
                          help="Threads/processes.", default_help="all cores", min=1)
    phrases: bool = option(False, "Detect bigram phrases (new_york) before training.")
    phrases_min_count: int = option(5, "Phrases: min bigram count.", min=1)
    phrases_threshold: float = option(10.0, "Phrases: score threshold.")

    def validate(self) -> None:
        check(self)
        if self.loss == "negative" and self.negative < 1:
            raise ValueError("negative must be at least 1 with negative sampling")
