"""Text classification: n-gram baselines (scikit-learn) and recurrent networks (PyTorch)."""

from ._baseline import BowClassifier, BowParams
from ._data import LabeledData, read_labeled, split_record, stratified_folds, stratified_split
from ._metrics import classification_metrics
from ._model import KIND, ClassifierModel, Prediction, save_classifier, tokenizer_for_classification

__all__ = [
    "KIND",
    "BowClassifier",
    "BowParams",
    "ClassifierModel",
    "LabeledData",
    "Prediction",
    "classification_metrics",
    "read_labeled",
    "save_classifier",
    "split_record",
    "stratified_folds",
    "stratified_split",
    "tokenizer_for_classification",
]
