"""Text classification: n-gram baselines (scikit-learn), neural networks (PyTorch: recurrent or
convolutional) and fastText's supervised classifier (the ``fasttext`` extra), trained on
labeled texts and served behind one interface (:class:`ClassifierModel`).

The recurrent network's names import torch when first used, and ``FastTextClassifier`` fastText.
"""

from .._lazy import lazy_attributes
from ._baseline import BowClassifier
from ._data import LabeledData, read_labeled, split_record, stratified_folds, stratified_split
from ._explain import TokenScore, activation_inputs, activation_scores, occlusion_inputs, occlusion_scores
from ._fasttext_train import (
    FASTTEXT_CLASSIFIER_TRAINER,
    FastTextClassifierParams,
    FastTextClassifierRun,
    FastTextLoss,
    cross_validate_fasttext,
    train_fasttext_classifier,
)
from ._metrics import classification_metrics
from ._model import KIND, ActivationOf, ClassifierModel, Prediction, Tokens, tokenizer_for_classification
from ._params import BowParams, BowRun, LabeledRun, NeuralParams, RecurrentRun, RNNParams
from ._pipeline import BOW_TRAINER, RECURRENT_TRAINER, cross_validate, evaluate, train_bow, train_recurrent

_TORCH = ("ConvClassifier", "RecurrentClassifier", "RecurrentRuntime", "Vocabulary", "build_network",
          "initial_embeddings", "predict_proba", "train_rnn")
__getattr__ = lazy_attributes(__name__, {**dict.fromkeys(_TORCH, "._rnn"), "FastTextClassifier": "._fasttext"})

__all__ = [
          "BOW_TRAINER",
          "FASTTEXT_CLASSIFIER_TRAINER",
          "KIND",
          "RECURRENT_TRAINER",
          "ActivationOf",
          "BowClassifier",
          "BowParams",
          "BowRun",
          "ClassifierModel",
          "ConvClassifier",
          "FastTextClassifier",
          "FastTextClassifierParams",
          "FastTextClassifierRun",
          "FastTextLoss",
          "LabeledData",
          "LabeledRun",
          "NeuralParams",
          "Prediction",
          "RNNParams",
          "RecurrentClassifier",
          "RecurrentRun",
          "RecurrentRuntime",
          "TokenScore",
          "Tokens",
          "Vocabulary",
          "activation_inputs",
          "activation_scores",
          "build_network",
          "classification_metrics",
          "cross_validate",
          "cross_validate_fasttext",
          "evaluate",
          "initial_embeddings",
          "occlusion_inputs",
          "occlusion_scores",
          "predict_proba",
          "read_labeled",
          "split_record",
          "stratified_folds",
          "stratified_split",
          "tokenizer_for_classification",
          "train_bow",
          "train_fasttext_classifier",
          "train_recurrent",
          "train_rnn",
]
