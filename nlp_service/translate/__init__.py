"""Machine translation: a seq2seq LSTM with attention trained here, or a pretrained Marian model,
behind one model kind (:class:`TranslatorModel`).

The network and search names import torch when first used.
"""

from .._lazy import lazy_attributes
from ._data import ParallelData, read_parallel, split_pairs
from ._fetch import TATOEBA, fetch_tatoeba
from ._metrics import translation_metrics
from ._model import (
    KIND,
    AttentionMap,
    AttentionNotSupported,
    InputTooLong,
    MarianRuntime,
    Seq2SeqRuntime,
    Translation,
    TranslationRequest,
    TranslatorModel,
    import_marian,
)
from ._params import DecodeOptions, LengthFilter, Seq2SeqParams, TranslatorRun
from ._pipeline import TRANSLATOR_TRAINER, build_translator, read_test_split

__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(("Hypothesis", "Seq2Seq", "attention_of", "beam_search", "decode_many", "greedy_decode",
                     "score_sequences"), "._seq2seq"),
    **dict.fromkeys(("TrainResult", "token_batches", "train_seq2seq"), "._train"),
    "Subwords": "._subwords",
})

__all__ = [
    "KIND",
    "TATOEBA",
    "TRANSLATOR_TRAINER",
    "AttentionMap",
    "AttentionNotSupported",
    "DecodeOptions",
    "Hypothesis",
    "InputTooLong",
    "LengthFilter",
    "MarianRuntime",
    "ParallelData",
    "Seq2Seq",
    "Seq2SeqParams",
    "Seq2SeqRuntime",
    "Subwords",
    "TrainResult",
    "Translation",
    "TranslationRequest",
    "TranslatorModel",
    "TranslatorRun",
    "attention_of",
    "beam_search",
    "build_translator",
    "decode_many",
    "fetch_tatoeba",
    "greedy_decode",
    "import_marian",
    "read_parallel",
    "read_test_split",
    "score_sequences",
    "split_pairs",
    "token_batches",
    "train_seq2seq",
    "translation_metrics",
]
