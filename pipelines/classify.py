"""Classification pipelines: labeled files -> stratified split -> BoW baseline or RNN -> metrics -> artifact."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nlp_service.classify import (
    BowClassifier,
    BowParams,
    LabeledData,
    classification_metrics,
    read_labeled,
    save_classifier,
    split_record,
    stratified_folds,
    stratified_split,
    tokenizer_for_classification,
)
from nlp_service.data import DataError

from ._plots import history_png


def _load_and_split(paths: Sequence[Path], text_column: str, label_column: str, validation: float, test: float,
                    seed: int) -> tuple[LabeledData, dict[str, list[int]], dict[str, Any]]:
    data = read_labeled([Path(p) for p in paths], text_column, label_column)
    split = stratified_split(data.labels, validation=validation, test=test, seed=seed)
    record = split_record(data, split, seed, {"validation": validation, "test": test})
    return data, split, record


def _data_block(data: LabeledData, text_column: str, label_column: str) -> dict[str, Any]:
    counts = {c: data.labels.count(c) for c in data.classes}
    return {"sources": data.sources, "text_column": text_column, "label_column": label_column,
            "rows": len(data.texts), "class_counts": counts, "sha256": data.fingerprint}


def train_bow(
    paths: Sequence[Path], models_dir: Path, name: str, *, params: BowParams | None = None,
    text_column: str = "text", label_column: str = "label", validation: float = 0.1, test: float = 0.1,
    seed: int = 13, cv: int | None = None, task: str = "classification", language: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Fit an n-gram baseline on train+validation, report test metrics (and k-fold CV if asked)."""
    params = params or BowParams()
    params.validate()
    tokenizer = tokenizer_for_classification(language)
    data, split, record = _load_and_split(paths, text_column, label_column, validation, test, seed)
    fit_rows = split["train"] + split["validation"]  # a baseline has no early stopping: use both
    train = data.subset(fit_rows)
    model, info = BowClassifier.fit(train.texts, train.labels, params, tokenizer, seed=seed)
    metrics = evaluate(model, data.subset(split["test"]))
    metrics.update(info)
    if cv:
        metrics["cross_validation"] = cross_validate(train, params, cv, seed, tokenizer)
    path = save_classifier(
        models_dir, name, backend="bow", tokenizer=tokenizer, classes=model.classes,
        params={"bow": asdict(params), "seed": seed}, data=_data_block(data, text_column, label_column),
        metrics=metrics, split=record, write_files=lambda folder: model.save(folder / "bow"), task=task,
        language=language, overwrite=overwrite,
    )
    return path, metrics


def evaluate(model: Any, test: LabeledData) -> dict[str, Any]:
    start = time.perf_counter()
    probs = model.predict_proba(test.texts)
    seconds = time.perf_counter() - start
    pred = [model.classes[i] for i in probs.argmax(axis=1)]
    return {"test": classification_metrics(test.labels, pred, model.classes),
            "predict_seconds": round(seconds, 3), "predict_texts_per_second": round(len(test.texts) / seconds)}


def cross_validate(data: LabeledData, params: BowParams, k: int, seed: int, tokenizer: Any) -> dict[str, Any]:
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
    from nlp_service.vectors import VectorsModel, WordNotFound, read_vectors

    vectors = Path(vectors)
    store = VectorsModel.load(vectors).store if (vectors / "manifest.json").is_file() else read_vectors(
        vectors, progress=False)

    def lookup(word: str) -> np.ndarray | None:
        try:
            return store.vector(word)[0]
        except WordNotFound:
            return None

    return lookup, store.dim, str(vectors)


def train_recurrent(
    paths: Sequence[Path], models_dir: Path, name: str, *, params: Any = None, text_column: str = "text",
    label_column: str = "label", validation: float = 0.1, test: float = 0.1, split_seed: int = 13,
    vectors: Path | None = None, checkpoint_dir: Path | None = None, device: str = "auto",
    task: str = "classification", language: str | None = None, overwrite: bool = False, progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Train an RNN/LSTM/GRU classifier with early stopping on validation macro-F1; test on the held-out split.

    With ``checkpoint_dir`` every epoch is checkpointed there, and a run interrupted and started
    again with the same data and parameters continues from its last completed epoch.
    """
    from nlp_service.classify.rnn import (
        RNNParams,
        Vocabulary,
        count_parameters,
        initial_embeddings,
        predict_proba,
        save_weights,
        train_rnn,
    )

    params = params or RNNParams()
    params.validate()
    tokenizer = tokenizer_for_classification(language)
    data, split, record = _load_and_split(paths, text_column, label_column, validation, test, split_seed)
    tokens = list(tokenizer.tokenize_many(data.texts))
    vocab = Vocabulary.build([tokens[i] for i in split["train"]], params.min_freq, params.max_vocab)
    classes = data.classes
    label_ids = [classes.index(label) for label in data.labels]
    encoded = [vocab.encode(t, params.max_length) for t in tokens]
    embeddings, embedding_info = None, {"source": "random"}
    if vectors is not None:
        lookup, dim, source = _vector_lookup(vectors)
        params.embedding_dim = dim
        embeddings, found = initial_embeddings(vocab, lookup, dim, params.seed)
        embedding_info = {"source": source, "coverage": round(found / max(1, len(vocab) - 2), 4)}
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir) / f"{name}-{params.fingerprint()}-{data.fingerprint[:12]}"

    def rows(key: str) -> tuple[list[list[int]], list[int]]:
        return [encoded[i] for i in split[key]], [label_ids[i] for i in split[key]]

    tr_x, tr_y = rows("train")
    va_x, va_y = rows("validation")
    te_x, te_y = rows("test")
    result = train_rnn(tr_x, tr_y, va_x, va_y, vocab_size=len(vocab), classes=classes, params=params,
                       embeddings=embeddings, checkpoint_dir=checkpoint_dir, device=device, progress=progress)
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
    curve = training_curve_png(result.history, f"{name} ({params.cell})")

    def write(folder: Path) -> None:
        save_weights(result.model, folder / "model.pt")
        (folder / "vocab.txt").write_text("\n".join(vocab.words), encoding="utf-8")

    path = save_classifier(
        models_dir, name, backend="rnn", tokenizer=tokenizer, classes=classes,
        params={"rnn": asdict(params), "split_seed": split_seed}, data=_data_block(data, text_column, label_column),
        metrics=metrics, split=record, write_files=write, task=task, language=language, overwrite=overwrite,
        extra_files={"training_curve.png": curve} if curve else None,
    )
    if checkpoint_dir is not None:  # the artifact now holds the result; the checkpoint is spent
        import shutil

        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return path, metrics


def training_curve_png(history: list[dict[str, float]], title: str) -> bytes | None:
    return history_png(history, title, [
        ("cross-entropy", [("train_loss", "train"), ("val_loss", "validation")]),
        ("validation", [("val_accuracy", "accuracy"), ("val_macro_f1", "macro-F1")]),
    ])


__all__ = ["DataError", "cross_validate", "evaluate", "train_bow", "train_recurrent", "training_curve_png"]
