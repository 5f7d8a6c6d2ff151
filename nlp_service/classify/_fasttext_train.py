"""``nlp-service train fasttext-classifier``: fastText's supervised classifier trained like the n-gram baselines
(on train+validation, tested on the held-out test rows, ``--cv`` on the folds ``train bow --cv`` makes) and
saved like every classifier (manifest, ``split.json``, ``metrics.json``, ``params.toml``).

The options keep fastText's names (``epoch``, ``lr``, ``word_ngrams``, ``dim``, ...). Nothing here imports
``fasttext``: the command is listed, and its options checked, without the extra; training without it stops at
once with the ``pip install`` line to run (:mod:`._fasttext`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..artifacts import json_bytes
from ..options import CONFIG_FILE, option
from ..training import Trainer, start_run
from ._data import stratified_folds
from ._metrics import classification_metrics
from ._model import ClassifierModel, classifier_manifest, tokenizer_for_classification
from ._params import LabeledRun
from ._pipeline import _data_block, _load_and_split, cv_summary, evaluate

if TYPE_CHECKING:
    from ..config import Settings
    from ..text import Tokenizer
    from ._fasttext import FastTextClassifier

__all__ = ["FASTTEXT_CLASSIFIER_TRAINER", "FastTextClassifierParams", "FastTextClassifierRun", "FastTextLoss",
           "cross_validate_fasttext", "train_fasttext_classifier"]

FastTextLoss = Literal["softmax", "hs", "ova", "ns"]


@dataclass(kw_only=True)
class FastTextClassifierRun(LabeledRun):
    split_seed: int = option(13, "Seed of the stratified split and of the --cv folds (those of `train bow --seed`).")


@dataclass
class FastTextClassifierParams:
    """fastText's supervised training, by fastText's own names (``wordNgrams`` and ``minCount`` in snake case)."""

    epoch: int = option(25, "Passes over the training rows.", min=1)
    lr: float = option(0.5, "Learning rate, decreasing linearly to 0. Training failed with NaN? Lower it.", above=0)
    word_ngrams: int = option(2, "Longest word n-gram used as a feature (1: single words).", min=1)
    dim: int = option(100, "Size of the word and n-gram vectors.", min=1)
    min_count: int = option(1, "Words seen fewer times in the training rows are dropped.", min=1)
    loss: FastTextLoss = option("softmax", "softmax, hs (hierarchical softmax), ova (one-vs-all: independent "
                                "sigmoids, normalised to sum to 1) or ns (negative sampling).")
    bucket: int = option(200_000, "Hash buckets shared by the word n-grams. Not fastText's 2,000,000: the model "
                         "holds (words + buckets) x dim floats, 800 MB at dim 100 against 80 MB, and on the "
                         "shipped reviews (9,568 rows) the test accuracy was no lower.", min=1)
    threads: int | None = option(None, "Training threads. fastText's updates are lock-free (Hogwild), so a run "
                                 "repeats exactly only with 1.", min=1, default_help="all cores")
    seed: int = option(13, "Seed of fastText's initialisation and sampling.")


def train_fasttext_classifier(run: FastTextClassifierRun, params: FastTextClassifierParams | None = None, *,
                              settings: Settings | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train fastText on train+validation (it has no early stopping, like the baselines), report test metrics
    (and k-fold CV if asked), save."""
    params = params or FastTextClassifierParams()
    settings = start_run(settings, run, params)
    from ._fasttext import FastTextClassifier  # without the extra: its pip line, before any work

    tokenizer = tokenizer_for_classification(run.language)
    data, split, record = _load_and_split(run, run.split_seed)
    tokens = list(tokenizer.tokenize_many(data.texts))  # once: the model and every fold read them
    fit_rows = split["train"] + split["validation"]
    fit_tokens, fit_labels = [tokens[i] for i in fit_rows], [data.labels[i] for i in fit_rows]
    model, info = FastTextClassifier.fit(fit_tokens, fit_labels, data.classes, params, tokenizer, progress=progress)
    metrics = evaluate(model, data.subset(split["test"]))
    metrics.update(info)
    if run.cv:
        metrics["cross_validation"] = cross_validate_fasttext(fit_tokens, fit_labels, data.classes, params, run.cv,
                                                              run.split_seed, tokenizer)
    manifest = classifier_manifest(run.name, model, tokenizer=tokenizer, classes=model.classes,
                                   params={"fasttext": dataclasses.asdict(params), "split_seed": run.split_seed},
                                   data=_data_block(data, run), metrics=metrics, task=run.task, language=run.language)
    path = ClassifierModel(run.name, manifest, model.classes, tokenizer, model).save(
        settings.models_dir, overwrite=run.overwrite,
        extra_files={"split.json": json_bytes(record, compact=True), "metrics.json": json_bytes(metrics),
                     CONFIG_FILE: FASTTEXT_CLASSIFIER_TRAINER.config(run, params).encode()})
    return path, metrics


def cross_validate_fasttext(token_lists: list[list[str]], labels: list[str], classes: list[str],
                            params: FastTextClassifierParams, k: int, seed: int, tokenizer: Tokenizer
                            ) -> dict[str, Any]:
    """k-fold CV of fastText on the fit rows (train+validation), on the folds
    :func:`~._pipeline.cross_validate` makes of the same rows and seed: compared with a baseline fold by fold."""
    from ._fasttext import FastTextClassifier

    folds = stratified_folds(labels, k, seed)
    scores = []
    for i, held in enumerate(folds):
        rest = [r for j, f in enumerate(folds) if j != i for r in f]
        model: FastTextClassifier
        model, _ = FastTextClassifier.fit([token_lists[r] for r in rest], [labels[r] for r in rest], classes,
                                          params, tokenizer)
        probs = model.predict_proba_tokens([token_lists[r] for r in held])
        scores.append(classification_metrics([labels[r] for r in held], [classes[j] for j in probs.argmax(axis=1)],
                                             classes))
    return cv_summary(folds, scores)


FASTTEXT_CLASSIFIER_TRAINER = Trainer(
    command="fasttext-classifier", kind="classifier",
    summary="Train fastText's supervised classifier (word and word n-gram vectors, averaged, then a linear "
            "softmax) on labeled texts. Needs the fasttext extra: pip install 'nlp-service[fasttext]'.",
    groups=(FastTextClassifierRun, FastTextClassifierParams), train=train_fasttext_classifier,
    report=lambda m: {"test": m["test"], "train_seconds": m["train_seconds"], "threads": m["threads"],
                      "cross_validation": m.get("cross_validation")})
