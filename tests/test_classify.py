"""Classification library: metrics, splits, baselines against scikit-learn, the recurrent model."""

from __future__ import annotations

import csv
import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.svm import LinearSVC

from nlp_service.artifacts import ArtifactError, read_manifest, write_manifest
from nlp_service.classify import (
    BowClassifier,
    BowParams,
    ClassifierModel,
    RNNParams,
    Vocabulary,
    classification_metrics,
    initial_embeddings,
    read_labeled,
    stratified_folds,
    stratified_split,
    tokenizer_for_classification,
    train_rnn,
)
from nlp_service.classify._baseline import _prepare, _vectorizer_kwargs  # white-box: scikit-learn's exact inputs
from nlp_service.data import SENTIMENT_ES, DataError


@pytest.fixture(scope="module")
def three_class_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real snippets with three classes from the rating: neg (< -1), mid, pos (> 1)."""
    path = tmp_path_factory.mktemp("three") / "reviews.csv"
    with gzip.open(SENTIMENT_ES, "rt", encoding="utf-8") as src, open(path, "w", newline="", encoding="utf-8") as out:
        reader = csv.DictReader(src, delimiter="\t")
        writer = csv.writer(out)
        writer.writerow(["opinion", "clase"])
        for row in itertools.islice(reader, 2400):
            score = float(row["score"])
            writer.writerow([row["text"], "neg" if score < -1 else "pos" if score > 1 else "mid"])
    return path


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    y_true = list(rng.choice(classes, 300))
    y_pred = [t if rng.random() < 0.6 else rng.choice(classes) for t in y_true]
    m = classification_metrics(y_true, y_pred, classes)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-4)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-4)
    prec = precision_score(y_true, y_pred, average=None, labels=classes)
    rec = recall_score(y_true, y_pred, average=None, labels=classes)
    for i, c in enumerate(classes):
        assert m["per_class"][c]["precision"] == pytest.approx(prec[i], abs=1e-4)
        assert m["per_class"][c]["recall"] == pytest.approx(rec[i], abs=1e-4)
    expected = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    assert m["confusion_matrix"]["rows_true_cols_predicted"] == expected


def test_stratified_split_and_folds() -> None:
    labels = ["pos"] * 700 + ["neg"] * 280 + ["mid"] * 20
    split = stratified_split(labels, validation=0.1, test=0.2, seed=5)
    everything = split["train"] + split["validation"] + split["test"]
    assert sorted(everything) == list(range(1000))
    for part, frac in (("test", 0.2), ("validation", 0.1)):
        counts = {c: sum(labels[i] == c for i in split[part]) for c in ("pos", "neg", "mid")}
        assert counts == {"pos": round(700 * frac), "neg": round(280 * frac), "mid": round(20 * frac)}
    assert stratified_split(labels, seed=5) == stratified_split(labels, seed=5)
    assert stratified_split(labels, seed=5) != stratified_split(labels, seed=6)
    folds = stratified_folds(labels, 5, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(1000))
    assert all(sum(labels[i] == "mid" for i in f) == 4 for f in folds)
    with pytest.raises(DataError, match="too few"):
        stratified_split(["a", "a", "b"], validation=0.4, test=0.4)


def test_read_labeled_errors(tmp_path: Path, three_class_file: Path) -> None:
    data = read_labeled([three_class_file], "opinion", "clase")
    assert data.classes == ["mid", "neg", "pos"] and len(data.texts) == 2400
    with pytest.raises(DataError, match=r"no column 'label'; columns are \['opinion', 'clase'\]"):
        read_labeled([three_class_file], "opinion")
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "hola", "label": "x"}\n{"text": "adiós", "label": "x"}\n')
    with pytest.raises(DataError, match="at least two classes"):
        read_labeled([one])


def _sklearn_reference(params: BowParams, texts: list[str], labels: list[str]):  # type: ignore[no-untyped-def]
    docs = _prepare(tokenizer_for_classification(), texts)
    vec = CountVectorizer(min_df=params.min_df, max_features=params.max_features, **_vectorizer_kwargs(params))
    x = vec.fit_transform(docs)
    tfidf = None
    if params.features == "tfidf":
        tfidf = TfidfTransformer(sublinear_tf=True)
        x = tfidf.fit_transform(x)
    clf = {"logreg": LogisticRegression(C=params.C, max_iter=2000, random_state=13),
           "linearsvc": LinearSVC(C=params.C, random_state=13), "nb": MultinomialNB(alpha=params.alpha)}[
        params.classifier]
    clf.fit(x, labels)

    def transform(new: list[str]):  # type: ignore[no-untyped-def]
        z = vec.transform(_prepare(tokenizer_for_classification(), new))
        return tfidf.transform(z) if tfidf is not None else z

    return clf, transform


@pytest.mark.parametrize("params", [
    BowParams(features="tfidf", classifier="logreg"),
    BowParams(features="count", classifier="nb", ngram_max=3),
    BowParams(features="binary", classifier="linearsvc"),
    BowParams(features="tfidf", analyzer="char", ngram_min=2, ngram_max=4, classifier="logreg"),
], ids=lambda p: p.label)
def test_saved_baseline_predicts_like_sklearn(params: BowParams, three_class_file: Path, tmp_path: Path) -> None:
    data = read_labeled([three_class_file], "opinion", "clase")
    train, test = data.subset(range(2000)), data.subset(range(2000, 2400))
    model, _ = BowClassifier.fit(train.texts, train.labels, params, tokenizer_for_classification())
    model.save(tmp_path / "bow")
    loaded = BowClassifier.load(tmp_path / "bow", model.params_dict(), tokenizer_for_classification(), model.classes)
    ref, transform = _sklearn_reference(params, train.texts, train.labels)
    ours = loaded.predict_proba(test.texts)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-9)
    assert loaded.predict(test.texts) == list(ref.predict(transform(test.texts)))
    if params.classifier != "linearsvc":
        np.testing.assert_allclose(ours, ref.predict_proba(transform(test.texts)), atol=1e-8)


# ---- recurrent -------------------------------------------------------------------------------

def _encoded(n: int = 1200) -> tuple[list[list[int]], list[int], Vocabulary, list[str]]:
    data = read_labeled([SENTIMENT_ES])
    tokens = list(tokenizer_for_classification().tokenize_many(data.texts[:n]))
    vocab = Vocabulary.build(tokens, 2, 5000)
    return [vocab.encode(t, 60) for t in tokens], [data.classes.index(x) for x in data.labels[:n]], vocab, data.classes


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cells_train_and_are_reproducible(cell: str) -> None:
    x, y, vocab, classes = _encoded()
    p = RNNParams(cell=cell, embedding_dim=16, hidden_size=16, epochs=2, batch_size=64, bidirectional=cell != "rnn",
                  layers=2 if cell == "gru" else 1, pooling="last" if cell == "lstm" else "max")
    a = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], vocab_size=len(vocab), classes=classes, params=p,
                  device="cpu", progress=False)
    b = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], vocab_size=len(vocab), classes=classes, params=p,
                  device="cpu", progress=False)
    assert len(a.history) == 2 and a.history[0]["train_loss"] > 0
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path: Path) -> None:
    x, y, vocab, classes = _encoded()
    args = {"vocab_size": len(vocab), "classes": classes, "device": "cpu", "progress": False}
    p = RNNParams(embedding_dim=16, hidden_size=16, epochs=3, patience=10)
    whole = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], params=p, **args)
    # "Interrupted" after epoch 1: same run, stopped there, leaves its checkpoint.
    first = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], params=RNNParams(**{**p.__dict__, "epochs": 1}),
                      checkpoint_dir=tmp_path, **args)
    assert first.resumed_from_epoch == 0 and (tmp_path / "checkpoint.pt").is_file()
    resumed = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], params=p, checkpoint_dir=tmp_path, **args)
    assert resumed.resumed_from_epoch == 1
    assert [h["val_macro_f1"] for h in resumed.history] == [h["val_macro_f1"] for h in whole.history]
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_early_stopping_keeps_the_best_epoch() -> None:
    x, y, vocab, classes = _encoded()
    p = RNNParams(embedding_dim=16, hidden_size=16, epochs=12, patience=1, learning_rate=0.05)
    r = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], vocab_size=len(vocab), classes=classes, params=p,
                  device="cpu", progress=False)
    f1s = [h["val_macro_f1"] for h in r.history]
    assert r.best_epoch == 1 + int(np.argmax(f1s))
    assert len(r.history) < 12 or r.best_epoch == 12  # stopped early unless still improving


def test_frozen_pretrained_embeddings(ft_model: Path) -> None:
    from nlp_service.vectors import VectorsModel

    store = VectorsModel.load(ft_model).store
    vocab = Vocabulary(["<pad>", "<unk>", "the", "night", "zzqqxx"])
    weights, found = initial_embeddings(vocab, lambda w: store.vector(w)[0], store.dim, seed=1)
    assert found == 3  # 'zzqqxx' comes from fastText subwords
    np.testing.assert_allclose(weights[3].numpy(), store.vector("night")[0], rtol=1e-6)
    p = RNNParams(embedding_dim=store.dim, hidden_size=8, epochs=1, freeze_embeddings=True)
    ids = [[2, 3], [4, 3, 2], [3]] * 20
    r = train_rnn(ids, [0, 1, 0] * 20, ids[:6], [0, 1, 0] * 2, vocab_size=len(vocab), classes=["a", "b"],
                  params=p, embeddings=weights, device="cpu", progress=False)
    assert torch.equal(r.model.embedding.weight.detach().cpu(), weights)


def test_saved_rnn_artifact(rnn_model: Path) -> None:
    manifest = read_manifest(rnn_model)
    assert manifest.extra["backend"] == "rnn" and manifest.extra["task"] == "sentiment"
    assert {"model.pt", "vocab.txt", "split.json", "metrics.json", "training_curve.png"} <= set(manifest.files)
    assert (rnn_model / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(manifest.metrics["history"]) == 2 and "test" in manifest.metrics
    state = torch.load(rnn_model / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = ClassifierModel.load(rnn_model, device="cpu")
    preds = model.predict(["Una película preciosa.", "Horrible."])
    assert [set(p.probabilities) for p in preds] == [{"neg", "pos"}] * 2
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)


class _NotATensor:
    pass


def test_loading_never_unpickles_objects(rnn_model: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(rnn_model, bad)
    torch.save({"payload": _NotATensor()}, bad / "model.pt")
    write_manifest(bad, read_manifest(bad))  # sizes and hashes agree: only the unpickler can object
    with pytest.raises(ArtifactError, match="cannot load classifier"):
        ClassifierModel.load(bad, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_with_mixed_precision_matches_cpu_inference(tmp_path: Path) -> None:
    from nlp_service.classify import predict_proba

    x, y, vocab, classes = _encoded(1200)
    p = RNNParams(embedding_dim=32, hidden_size=32, epochs=2)
    r = train_rnn(x[:1000], y[:1000], x[1000:], y[1000:], vocab_size=len(vocab), classes=classes, params=p,
                  device="cuda", progress=False)
    assert r.device.startswith("cuda") and r.history[-1]["val_accuracy"] > 0.5
    gpu = predict_proba(r.model, x[1000:])
    cpu_model = r.model.to("cpu")
    cpu = predict_proba(cpu_model, x[1000:], device=torch.device("cpu"))
    np.testing.assert_allclose(gpu, cpu, atol=2e-2)  # fp16 autocast on the GPU
    assert (gpu.argmax(1) == cpu.argmax(1)).mean() > 0.97
