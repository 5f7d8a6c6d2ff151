"""Classifier training, end to end: labeled files -> stratified split -> n-gram baseline or recurrent
network -> test metrics -> model folder (with ``split.json``, ``metrics.json``, the training curve and
the run's options as ``params.toml``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
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
    scores = []
    for i, held in enumerate(folds):
        rest = [r for j, f in enumerate(folds) if j != i for r in f]
        train = data.subset(rest)
        model, _ = BowClassifier.fit(train.texts, train.labels, params, tokenizer, seed=seed)
        scores.append(classification_metrics([data.labels[r] for r in held],
                                             model.predict([data.texts[r] for r in held]), model.classes))
    return cv_summary(folds, scores)


def cv_summary(folds: list[list[int]], fold_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (population std) of accuracy and macro-F1 over the folds, and each fold's, with its
    number of held-out rows ``n`` and ``rows_sha`` (a digest of its rows' positions among train+validation:
    two models' folds with the same digest held out the same rows, so they compare fold by fold)."""
    accs = [m["accuracy"] for m in fold_metrics]
    f1s = [m["macro_f1"] for m in fold_metrics]
    return {"k": len(folds), "accuracy_mean": round(float(np.mean(accs)), 4),
            "accuracy_std": round(float(np.std(accs)), 4), "macro_f1_mean": round(float(np.mean(f1s)), 4),
            "macro_f1_std": round(float(np.std(f1s)), 4),
            "folds": [{"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"],
                       "rows_sha": hashlib.sha256(json.dumps(sorted(held)).encode()).hexdigest()[:16]}
                      for held, m in zip(folds, fold_metrics, strict=True)]}


def _vector_lookup(vectors: Path, models_dir: Path) -> tuple[Any, int, str]:
    """A word -> vector function from a vectors model (folder, or name under ``models_dir``) or any
    word2vec/fastText file."""
    from ..vectors import VectorsModel, WordNotFound, read_vectors

    vectors = resolve_vectors(vectors, models_dir)
    store = VectorsModel.load(vectors).store if vectors.is_dir() else read_vectors(vectors, progress=False)

    def lookup(word: str) -> np.ndarray | None:
        try:
            return store.vector(word)[0]
        except WordNotFound:
            return None

    return lookup, store.dim, str(vectors)


def resolve_vectors(vectors: Path, models_dir: Path) -> Path:
    """``--vectors``: a vectors file or model folder, else a model of that name in the models dir (so
    ``vectors = "w2v-es"`` in a config file means the model, wherever the file is)."""
    vectors = Path(vectors)
    if vectors.is_file() or (vectors / "manifest.json").is_file():
        return vectors
    by_name = Path(models_dir) / vectors.name
    if (by_name / "manifest.json").is_file():
        return by_name
    raise InvalidInput(f"--vectors {vectors}: no such vectors file or model folder, and no model "
                       f"{vectors.name!r} in {models_dir}", field="vectors")


@dataclasses.dataclass
class _Encoded:
    """A labeled file tokenized once; each fit builds its vocabulary from its own training rows."""

    tokens: list[list[str]]
    label_ids: list[int]
    classes: list[str]


def _fit_neural(enc: _Encoded, train_rows: list[int], val_rows: list[int], params: RNNParams,
                lookup: tuple[Any, int, str] | None, *, device: str, checkpoints: Path | None,
                progress: bool) -> tuple[Any, Any, dict[str, Any]]:
    """Train one network on ``train_rows`` (early stopping on ``val_rows``): (result, vocabulary,
    embeddings info). ``params.embedding_dim`` must already be the vectors' size when ``lookup`` is set."""
    from ._rnn import Vocabulary, initial_embeddings, train_rnn

    vocab = Vocabulary.build([enc.tokens[i] for i in train_rows], params.min_freq, params.max_vocab)
    embeddings, info = None, {"source": "random"}
    if lookup is not None:
        fn, dim, source = lookup
        embeddings, found = initial_embeddings(vocab, fn, dim, params.seed)
        info = {"source": source, "coverage": round(found / max(1, len(vocab) - 2), 4)}

    def rows(which: list[int]) -> tuple[list[list[int]], list[int]]:
        return [vocab.encode(enc.tokens[i], params.max_length) for i in which], [enc.label_ids[i] for i in which]

    (tr_x, tr_y), (va_x, va_y) = rows(train_rows), rows(val_rows)
    result = train_rnn(tr_x, tr_y, va_x, va_y, vocab_size=len(vocab), classes=enc.classes, params=params,
                       embeddings=embeddings, checkpoint_dir=checkpoints, device=device, progress=progress)
    return result, vocab, info


def _score_neural(result: Any, vocab: Any, enc: _Encoded, rows: list[int], params: RNNParams
                  ) -> tuple[dict[str, Any], float]:
    """Metrics of a trained network on ``rows``, and the seconds its prediction took."""
    from ._rnn import predict_proba

    encoded = [vocab.encode(enc.tokens[i], params.max_length) for i in rows]
    start = time.perf_counter()
    probs = predict_proba(result.model, encoded)
    seconds = time.perf_counter() - start
    pred = [enc.classes[i] for i in probs.argmax(axis=1)]
    return classification_metrics([enc.classes[enc.label_ids[i]] for i in rows], pred, enc.classes), seconds


def _cross_validate_neural(enc: _Encoded, fit_rows: list[int], params: RNNParams, run: RecurrentRun,
                          lookup: tuple[Any, int, str] | None, *, device: str, progress: bool) -> dict[str, Any]:
    """k-fold CV on ``fit_rows`` (train+validation), with the folds ``train bow --cv`` makes of the same rows
    and seed (so the two are compared fold by fold); in each fold the other folds are split again into train
    and validation (the run's shares) for early stopping. Nothing is checkpointed."""
    labels = [enc.classes[enc.label_ids[i]] for i in fit_rows]
    k = int(run.cv or 0)
    folds = stratified_folds(labels, k, run.split_seed)
    val_share = run.validation / (1 - run.test)
    scores = []
    for i, held in enumerate(folds):
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(f"cross-validation: fold {i + 1}/{k} ({len(held)} rows held out)", file=sys.stderr)
        rest = [fit_rows[r] for j, f in enumerate(folds) if j != i for r in f]
        inner = stratified_split([enc.classes[enc.label_ids[r]] for r in rest], validation=val_share, test=0.0,
                                 seed=run.split_seed)
        result, vocab, _ = _fit_neural(enc, [rest[r] for r in inner["train"]], [rest[r] for r in inner["validation"]],
                                       params, lookup, device=device, checkpoints=None, progress=progress)
        metrics, _ = _score_neural(result, vocab, enc, [fit_rows[r] for r in held], params)
        scores.append({**metrics, "best_epoch": result.best_epoch})
        result.run.finish()
    summary = cv_summary(folds, scores)
    for fold, m in zip(summary["folds"], scores, strict=True):
        fold["best_epoch"] = m["best_epoch"]
    return summary


def train_recurrent(run: RecurrentRun, params: RNNParams | None = None, *, settings: Settings | None = None,
                    progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train an RNN/LSTM/GRU or CNN classifier with early stopping on validation macro-F1; test it on the
    held-out split; save it. Every epoch is checkpointed under the cache folder, and the same run
    interrupted and started again continues from its last completed epoch. With ``run.cv``, also k-fold
    cross-validation on train+validation (k more networks, not checkpointed)."""
    from ..torch_utils import count_parameters
    from ._rnn import RecurrentRuntime

    params = dataclasses.replace(params or RNNParams())  # a copy: --vectors sets its embedding size
    settings = start_run(settings, run, params)
    if params.multichannel and run.vectors is None:
        raise InvalidInput("--multichannel needs --vectors: its fixed channel is a copy of the pretrained embeddings")
    if run.cv and run.validation <= 0:
        raise InvalidInput("--cv needs --validation > 0: each fold stops early on a validation share", field="cv")
    tokenizer = tokenizer_for_classification(run.language)
    data, split, record = _load_and_split(run, run.split_seed)
    enc = _Encoded(list(tokenizer.tokenize_many(data.texts)), [data.classes.index(y) for y in data.labels],
                   data.classes)
    lookup = None
    if run.vectors is not None:
        lookup = _vector_lookup(run.vectors, settings.models_dir)
        params.embedding_dim = lookup[1]
    device = run.device or settings.device
    checkpoints = run_folder(settings.cache_dir / "checkpoints", run.name, {
        "params": params.fingerprint(), "data": data.fingerprint, "split": [run.split_seed, run.validation, run.test],
        "vectors": str(run.vectors), "language": run.language})
    result, vocab, embedding_info = _fit_neural(enc, split["train"], split["validation"], params, lookup,
                                                device=device, checkpoints=checkpoints, progress=progress)
    test_metrics, seconds = _score_neural(result, vocab, enc, split["test"], params)
    n_test = len(split["test"])
    metrics: dict[str, Any] = {
        "test": test_metrics,
        "predict_seconds": round(seconds, 3), "predict_texts_per_second": round(n_test / seconds) if seconds else None,
        "train_seconds": result.seconds, "best_epoch": result.best_epoch, "history": result.history,
        "resumed_from_epoch": result.resumed_from_epoch, "device": result.device,
        "parameters": count_parameters(result.model), "vocabulary": len(vocab), "embeddings": embedding_info,
    }
    if run.cv:
        metrics["cross_validation"] = _cross_validate_neural(enc, split["train"] + split["validation"], params, run,
                                                            lookup, device=device, progress=progress)
    impl = RecurrentRuntime(result.model, vocab, params, tokenizer)
    classes = data.classes
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
    report=lambda m: {"test": m["test"], "best_epoch": m["best_epoch"], "resumed_from_epoch": m["resumed_from_epoch"],
                      "embeddings": m["embeddings"], "cross_validation": m.get("cross_validation")})
