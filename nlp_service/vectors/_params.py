"""The options of word2vec and fastText training: the run (corpus, evaluation, output) and the
hyper-parameters.

Declared once, as :func:`~nlp_service.options.option` fields: ``nlp-service train word2vec|fasttext`` and
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
# fastText models add Facebook's .bin (subwords included; the fastText tools and `convert` read it) and .vec.
FastTextExportFormat = Literal["word2vec-text", "word2vec-binary", "fasttext-bin", "fasttext-vec"]
EXPORT_FORMATS: tuple[str, ...] = ("word2vec-text", "word2vec-binary", "fasttext-bin", "fasttext-vec")


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


@dataclass(kw_only=True)
class FastTextRun(Word2VecRun):
    """A word2vec run, plus the pretrained fastText model to adapt, and fastText's own export formats."""

    init: Path | None = option(None, "Continue training a Facebook fastText .bin (cc.es.300.bin, or any full "
                               "model: not a .vec, not a quantized .ftz) on the corpus: its vocabulary is updated "
                               "with the corpus's words, then trained. Its dimensions, n-gram sizes, bucket and "
                               "architecture are kept (the options for them are ignored). The full cc.es.300 needs "
                               "about 16 GB of memory.")
    export: list[FastTextExportFormat] | None = option(
        None, "Also write fasttext-bin (model.bin: Facebook's format, subwords included), fasttext-vec (vectors.vec), "
        "word2vec-text (vectors.txt) or word2vec-binary (vectors.bin); repeat for several.")


@dataclass
class FastTextParams(Word2VecParams):
    """Hyper-parameters of a fastText run: word2vec's, plus the character n-grams that give every word a
    vector (gensim's ``FastText``)."""

    min_n: int = option(3, "Shortest character n-gram (0 with max_n 0: no subwords).", min=0)
    max_n: int = option(6, "Longest character n-gram.", min=0)
    bucket: int = option(200_000, "Hash buckets of the n-grams. fastText and gensim use 2,000,000 (800 MB at 100 "
                         "dimensions, as much again to train); this is enough for a corpus of millions of words.",
                         min=1)

    def validate(self) -> None:
        super().validate()
        if self.max_n and self.min_n > self.max_n:
            raise ValueError(f"min_n ({self.min_n}) must not exceed max_n ({self.max_n})")
