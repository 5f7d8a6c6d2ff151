"""Machine translation: a seq2seq LSTM with attention trained here, or a pretrained Marian model."""

from ._data import LengthFilter, ParallelData, read_parallel, split_pairs
from ._metrics import translation_metrics
from ._model import (
    KIND,
    InputTooLong,
    TranslationRequest,
    TranslatorModel,
    import_marian,
    save_translator,
    seq2seq_files,
)
from ._seq2seq import Hypothesis, Seq2Seq, Seq2SeqParams, beam_search, decode_many, greedy_decode
from ._subwords import Subwords
from ._train import TrainResult, train_seq2seq

__all__ = [
    "KIND",
    "Hypothesis",
    "InputTooLong",
    "LengthFilter",
    "ParallelData",
    "Seq2Seq",
    "Seq2SeqParams",
    "Subwords",
    "TrainResult",
    "TranslationRequest",
    "TranslatorModel",
    "beam_search",
    "decode_many",
    "greedy_decode",
    "import_marian",
    "read_parallel",
    "save_translator",
    "seq2seq_files",
    "split_pairs",
    "train_seq2seq",
    "translation_metrics",
]
