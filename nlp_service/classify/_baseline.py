"""Bag-of-words / n-gram baselines (scikit-learn), saved as plain arrays: no pickles.

Training uses scikit-learn; a saved model holds the vocabulary (JSON), the idf weights and the
linear model's weights (``.npy``), and inference is the same arithmetic in numpy/scipy, so a
model loads without unpickling anything and gives scikit-learn's ``predict_proba`` exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..text import Tokenizer
from ._params import BowParams


def _prepare(tokenizer: Tokenizer, texts: Sequence[str]) -> list[str]:
    """Texts as space-joined tokens: the same Spanish tokenization for training and serving."""
    return [" ".join(tokens) for tokens in tokenizer.tokenize_many(texts)]


class BowClassifier:
    """A fitted n-gram linear classifier; ``predict_proba`` over raw texts."""

    backend = "bow"
    device_name = "cpu"

    def __init__(self, params: BowParams, tokenizer: Tokenizer, classes: list[str], vocabulary: dict[str, int],
                 idf: np.ndarray | None, coef: np.ndarray, intercept: np.ndarray) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.params = params
        self.tokenizer = tokenizer
        self.classes = classes
        self.vocabulary = vocabulary
        self.idf = idf
        self.coef = coef  # (n_classes or 1, n_features)
        self.intercept = intercept
        self._vectorizer = CountVectorizer(vocabulary=vocabulary, **_vectorizer_kwargs(params))

    # ---- training ----------------------------------------------------------------------------

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], params: BowParams, tokenizer: Tokenizer,
            *, seed: int = 13) -> tuple[BowClassifier, dict[str, float]]:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.svm import LinearSVC

        params.validate()
        start = time.perf_counter()
        docs = _prepare(tokenizer, texts)
        vectorizer = CountVectorizer(min_df=params.min_df, max_features=params.max_features,
                                     **_vectorizer_kwargs(params))
        x = vectorizer.fit_transform(docs)
        idf = None
        if params.features == "tfidf":
            tfidf = TfidfTransformer(sublinear_tf=True)
            x = tfidf.fit_transform(x)
            idf = tfidf.idf_.astype(np.float64)
        if params.classifier == "logreg":
            model: Any = LogisticRegression(C=params.C, max_iter=2000, random_state=seed)
        elif params.classifier == "linearsvc":
            model = LinearSVC(C=params.C, random_state=seed)
        else:
            model = MultinomialNB(alpha=params.alpha)
        model.fit(x, list(labels))
        if params.classifier == "nb":
            coef, intercept = model.feature_log_prob_, model.class_log_prior_
        else:
            coef, intercept = model.coef_, model.intercept_
        vocab = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
        fitted = cls(params, tokenizer, [str(c) for c in model.classes_], vocab, idf,
                     np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64))
        return fitted, {"train_seconds": round(time.perf_counter() - start, 3), "features": len(vocab)}

    # ---- inference ---------------------------------------------------------------------------

    def _features(self, token_lists: Sequence[Sequence[str]]) -> Any:
        x = self._vectorizer.transform([" ".join(tokens) for tokens in token_lists]).astype(np.float64)
        if self.params.features == "tfidf":
            x.data = 1.0 + np.log(x.data)  # sublinear tf
            x = x.multiply(self.idf).tocsr()
            norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            x = x.multiply(1.0 / norms[:, None]).tocsr()
        return x

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_classes) probabilities; for LinearSVC, a softmax of its (uncalibrated) scores."""
        return self.predict_proba_tokens(list(self.tokenizer.tokenize_many(texts)))

    def predict_proba_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """:meth:`predict_proba` of texts already split by the model's tokenizer (``_prepare``'s form)."""
        scores = np.asarray(self._features(token_lists) @ self.coef.T) + self.intercept
        if self.params.classifier == "logreg" and self.coef.shape[0] == 1:
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        if self.coef.shape[0] == 1:  # binary LinearSVC: one score for the second class
            scores = np.concatenate([-scores / 2, scores / 2], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes[i] for i in self.predict_proba(texts).argmax(axis=1)]

    # ---- persistence -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "coef.npy", self.coef)
        np.save(folder / "intercept.npy", self.intercept)
        if self.idf is not None:
            np.save(folder / "idf.npy", self.idf)

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], tokenizer: Tokenizer, classes: list[str]) -> BowClassifier:
        bow = BowParams(**params)
        vocab = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        idf = np.load(folder / "idf.npy", allow_pickle=False) if bow.features == "tfidf" else None
        coef = np.load(folder / "coef.npy", allow_pickle=False)
        intercept = np.load(folder / "intercept.npy", allow_pickle=False)
        if coef.shape[1] != len(vocab) or (idf is not None and idf.shape[0] != len(vocab)):
            raise ValueError(f"{folder}: weights do not match the vocabulary ({coef.shape} vs {len(vocab)})")
        return cls(bow, tokenizer, classes, vocab, idf, coef, intercept)

    def params_dict(self) -> dict[str, Any]:
        return asdict(self.params)


def _vectorizer_kwargs(params: BowParams) -> dict[str, Any]:
    common: dict[str, Any] = {"lowercase": False, "binary": params.features == "binary",
                              "ngram_range": (params.ngram_min, params.ngram_max), "dtype": np.float64}
    if params.analyzer == "char":
        return {**common, "analyzer": "char_wb"}
    return {**common, "analyzer": "word", "token_pattern": r"\S+"}
