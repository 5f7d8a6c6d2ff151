"""The options of classifier training: the run (data, split, output) and each network's hyper-parameters.

Declared once, as :func:`~nlp_service.options.option` fields: ``nlp-service train bow|neural`` (``rnn``
is the older name of ``neural``) and config files are derived from them, and the hyper-parameters are
saved in the model's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import Device
from ..options import check, fingerprint, option
from ..training import clip_norm_option, device_option, name_option, overwrite_option

Features = Literal["binary", "count", "tfidf"]
Analyzer = Literal["word", "char"]
ClassifierName = Literal["logreg", "linearsvc", "nb"]
Cell = Literal["rnn", "lstm", "gru", "cnn"]
Pooling = Literal["last", "max"]


@dataclass(kw_only=True)
class LabeledRun:
    """Where the labeled texts come from, how they are split, and where the model goes."""

    data: list[Path] = option(help="Labeled CSV, TSV or JSONL files (.gz/.bz2 ok).", argument=True)
    name: str = name_option()
    text_column: str = option("text", "Column (or JSONL field) holding the text.")
    label_column: str = option("label", "Column (or JSONL field) holding the label.")
    validation: float = option(0.1, "Share of the rows held out for validation (stratified).", min=0.0, max=0.9)
    test: float = option(0.1, "Share of the rows held out for the test (stratified).", min=0.0, max=0.9)
    task: str = option("classification", "What the labels are: 'sentiment' or any name; shown in /v1/models.")
    language: str = option("es", "Language of the texts: spaCy's tokenizer rules (es, en, ...).")
    cv: int | None = option(None, "Also report k-fold cross-validation on train+validation (the same folds for "
                            "every model of a file; a neural network trains k more times).", min=2)
    overwrite: bool = overwrite_option()


@dataclass(kw_only=True)
class BowRun(LabeledRun):
    seed: int = option(13, "Seed of the stratified split.")


@dataclass(kw_only=True)
class RecurrentRun(LabeledRun):
    split_seed: int = option(13, "Seed of the stratified split.")
    vectors: Path | None = option(None, "Initial embeddings: a vectors model (folder, or name in the models dir, "
                                  "such as w2v-es) or a word2vec/fastText file.")
    device: Device | None = device_option()


@dataclass
class BowParams:
    """An n-gram baseline: features, n-gram range and linear model."""

    features: Features = option("tfidf", "binary, count or tfidf.")
    analyzer: Analyzer = option("word", "word or char n-grams.")
    ngram_min: int = option(1, "Smallest n-gram.", min=1)
    ngram_max: int = option(2, "Largest n-gram (word 1-2 / 1-3; char e.g. 2-5).", min=1)
    classifier: ClassifierName = option("logreg", "logreg, linearsvc or nb.")
    min_df: int = option(1, "Drop n-grams seen in fewer documents.", min=1)
    max_features: int = option(300_000, "Keep this many of the most frequent n-grams.", min=1)
    C: float = option(1.0, "Inverse regularisation (logreg, linearsvc).", flag="--c", above=0)
    alpha: float = option(1.0, "Naive Bayes smoothing.", min=0)

    def validate(self) -> None:
        check(self)
        if self.ngram_min > self.ngram_max:
            raise ValueError("need 1 <= ngram_min <= ngram_max")

    @property
    def label(self) -> str:
        unit = "word" if self.analyzer == "word" else "char"
        return f"{self.features}-{unit}{self.ngram_min}{self.ngram_max}-{self.classifier}"


@dataclass
class RNNParams:
    """A neural classifier: the network (recurrent, or convolutional with ``cell="cnn"``) and its
    training. Named for the recurrent cells it started with; manifests store it as ``params["rnn"]``."""

    cell: Cell = option("lstm", "rnn (Elman), lstm, gru, or cnn (Kim 2014: parallel 1-D convolutions).")
    embedding_dim: int = option(128, "Embedding size (ignored with --vectors).", min=1)
    hidden_size: int = option(128, "Units per direction (recurrent cells).", min=1)
    layers: int = option(1, "Stacked recurrent layers (recurrent cells).", min=1)
    bidirectional: bool = option(True, "Read texts in both directions (recurrent cells).")
    dropout: float = option(0.5, "Dropout on embeddings, between layers and before the output.", min=0, below=1)
    pooling: Pooling = option("max", "What the output layer reads: the max over time of the states, or the last "
                              "ones (recurrent cells; cnn always takes the max).")
    kernel_sizes: list[int] = option(help="cnn: widths of the parallel convolutions, in tokens.",
                                     default_factory=lambda: [3, 4, 5])
    feature_maps: int = option(100, "cnn: feature maps (filters) per kernel width.", min=1)
    stride: int = option(1, "cnn: step of the convolutions, in tokens.", min=1)
    padding: int = option(0, "cnn: zero vectors added at both ends of a text before convolving.", min=0)
    multichannel: bool = option(False, "cnn: two channels of the --vectors embeddings, one kept fixed and one "
                                "fine-tuned; each filter reads both (Kim's multichannel).")
    max_length: int = option(100, "Tokens kept per text.", min=1)
    min_freq: int = option(2, "Words seen fewer times in the training split are unknown.", min=1)
    max_vocab: int = option(30_000, "Largest vocabulary (the most frequent words).", min=3)
    freeze_embeddings: bool = option(False, "Keep the initial embeddings fixed.")
    batch_size: int = option(64, "Texts per step.", min=1)
    epochs: int = option(10, "Most epochs.", min=1)
    learning_rate: float = option(2e-3, "Adam learning rate.", above=0)
    weight_decay: float = option(0.0, "Adam weight decay.", min=0)
    clip_norm: float = clip_norm_option()
    patience: int = option(3, "Stop after this many epochs without a better val macro-F1.", min=1)
    seed: int = option(13, "Seed of the initialisation and the batches.")

    def validate(self) -> None:
        check(self)
        if not self.kernel_sizes or min(self.kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be one or more widths >= 1, got {self.kernel_sizes}")
        if self.multichannel and self.cell != "cnn":
            raise ValueError(f"multichannel is a cnn option, not one of cell {self.cell!r}")

    def fingerprint(self) -> str:
        return fingerprint(self)


NeuralParams = RNNParams  # the name that says what it holds; RNNParams stays for saved code and models

__all__ = ["BowParams", "BowRun", "LabeledRun", "NeuralParams", "RNNParams", "RecurrentRun"]
