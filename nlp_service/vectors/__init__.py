"""Word vectors: word2vec and fastText training, pretrained readers (fastText, word2vec), the native store and the
``vectors`` model kind. Importing it loads neither gensim nor spaCy (they load when used)."""

from ._ann import ANN_FILE, OLD_ANN_FILE, ExactIndex, HnswIndex
from ._convert import FORMATS, PACKAGED_VECTORS, ConversionError, detect_format, read_vectors
from ._fetch import CC_ES, fetch_cc_es
from ._model import KIND, VectorsModel
from ._params import EXPORT_FORMATS, FastTextParams, FastTextRun, Word2VecParams, Word2VecRun
from ._pipeline import (
    FASTTEXT_TRAINER,
    WORD2VEC_TRAINER,
    build_fasttext,
    build_word2vec,
    convert_vectors,
    reindex_vectors,
)
from ._store import Neighbor, NoAnnIndex, Source, VectorStore, WordNotFound
from ._subword import SubwordVectors, fasttext_hash, ngram_bytes
from ._train import evaluate_keyed_vectors, learn_phrases, tokenize_corpus, train_fasttext, train_word2vec

__all__ = [
    "ANN_FILE",
    "CC_ES",
    "EXPORT_FORMATS",
    "FASTTEXT_TRAINER",
    "FORMATS",
    "KIND",
    "OLD_ANN_FILE",
    "PACKAGED_VECTORS",
    "WORD2VEC_TRAINER",
    "ConversionError",
    "ExactIndex",
    "FastTextParams",
    "FastTextRun",
    "HnswIndex",
    "Neighbor",
    "NoAnnIndex",
    "Source",
    "SubwordVectors",
    "VectorStore",
    "VectorsModel",
    "Word2VecParams",
    "Word2VecRun",
    "WordNotFound",
    "build_fasttext",
    "build_word2vec",
    "convert_vectors",
    "detect_format",
    "evaluate_keyed_vectors",
    "fasttext_hash",
    "fetch_cc_es",
    "learn_phrases",
    "ngram_bytes",
    "read_vectors",
    "reindex_vectors",
    "tokenize_corpus",
    "train_fasttext",
    "train_word2vec",
]
