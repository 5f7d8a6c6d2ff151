"""Classifier training, end to end: labeled files -> stratified split -> n-gram baseline or recurrent
network -> test metrics -> model folder (with ``split.json``, ``metrics.json``, the training curve and
the run's options as ``params.toml``)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import json_bytes
from ..errors import InvalidInput
from ..options import CONFIG_FILE
from ..training import TRAINING_CURVE, Trainer, history_png, run_folder, start_run
from ._baseline import BowClassifier
from ._data import LabeledData, read_labeled, split_record, stratified_folds, stratified_split
from ._metrics import classification_metrics
from ._model import ClassifierModel, classifier_manifest, tokenizer_for_classification
from ._params import BowParams, BowRun, LabeledRun, RecurrentRun, RNNParams

if TYPE_CHECKING:
    from ..config import Settings
    from ..text import Tokenizer


def _load_and_split(run: LabeledRun, seed: int) -> tuple[LabeledData, dict[str, list[int]], dict[str, Any]]:
    data = read_labeled([Path(p) for p in run.data], run.text_column, run.label_column)
    split = stratified_split(data.labels, validation=run.validation, test=run.test, seed=seed)
    record = split_record(data, split, seed, {"validation": run.validation, "test": run.test})
    return data, split, record


def _data_block(data: LabeledData, run: LabeledRun) -> dict[str, Any]:
    counts = {c: data.labels.count(c) for c in data.classes}
    return {"sources": data.sources, "text_column": run.text_column, "label_column": run.label_column,
            "rows": len(data.texts), "class_counts": counts, "sha256": data.fingerprint}


def train_bow(run: BowRun, params: BowParams | None = None, *, settings: Settings | None = None,
              progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Fit an n-gram baseline on train+validation, report test metrics (and k-fold CV if asked), save."""
    params = params or BowParams()
    settings = start_run(settings, run, params)
    tokenizer = tokenizer_for_classification(run.language)
    data, split, record = _load_and_split(run, run.seed)
    fit_rows = split["train"] + split["validation"]  # a baseline has no early stopping: use both
    train = data.subset(fit_rows)
    model, info = BowClassifier.fit(train.texts, train.labels, params, tokenizer, seed=run.seed)
    metrics = evaluate(model, data.subset(split["test"]))
    metrics.update(info)
    if run.cv:
        metrics["cross_validation"] = cross_validate(train, params, run.cv, run.seed, tokenizer)
    manifest = classifier_manifest(run.name, model, tokenizer=tokenizer, classes=model.classes,
                                   params={"bow": dataclasses.asdict(params), "seed": run.seed},
                                   data=_data_block(data, run), metrics=metrics, task=run.task, language=run.language)
    path = ClassifierModel(run.name, manifest, model.classes, tokenizer, model).save(
        settings.models_dir, overwrite=run.overwrite,
        extra_files={"split.json": json_bytes(record, compact=True), "metrics.json": json_bytes(metrics),
                     CONFIG_FILE: BOW_TRAINER.config(run, params).encode()})
    return path, metrics


def evaluate(model: Any, test: LabeledData) -> dict[str, Any]:
    """Test metrics of anything with ``predict_proba(texts)`` and ``classes``, and its prediction speed."""
    start = time.perf_counter()
    probs = model.predict_proba(test.texts)
    seconds = time.perf_counter() - start
    pred = [model.classes[i] for i in probs.argmax(axis=1)]
    return {"test": classification_metrics(test.labels, pred, model.classes),
            "predict_seconds": round(seconds, 3), "predict_texts_per_second": round(len(test.texts) / seconds)}


def cross_validate(data: LabeledData, params: BowParams, k: int, seed: int, tokenizer: Tokenizer) -> dict[str, Any]:
    folds = stratified_folds(data.labels, k, seed)
    accs, f1s = [], []
    for i, held in enumerate(folds):
        rest = [r for j, f in enumerate(folds) if j != i for r in f]
        train = data.subset(rest)
        model, _ = BowClassifier.fit(train.texts, train.labels, params, tokenizer, seed=seed)
        m = classification_metrics([data.labels[r] for r in held], model.predict([data.texts[r] for r in held]),
                                   model.classes)
        accs.append(m["accuracy"])
        f1s.append(m["macro_f1"])
    return {"k": k, "accuracy_mean": round(float(np.mean(accs)), 4), "accuracy_std": round(float(np.std(accs)), 4),
            "macro_f1_mean": round(float(np.mean(f1s)), 4), "macro_f1_std": round(float(np.std(f1s)), 4),
            "folds": [{"accuracy": a, "macro_f1": f} for a, f in zip(accs, f1s, strict=True)]}


def _vector_lookup(vectors: Path) -> tuple[Any, int, str]:
    """A word -> vector function from a vectors model folder or any word2vec/fastText file."""
    from ..vectors import VectorsModel, WordNotFound, read_vectors

    vectors = Path(vectors)
    store = VectorsModel.load(vectors).store if (vectors / "manifest.json").is_file() else read_vectors(
        vectors, progress=False)

    def lookup(word: str) -> np.ndarray | None:
        try:
            return store.vector(word)[0]
        except WordNotFound:
            return None

    return lookup, store.dim, str(vectors)


def train_recurrent(run: RecurrentRun, params: RNNParams | None = None, *, settings: Settings | None = None,
                    progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train an RNN/LSTM/GRU or CNN classifier with early stopping on validation macro-F1; test it on the
    held-out split; save it. Every epoch is checkpointed under the cache folder, and the same run
    interrupted and started again continues from its last completed epoch."""
    from ..torch_utils import count_parameters
    from ._rnn import RecurrentRuntime, Vocabulary, initial_embeddings, predict_proba, train_rnn

    params = dataclasses.replace(params or RNNParams())  # a copy: --vectors sets its embedding size
    settings = start_run(settings, run, params)
    if params.multichannel and run.vectors is None:
        raise InvalidInput("--multichannel needs --vectors: its fixed channel is a copy of the pretrained embeddings")
    tokenizer = tokenizer_for_classification(run.language)
    data, split, record = _load_and_split(run, run.split_seed)
    tokens = list(tokenizer.tokenize_many(data.texts))
    vocab = Vocabulary.build([tokens[i] for i in split["train"]], params.min_freq, params.max_vocab)
    classes = data.classes
    label_ids = [classes.index(label) for label in data.labels]
    encoded = [vocab.encode(t, params.max_length) for t in tokens]
    embeddings, embedding_info = None, {"source": "random"}
    if run.vectors is not None:
        lookup, dim, source = _vector_lookup(run.vectors)
        params.embedding_dim = dim
        embeddings, found = initial_embeddings(vocab, lookup, dim, params.seed)
        embedding_info = {"source": source, "coverage": round(found / max(1, len(vocab) - 2), 4)}
    checkpoints = run_folder(settings.cache_dir / "checkpoints", run.name, {
        "params": params.fingerprint(), "data": data.fingerprint, "split": [run.split_seed, run.validation, run.test],
        "vectors": str(run.vectors), "language": run.language})

    def rows(key: str) -> tuple[list[list[int]], list[int]]:
        return [encoded[i] for i in split[key]], [label_ids[i] for i in split[key]]

    tr_x, tr_y = rows("train")
    va_x, va_y = rows("validation")
    te_x, te_y = rows("test")
    result = train_rnn(tr_x, tr_y, va_x, va_y, vocab_size=len(vocab), classes=classes, params=params,
                       embeddings=embeddings, checkpoint_dir=checkpoints, device=run.device or settings.device,
                       progress=progress)
    start = time.perf_counter()
    probs = predict_proba(result.model, te_x)
    seconds = time.perf_counter() - start
    pred = [classes[i] for i in probs.argmax(axis=1)]
    metrics: dict[str, Any] = {
        "test": classification_metrics([classes[i] for i in te_y], pred, classes),
        "predict_seconds": round(seconds, 3), "predict_texts_per_second": round(len(te_x) / seconds),
        "train_seconds": result.seconds, "best_epoch": result.best_epoch, "history": result.history,
        "resumed_from_epoch": result.resumed_from_epoch, "device": result.device,
        "parameters": count_parameters(result.model), "vocabulary": len(vocab), "embeddings": embedding_info,
    }
    impl = RecurrentRuntime(result.model, vocab, params, tokenizer)
    manifest = classifier_manifest(run.name, impl, tokenizer=tokenizer, classes=classes,
                                   params={"rnn": dataclasses.asdict(params), "split_seed": run.split_seed},
                                   data=_data_block(data, run), metrics=metrics, task=run.task, language=run.language)
    files = {"split.json": json_bytes(record, compact=True), "metrics.json": json_bytes(metrics),
             CONFIG_FILE: RECURRENT_TRAINER.config(run, params).encode()}
    curve = training_curve_png(result.history, f"{run.name} ({params.cell})")
    if curve:
        files[TRAINING_CURVE] = curve
    path = ClassifierModel(run.name, manifest, classes, tokenizer, impl).save(
        settings.models_dir, overwrite=run.overwrite, extra_files=files)
    result.run.finish()
    return path, metrics


def training_curve_png(history: list[dict[str, float]], title: str) -> bytes | None:
    return history_png(history, title, [
        ("cross-entropy", [("train_loss", "train"), ("val_loss", "validation")]),
        ("validation", [("val_accuracy", "accuracy"), ("val_macro_f1", "macro-F1")]),
    ])


BOW_TRAINER = Trainer(
    command="bow", kind="classifier",
    summary="Train an n-gram baseline (bag of words, counts or TF-IDF + a linear model) on labeled texts.",
    groups=(BowRun, BowParams), train=train_bow,
    report=lambda m: {"test": m["test"], "cross_validation": m.get("cross_validation")})
RECURRENT_TRAINER = Trainer(
    command="neural", kind="classifier", aliases=("rnn",),
    summary="Train a neural classifier: recurrent (RNN/LSTM/GRU) or convolutional (--cell cnn). Interrupted? "
            "Run the same command again: it resumes.",
    groups=(RecurrentRun, RNNParams), train=train_recurrent,
    report=lambda m: {"test": m["test"], "best_epoch": m["best_epoch"], "resumed_from_epoch": m["resumed_from_epoch"]})
