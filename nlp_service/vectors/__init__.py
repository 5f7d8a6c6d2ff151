"""Word vectors: training (word2vec), pretrained readers (fastText, word2vec), the native store."""

from ._ann import HnswIndex
from ._convert import FORMATS, ConversionError, detect_format, read_vectors
from ._model import (
    EXPORT_FORMATS,
    KIND,
    VectorsModel,
    convert_vectors,
    save_vectors_model,
)
from ._store import Neighbor, NoAnnIndex, VectorStore, WordNotFound
from ._subword import SubwordVectors, fasttext_hash, ngram_bytes
from ._train import (
    Word2VecParams,
    evaluate_keyed_vectors,
    learn_phrases,
    params_dict,
    tokenize_corpus,
    train_word2vec,
)

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "KIND",
    "ConversionError",
    "HnswIndex",
    "Neighbor",
    "NoAnnIndex",
    "SubwordVectors",
    "VectorStore",
    "VectorsModel",
    "Word2VecParams",
    "WordNotFound",
    "convert_vectors",
    "detect_format",
    "evaluate_keyed_vectors",
    "fasttext_hash",
    "learn_phrases",
    "ngram_bytes",
    "params_dict",
    "read_vectors",
    "save_vectors_model",
    "tokenize_corpus",
    "train_word2vec",
]
