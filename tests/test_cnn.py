"""The convolutional classifier (``--cell cnn``, Kim 2014): it learns a keyword task, its class activation
map points at the keyword, it resumes like the recurrent cells, and it is served and explained over HTTP."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from nlp_service import AsyncClient, Client
from nlp_service.api import create_app
from nlp_service.classify import (
    BowParams,
    BowRun,
    ClassifierModel,
    RecurrentRun,
    RNNParams,
    Vocabulary,
    initial_embeddings,
    read_labeled,
    tokenizer_for_classification,
    train_bow,
    train_recurrent,
    train_rnn,
)
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.data import SENTIMENT_ES
from nlp_service.errors import InvalidInput
from nlp_service.vectors import VectorsModel

from .helpers import assert_error, post, ready_client
from .test_operation import serving

KEYWORD = "excelente"
# Small but real: 3 widths x 16 maps over 16-dim embeddings learns the task in a few epochs on a CPU.
CNN = RNNParams(cell="cnn", embedding_dim=16, feature_maps=16, epochs=15, batch_size=32, min_freq=1,
                learning_rate=1e-2, dropout=0.2, patience=15)


def _filler_words() -> list[str]:
    """Words of the shipped Spanish reviews (alphabetic, not the keyword): the texts' random filler."""
    with gzip.open(SENTIMENT_ES, "rt", encoding="utf-8") as src:
        rows = list(csv.DictReader(src, delimiter="\t"))[:300]
    words = {w for row in rows for w in row["text"].lower().split() if w.isalpha() and w != KEYWORD}
    return sorted(words)


@pytest.fixture(scope="module")
def keyword_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 texts of 2-14 random corpus words; ``pos`` iff the keyword is among them (anywhere)."""
    rng = random.Random(7)
    words = _filler_words()
    path = tmp_path_factory.mktemp("keyword") / "keyword.tsv"
    lines = ["text\tlabel"]
    for i in range(1000):
        text = rng.choices(words, k=rng.randint(2, 14))
        if i % 2:
            text.insert(rng.randint(0, len(text)), KEYWORD)
        lines.append(f"{' '.join(text)}\t{'pos' if i % 2 else 'neg'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cnn_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("cnn")
    return Settings(models_dir=root / "models", cache_dir=root / "cache", device="cpu",
                    default_classifier_model="cnn-kw", default_sentiment_model="cnn-kw", preload_ann=False)


@pytest.fixture(scope="module")
def cnn_model(keyword_file: Path, cnn_settings: Settings) -> tuple[Path, dict]:  # type: ignore[type-arg]
    return train_recurrent(RecurrentRun(data=[keyword_file], name="cnn-kw", task="keyword"), CNN,
                           settings=cnn_settings, progress=False)


def test_cnn_learns_the_keyword_task(cnn_model: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    path, metrics = cnn_model
    assert metrics["test"]["accuracy"] == 1.0, metrics["history"]
    model = ClassifierModel.load(path, device="cpu")
    assert model.manifest.params["rnn"]["cell"] == "cnn" and model.has_class_activation
    # Shorter than the widest kernel (5): padded, and still right.
    assert [p.label for p in model.predict([KEYWORD, "casa", "una película excelente"])] == ["pos", "neg", "pos"]


def test_predictions_do_not_depend_on_the_batch(cnn_model: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    model = ClassifierModel.load(cnn_model[0], device="cpu")
    texts = ["excelente", "la casa grande y vieja de mi padre era excelente sin duda alguna", "no"]
    together = model.predict_proba(texts)
    for i, text in enumerate(texts):
        assert model.predict_proba([text])[0] == pytest.approx(together[i], abs=1e-6)


def test_class_activation_peaks_on_the_keyword(keyword_file: Path, cnn_model: tuple[Path, dict]  # type: ignore[type-arg]
                                               ) -> None:
    model = ClassifierModel.load(cnn_model[0], device="cpu")
    data = read_labeled([keyword_file])
    positives = [t for t, label in zip(data.texts, data.labels, strict=True) if label == "pos"][:100]
    explained = model.class_activation(positives)
    peaks = 0
    for text, (prediction, scores) in zip(positives, explained, strict=True):
        assert prediction.label == "pos" and prediction.activation is None
        assert [s.token for s in scores] == [t for t, _, _ in model.tokenizer.spans(text)]
        ranked = sorted(scores, key=lambda s: -s.score)
        peaks += ranked[0].token == KEYWORD and text[ranked[0].start : ranked[0].end] == KEYWORD
        # A window's share is spread over its tokens, so a neighbour in the same winning windows can tie
        # with the keyword (at a text's edge the keyword is in fewer windows): it is never below second.
        assert KEYWORD in {s.token for s in ranked[:2]}, ranked
    assert peaks >= 0.95 * len(positives)  # measured: 98 of 100


def test_class_activation_needs_a_cnn(keyword_file: Path, cnn_settings: Settings) -> None:
    path, _ = train_bow(BowRun(data=[keyword_file], name="bow-kw", overwrite=True), BowParams(),
                        settings=cnn_settings)
    bow = ClassifierModel.load(path)
    assert not bow.has_class_activation
    with pytest.raises(Exception, match="class activation maps need a convolutional classifier"):
        bow.class_activation(["una película excelente"])


def _encoded() -> tuple[list[list[int]], list[int], int, list[str]]:
    data = read_labeled([SENTIMENT_ES])
    tokens = list(tokenizer_for_classification().tokenize_many(data.texts[:600]))
    vocab = Vocabulary.build(tokens, 2, 3000)
    return [vocab.encode(t, 40) for t in tokens], [data.classes.index(x) for x in data.labels[:600]], len(vocab), \
        data.classes


def test_cnn_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path: Path) -> None:
    x, y, vocab_size, classes = _encoded()
    args = {"vocab_size": vocab_size, "classes": classes, "device": "cpu", "progress": False}
    p = RNNParams(cell="cnn", embedding_dim=16, feature_maps=8, kernel_sizes=[2, 3], padding=1, stride=1,
                  epochs=3, patience=10)
    whole = train_rnn(x[:500], y[:500], x[500:], y[500:], params=p, **args)
    first = train_rnn(x[:500], y[:500], x[500:], y[500:], params=RNNParams(**{**p.__dict__, "epochs": 1}),
                      checkpoint_dir=tmp_path, **args)
    assert first.resumed_from_epoch == 0 and (tmp_path / "checkpoint.pt").is_file()
    resumed = train_rnn(x[:500], y[:500], x[500:], y[500:], params=p, checkpoint_dir=tmp_path, **args)
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 3
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in whole.history]
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_bad_kernel_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="kernel_sizes"):
        RNNParams(cell="cnn", kernel_sizes=[]).validate()
    with pytest.raises(ValueError, match="kernel_sizes"):
        RNNParams(cell="cnn", kernel_sizes=[3, 0]).validate()


def test_multichannel_keeps_one_channel_fixed(keyword_file: Path, cnn_settings: Settings, ft_model: Path) -> None:
    params = RNNParams(cell="cnn", multichannel=True, feature_maps=8, kernel_sizes=[2, 3], epochs=2, min_freq=1)
    run = RecurrentRun(data=[keyword_file], name="cnn-multi", vectors=ft_model, overwrite=True)
    path, metrics = train_recurrent(run, params, settings=cnn_settings, progress=False)
    assert metrics["embeddings"]["coverage"] == 1.0  # fastText subwords cover every word
    state = torch.load(path / "model.pt", weights_only=True)
    vocab = Vocabulary((path / "vocab.txt").read_text(encoding="utf-8").split("\n"))
    store = VectorsModel.load(ft_model).store
    initial, _ = initial_embeddings(vocab, lambda w: store.vector(w)[0], store.dim, params.seed)
    assert torch.equal(state["static.weight"], initial)  # the fixed channel: the vectors as they were
    assert not torch.equal(state["embedding.weight"], initial)  # the other one was fine-tuned
    model = ClassifierModel.load(path, device="cpu")
    assert model.predict(["excelente"])[0].label in {"pos", "neg"} and model.class_activation(["excelente"])


def test_multichannel_needs_vectors_and_a_cnn(keyword_file: Path, cnn_settings: Settings) -> None:
    run = RecurrentRun(data=[keyword_file], name="cnn-multi-bad")
    with pytest.raises(InvalidInput, match="--multichannel needs --vectors"):
        train_recurrent(run, RNNParams(cell="cnn", multichannel=True), settings=cnn_settings, progress=False)
    with pytest.raises(ValueError, match="multichannel is a cnn option"):
        RNNParams(cell="lstm", multichannel=True).validate()


# ---- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_client(cnn_model: tuple[Path, dict], cnn_settings: Settings,  # type: ignore[type-arg]
               keyword_file: Path) -> Iterator[TestClient]:
    train_bow(BowRun(data=[keyword_file], name="bow-kw", overwrite=True), BowParams(), settings=cnn_settings)
    with ready_client(create_app(cnn_settings)) as c:
        yield c


def test_classify_with_a_cnn_over_http(cnn_client: TestClient) -> None:
    body = post(cnn_client, "/v1/classify", {"model": "cnn-kw", "texts": ["una película excelente", "casa"]})
    assert [r["label"] for r in body["results"]] == ["pos", "neg"]
    assert all("explanation" not in r for r in body["results"])
    models = {m["name"]: m for m in cnn_client.get("/v1/models").json()["models"]}
    assert models["cnn-kw"]["architecture"] == "cnn" and models["bow-kw"]["architecture"] == "bow"


@pytest.mark.parametrize("method", ["occlusion", "cam"])
def test_explain_a_cnn_over_http(cnn_client: TestClient, method: str) -> None:
    text = "la casa excelente de mi padre"
    body = post(cnn_client, "/v1/classify", {"model": "cnn-kw", "texts": [text], "explain": True,
                                             "explain_method": method})
    result = body["results"][0]
    assert result["label"] == "pos"
    scores = result["explanation"]
    assert [s["token"] for s in scores] == text.split()
    assert set(scores[0]) == {"token", "start", "end", "score"}  # one shape for both methods
    top = max(scores, key=lambda s: s["score"])
    assert text[top["start"] : top["end"]] == KEYWORD
    # The same probabilities whichever way the label is explained.
    plain = post(cnn_client, "/v1/classify", {"model": "cnn-kw", "texts": [text]})["results"][0]
    assert result["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-5)


def test_cam_is_refused_for_other_models_and_without_explain(cnn_client: TestClient) -> None:
    r = cnn_client.post("/v1/classify", json={"model": "bow-kw", "texts": ["hola"], "explain": True,
                                              "explain_method": "cam"})
    assert_error(r, 422, "validation_error", "needs a convolutional classifier", "bow-kw")
    r = cnn_client.post("/v1/classify", json={"model": "cnn-kw", "texts": ["hola"], "explain_method": "cam"})
    assert_error(r, 422, "validation_error", "explain_method")
    r = cnn_client.post("/v1/classify", json={"model": "cnn-kw", "texts": ["hola"], "explain": True,
                                              "explain_method": "gradcam"})
    assert_error(r, 422, "validation_error", "explain_method")


def test_the_clients_ask_for_cam(cnn_model: tuple[Path, dict], cnn_settings: Settings) -> None:  # type: ignore[type-arg]
    text = "la casa excelente de mi padre"
    with serving(create_app(cnn_settings), cnn_settings) as base, Client(base) as client:
        client.wait_until_ready(timeout=60)
        result = client.classify([text], model="cnn-kw", explain=True, explain_method="cam").results[0]
        assert result.explanation is not None
        assert max(result.explanation, key=lambda s: s.score).token == KEYWORD

        async def ask() -> Any:
            async with AsyncClient(base) as aclient:
                return await aclient.sentiment([text], explain=True, explain_method="cam")

        again = asyncio.run(ask()).results[0]
    assert [s.score for s in again.explanation or []] == [s.score for s in result.explanation]


# ---- from the command line ---------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.mark.parametrize("command", ["neural", "rnn"])
def test_train_neural_and_its_rnn_alias(command: str, keyword_file: Path, tmp_path: Path) -> None:
    help_text = invoke("train", command, "--help")
    assert help_text.exit_code == 0
    for flag in ("--cell", "--kernel-sizes", "--feature-maps", "--stride", "--padding", "--multichannel"):
        assert flag in help_text.stdout, flag
    models = tmp_path / "models"
    r = invoke("train", command, str(keyword_file), "--name", "kw", "--cell", "cnn", "--kernel-sizes", "2",
               "--kernel-sizes", "3", "--feature-maps", "8", "--embedding-dim", "8", "--epochs", "2", "--min-freq",
               "1", "--device", "cpu", "--models-dir", str(models), "--cv", "2")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)  # progress (epochs, folds) goes to stderr: stdout stays one JSON document
    assert report["best_epoch"] in (1, 2) and report["cross_validation"]["k"] == 2
    params = ClassifierModel.load(models / "kw", device="cpu").manifest.params["rnn"]
    assert params["cell"] == "cnn" and params["kernel_sizes"] == [2, 3] and params["feature_maps"] == 8
    saved = (models / "kw" / "params.toml").read_text(encoding="utf-8")
    assert 'command = "neural"' in saved
    # The saved run repeats under either name.
    again = invoke("train", command, "--config", str(models / "kw" / "params.toml"), "--name", "kw2", "--epochs",
                   "1", "--models-dir", str(models))
    assert again.exit_code == 0, again.output


def test_bad_cnn_options_are_a_usage_error(keyword_file: Path, tmp_path: Path) -> None:
    """Checked before any work, like every option's bounds: exit 2, naming the option."""
    r = invoke("train", "neural", str(keyword_file), "--name", "x", "--cell", "cnn", "--kernel-sizes", "0",
               "--models-dir", str(tmp_path))
    assert r.exit_code == 2 and "kernel_sizes must be one or more widths >= 1, got [0]" in r.stderr, r.output


def test_cross_validation_of_a_network_uses_the_baselines_folds(keyword_file: Path, cnn_settings: Settings) -> None:
    """``--cv`` for a network: k more networks on train+validation, scored on the folds ``train bow --cv`` makes
    of the same rows and seed; the test split is untouched (its model is the one saved)."""
    params = RNNParams(**{**CNN.__dict__, "epochs": 6})
    neural_run = RecurrentRun(data=[keyword_file], name="cnn-cv", cv=3, overwrite=True)
    _, metrics = train_recurrent(neural_run, params, settings=cnn_settings, progress=False)
    cv = metrics["cross_validation"]
    _, bow = train_bow(BowRun(data=[keyword_file], name="bow-cv", cv=3, overwrite=True), BowParams(),
                       settings=cnn_settings, progress=False)
    assert cv["k"] == 3 and len(cv["folds"]) == 3
    same_rows = [(f["n"], f["rows_sha"]) for f in bow["cross_validation"]["folds"]]
    assert [(f["n"], f["rows_sha"]) for f in cv["folds"]] == same_rows and len(set(same_rows)) == 3
    assert sum(f["n"] for f in cv["folds"]) == 900  # train+validation of 1,000 rows; the test's 100 left out
    assert cv["accuracy_mean"] >= 0.9 and all(1 <= f["best_epoch"] <= 6 for f in cv["folds"])
    assert cv["accuracy_std"] == pytest.approx(float(torch.tensor([f["accuracy"] for f in cv["folds"]]).std(
        unbiased=False)), abs=1e-4)


def test_cross_validation_needs_a_validation_share(keyword_file: Path, cnn_settings: Settings) -> None:
    run = RecurrentRun(data=[keyword_file], name="cnn-cv-bad", cv=2, validation=0.0)
    with pytest.raises(InvalidInput, match="--cv needs --validation"):
        train_recurrent(run, CNN, settings=cnn_settings, progress=False)


def test_vectors_by_model_name(keyword_file: Path, tmp_path: Path, ft_model: Path) -> None:
    """``--vectors ft-lee`` (or ``vectors = "ft-lee"`` in a config file anywhere) is the model in the models dir."""
    settings = Settings(models_dir=ft_model.parent, cache_dir=tmp_path / "cache", device="cpu")
    params = RNNParams(cell="cnn", feature_maps=4, kernel_sizes=[2], epochs=1, min_freq=1)
    run = RecurrentRun(data=[keyword_file], name="cnn-by-name", vectors=tmp_path / "elsewhere" / ft_model.name,
                       overwrite=True)
    path, metrics = train_recurrent(run, params, settings=settings, progress=False)
    assert metrics["embeddings"]["source"] == str(ft_model) and metrics["embeddings"]["coverage"] == 1.0
    shutil.rmtree(path)
    with pytest.raises(InvalidInput, match="no model 'nope'"):
        train_recurrent(RecurrentRun(data=[keyword_file], name="x", vectors=Path("nope")), params,
                        settings=settings, progress=False)
