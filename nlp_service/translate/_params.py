"""The options of translation: training runs (data, split, output), the network's hyper-parameters,
the pair filter, and how a text is decoded.

Declared once, as :func:`~nlp_service.options.option` fields: ``nlp-service train translator``,
``nlp-service translate`` and config files are derived from them, and the hyper-parameters are
saved in the model's manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import Device
from ..options import check, fingerprint, option
from ..training import clip_norm_option, device_option, max_minutes_option, name_option, overwrite_option

Attention = Literal["luong", "bahdanau"]
PairFormat = Literal["auto", "tsv", "csv", "jsonl", "anki"]
DEFAULT_BEAM = 5


@dataclass(frozen=True)
class DecodeOptions:
    """How one text is decoded (per request in the service)."""

    beam_size: int = option(DEFAULT_BEAM, "Beam width (1: greedy).", min=1)
    max_length: int | None = option(None, "Most subword pieces per translation.", min=1, max=512,
                                    default_help="2 x source + 10")
    length_penalty: float = option(0.6, "Beam length normalisation (GNMT alpha); 0 favours short output.", min=0,
                                   max=5)

    def __post_init__(self) -> None:
        check(self)

    def length_limit(self, source_pieces: int) -> int:
        """Most pieces of the translation of a text of ``source_pieces`` pieces."""
        return self.max_length or 2 * source_pieces + 10

    def cost(self, source_pieces: int) -> int:
        """The decoding work of one text, in decoder steps x beams: what a request's cost cap counts."""
        return self.beam_size * self.length_limit(source_pieces)


@dataclass
class LengthFilter:
    """Which pairs are kept for training: lengths in whitespace words, and their ratio."""

    min_words: int = option(1, "Drop pairs with a side shorter than this many words.", min=1)
    max_words: int = option(80, "Drop pairs with a side longer than this many words.", min=1)
    # misaligned pairs show up as extreme ratios
    max_ratio: float = option(3.0, "Drop pairs whose longer side has more than this many times the words of the "
                              "shorter (+2).", above=0)

    def keep(self, source: str, target: str) -> bool:
        a, b = len(source.split()), len(target.split())
        if not (self.min_words <= a <= self.max_words and self.min_words <= b <= self.max_words):
            return False
        return max(a, b) <= self.max_ratio * max(1, min(a, b)) + 2  # +2: short UI strings vary a lot


@dataclass(kw_only=True)
class TranslatorRun:
    """The parallel data, its split, the test evaluation and where the model goes."""

    data: list[Path] | None = option(
        None, "Parallel files: TSV/CSV/JSONL with a column per language code (es, en), or a Tatoeba/Anki export "
        "(spa-eng.zip or its spa.txt).", argument=True, default_help="the shipped Bible + LibreOffice pairs")
    name: str | None = name_option(None, default_help="translate-SOURCE-TARGET")
    source: str = option("es", "Source language code (a column name of the files).")
    target: str = option("en", "Target language code.")
    format: PairFormat = option("auto", "File format (auto: from the file name).")
    source_column: str | None = option(None, "Source column, if not named by the language.")
    target_column: str | None = option(None, "Target column, if not named by the language.")
    validation: float = option(0.05, "Share of the pairs held out for validation.", min=0.0, max=0.9)
    test: float = option(0.05, "Share of the pairs held out for the test.", min=0.0, max=0.9)
    split_seed: int = option(13, "Seed of the train/validation/test split.")
    beam_size: int = option(DEFAULT_BEAM, "Beam size of the test-set evaluation.", min=1)
    device: Device | None = device_option()
    overwrite: bool = overwrite_option()

    @property
    def model_name(self) -> str:
        return self.name or f"translate-{self.source}-{self.target}"


@dataclass
class Seq2SeqParams:
    """Architecture and training settings of a translator (saved in the manifest)."""

    # subwords
    subword: Literal["bpe", "unigram"] = option("bpe", "Subword algorithm: bpe or unigram.")
    vocab_size: int = option(8000, "Subword vocabulary size (per language, or joint).", min=50)
    joint_vocab: bool = option(False, "One vocabulary for both languages (shares embeddings).")
    max_source_tokens: int = option(120, "Longest text in subword pieces: longer ones are cut in training and "
                                    "refused when translating.", flag="--max-tokens", min=1)
    max_target_tokens: int | None = option(None, "Longest target side in training (pieces).", min=1,
                                           default_help="as --max-tokens")
    # network
    embedding_dim: int = option(256, "Embedding size.", min=1)
    hidden_size: int = option(512, "Decoder units (the encoder has half per direction).", min=2)
    encoder_layers: int = option(1, "Stacked bidirectional encoder layers.", min=1)
    decoder_layers: int = option(1, "Stacked decoder layers.", min=1)
    attention: Attention = option("luong", "Score: luong (general) or bahdanau (additive).")
    dropout: float = option(0.2, "Dropout on embeddings, between layers, before the output.", min=0, below=1)
    tie_embeddings: bool = option(True, "The output projection shares the target embedding matrix.")
    # training
    batch_tokens: int = option(4000, "Padded tokens per batch (batches group similar lengths).", min=1)
    epochs: int = option(20, "Most epochs.", min=1)
    learning_rate: float = option(1e-3, "Adam learning rate (multiplied by --lr-decay after an epoch without a "
                                  "better val BLEU).", above=0)
    lr_decay: float = option(0.5, "Learning-rate factor after an epoch without a better val BLEU.", above=0, max=1)
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy.", min=0, below=1)
    clip_norm: float = clip_norm_option()
    patience: int = option(3, "Stop after this many epochs without a better val BLEU.", min=1)
    max_minutes: float | None = max_minutes_option()
    val_sentences: int = option(500, "Validation sentences decoded (greedy) for BLEU after each epoch.", min=1)
    seed: int = option(13, "Seed of the initialisation and the batches.")

    @property
    def target_tokens(self) -> int:
        return self.max_target_tokens or self.max_source_tokens

    def validate(self) -> None:
        check(self)
        if self.hidden_size % 2:
            raise ValueError("hidden_size must be even (it is split between the two encoder directions)")

    def fingerprint(self) -> str:
        """Identifies a training run for resuming: the settings that change its course, not when it stops."""
        return fingerprint(self, exclude=("epochs", "patience", "max_minutes"))
