"""fastText's supervised classifier as a classifier backend (``train fasttext-classifier``): it learns the
shipped Spanish reviews, saves and loads exactly, gives distributions in the model's class order, says what to
change when fastText diverges, trains from the command line, and is served and explained over HTTP.

Real fastText throughout (the ``fasttext`` extra; ``dev`` installs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fasttext", reason="fastText is an optional extra: pip install 'nlp-service[fasttext]'")

from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from nlp_service.api import create_app
from nlp_service.classify import (
    BowParams,
    BowRun,
    ClassifierModel,
    FastTextClassifier,
    FastTextClassifierParams,
    FastTextClassifierRun,
    occlusion_inputs,
    read_labeled,
    tokenizer_for_classification,
    train_bow,
    train_fasttext_classifier,
)
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.errors import InvalidInput

from .helpers import post, ready_client

# Small vectors and few buckets: the same model, a 1 MB file instead of 80 MB; two threads at most, on a shared
# machine. The quality test below keeps the defaults.
SMALL = FastTextClassifierParams(dim=16, bucket=20_000, threads=2)
TEXTS = ["Una película maravillosa, la recomiendo.", "Aburrida y mal actuada: una pérdida de tiempo.", "",
         "línea uno\nlínea dos"]


@pytest.fixture(scope="module")
def ft_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("fasttext-classifier")
    return Settings(models_dir=root / "models", cache_dir=root / "cache", device="cpu",
                    default_classifier_model="ft-es", default_sentiment_model="ft-es", preload_ann=False)


@pytest.fixture(scope="module")
def ft_model(sentiment_file: Path, ft_settings: Settings) -> tuple[Path, dict[str, Any]]:
    """fastText with its default options on the 1,600 shipped reviews; one thread, so that it repeats exactly
    (fastText's updates are lock-free: with several threads each run differs a little)."""
    run = FastTextClassifierRun(data=[sentiment_file], name="ft-es", task="sentiment", language="es")
    return train_fasttext_classifier(run, FastTextClassifierParams(threads=1), settings=ft_settings, progress=False)


def test_it_learns_the_reviews_and_saves_like_the_others(ft_model: tuple[Path, dict[str, Any]],
                                                         sentiment_file: Path, ft_settings: Settings) -> None:
    path, metrics = ft_model
    assert metrics["test"]["n"] == 160 and metrics["threads"] == 1 and metrics["train_seconds"] > 0
    # Balanced pos/neg: chance is 0.5. fastText gets about 0.7 on these 1,600 rows (0.75 on all 9,568).
    assert metrics["test"]["accuracy"] >= 0.65 and metrics["test"]["macro_f1"] >= 0.6, metrics["test"]
    assert {p.name for p in path.iterdir()} >= {"model.bin", "manifest.json", "split.json", "metrics.json",
                                                "params.toml"}
    model = ClassifierModel.load(path)
    assert model.backend == "fasttext" and model.architecture == "fasttext" and model.classes == ["neg", "pos"]
    info = model.describe()
    assert info["device"] == "cpu" and info["params"]["fasttext"]["word_ngrams"] == 2
    assert info["test_metrics"]["accuracy"] == metrics["test"]["accuracy"]
    # The same test rows as a baseline trained on the same file and seed.
    _, bow = train_bow(BowRun(data=[sentiment_file], name="bow-es", seed=13), BowParams(), settings=ft_settings,
                       progress=False)
    assert bow["test"]["n"] == metrics["test"]["n"]
    split = json.loads((path / "split.json").read_text(encoding="utf-8"))
    bow_split = json.loads((ft_settings.models_dir / "bow-es" / "split.json").read_text(encoding="utf-8"))
    assert split["indices"] == bow_split["indices"]


def test_probabilities_are_distributions_in_class_order(ft_model: tuple[Path, dict[str, Any]]) -> None:
    model = ClassifierModel.load(ft_model[0])
    probs = model.predict_proba(TEXTS)  # an empty text and one with a newline included: fastText refuses neither
    assert probs.shape == (len(TEXTS), 2)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-9) and (probs >= 0).all()
    # Class order: the model's, not fastText's (most probable first).
    raw_labels, raw_probs = model.impl.model.predict("una película maravillosa , la recomiendo .", k=-1)  # type: ignore[attr-defined]
    by_label = dict(zip(raw_labels, raw_probs, strict=True))
    expected = np.array([by_label["__label__neg"], by_label["__label__pos"]])
    assert probs[0] == pytest.approx(expected / expected.sum(), abs=1e-6)
    # Token lists (occlusion's inputs) and raw texts give the same answers.
    tokens = tuple(model.tokenizer.tokenize(TEXTS[0]))
    assert model.predict([tokens])[0].probabilities == model.predict([TEXTS[0]])[0].probabilities


def test_save_and_load_give_the_same_probabilities(ft_model: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    model = ClassifierModel.load(ft_model[0])
    again = ClassifierModel.load(model.save(tmp_path, overwrite=True))
    assert np.array_equal(model.predict_proba(TEXTS), again.predict_proba(TEXTS))
    assert (tmp_path / "ft-es" / "model.bin").read_bytes() == (ft_model[0] / "model.bin").read_bytes()


def test_one_thread_repeats_exactly(sentiment_file: Path) -> None:
    """Each training runs in a fresh process (fastText 0.9.2 is unreliable for a second training in one process):
    with one thread the same rows and options give the same model, however many trainings came before."""
    tokenizer = tokenizer_for_classification("es")
    data = read_labeled([sentiment_file]).subset(range(1000))
    tokens = list(tokenizer.tokenize_many(data.texts))
    params = FastTextClassifierParams(dim=16, bucket=20_000, threads=1, word_ngrams=1, epoch=10)
    fits = [FastTextClassifier.fit(tokens, data.labels, ["neg", "pos"], params, tokenizer) for _ in range(3)]
    probs = [model.predict_proba(TEXTS) for model, _ in fits]
    assert all(info["attempts"] == 1 for _, info in fits)
    assert np.array_equal(probs[0], probs[1]) and np.array_equal(probs[0], probs[2])


def test_divergence_is_a_clear_invalid_input() -> None:
    """Two one-word rows and a huge learning rate: fastText's "Encountered NaN." becomes what to change."""
    tokenizer = tokenizer_for_classification("es")
    expected = r"diverged \(its loss became NaN, 2 attempts\) .* lower --lr \(e\.g\. 10\) or train on more"
    with pytest.raises(InvalidInput, match=expected) as info:
        FastTextClassifier.fit([["bueno"], ["malo"]], ["pos", "neg"], ["neg", "pos"],
                               FastTextClassifierParams(lr=50.0, threads=1), tokenizer)
    assert info.value.details == {"field": "lr"}


def test_labels_with_spaces_and_bad_options(sentiment_file: Path, ft_settings: Settings, tmp_path: Path) -> None:
    tokenizer = tokenizer_for_classification("es")
    rows = [["muy", "buena"], ["muy", "mala"]] * 40
    model, _ = FastTextClassifier.fit(rows, ["muy bueno", "muy malo"] * 40, ["muy bueno", "muy malo"],
                                      FastTextClassifierParams(dim=8, bucket=1000, threads=1, lr=0.1), tokenizer)
    assert model.model.labels and all(" " not in label for label in model.model.labels)
    assert model.predict_proba(["muy buena"])[0].argmax() == 0
    with pytest.raises(InvalidInput, match="clash"):
        FastTextClassifier(None, ["a b", "a_b"], tokenizer)
    with pytest.raises(InvalidInput, match="lr must be positive"):
        train_fasttext_classifier(FastTextClassifierRun(data=[sentiment_file], name="x"),
                                  FastTextClassifierParams(lr=0), settings=ft_settings)


def test_cross_validation_uses_the_baselines_folds(sentiment_file: Path, ft_settings: Settings) -> None:
    run = FastTextClassifierRun(data=[sentiment_file], name="ft-cv", cv=3, overwrite=True)
    _, metrics = train_fasttext_classifier(run, SMALL, settings=ft_settings, progress=False)
    _, bow = train_bow(BowRun(data=[sentiment_file], name="bow-cv", cv=3, overwrite=True), BowParams(),
                       settings=ft_settings, progress=False)
    cv = metrics["cross_validation"]
    assert cv["k"] == 3 and [(f["n"], f["rows_sha"]) for f in cv["folds"]] == [
        (f["n"], f["rows_sha"]) for f in bow["cross_validation"]["folds"]]
    assert sum(f["n"] for f in cv["folds"]) == 1440  # train+validation; the 160 test rows left out
    assert cv["accuracy_mean"] >= 0.6 and cv["accuracy_std"] == pytest.approx(
        float(np.std([f["accuracy"] for f in cv["folds"]])), abs=1e-4)


# ---- from the command line ---------------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_train_fasttext_classifier_from_the_command_line(sentiment_file: Path, tmp_path: Path) -> None:
    help_text = invoke("train", "fasttext-classifier", "--help")
    assert help_text.exit_code == 0
    for flag in ("--epoch", "--lr", "--word-ngrams", "--dim", "--min-count", "--loss", "--bucket", "--threads",
                 "--seed", "--cv", "--split-seed", "--language", "800 MB"):
        assert flag in help_text.stdout, flag
    models = tmp_path / "models"
    r = invoke("train", "fasttext-classifier", str(sentiment_file), "--name", "ft", "--dim", "16", "--bucket",
               "20000", "--epoch", "10", "--threads", "2", "--word-ngrams", "1", "--models-dir", str(models))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["model"] == str(models / "ft") and report["test"]["n"] == 160 and report["threads"] == 2
    params = ClassifierModel.load(models / "ft").manifest.params["fasttext"]
    assert (params["dim"], params["bucket"], params["epoch"], params["word_ngrams"]) == (16, 20000, 10, 1)
    saved = (models / "ft" / "params.toml").read_text(encoding="utf-8")
    assert 'command = "fasttext-classifier"' in saved and "word_ngrams = 1" in saved
    again = invoke("train", "fasttext-classifier", "--config", str(models / "ft" / "params.toml"), "--name", "ft2",
                   "--models-dir", str(models))
    assert again.exit_code == 0, again.output
    assert ClassifierModel.load(models / "ft2").manifest.params["fasttext"] == params
    # A bad option is a usage error before any work; a diverging run, one line and exit 1.
    r = invoke("train", "fasttext-classifier", str(sentiment_file), "--name", "x", "--lr", "0",
               "--models-dir", str(models))
    assert r.exit_code == 2 and "lr must be positive" in r.stderr, r.output
    tiny = tmp_path / "tiny.tsv"
    tiny.write_text("text\tlabel\nbueno\tpos\nmalo\tneg\n", encoding="utf-8")
    r = invoke("train", "fasttext-classifier", str(tiny), "--name", "x", "--lr", "50", "--threads", "1",
               "--validation", "0", "--test", "0", "--models-dir", str(models))
    assert r.exit_code == 1 and "error: fastText training diverged" in r.stderr and "lower --lr" in r.stderr, r.output


# ---- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ft_client(ft_model: tuple[Path, dict[str, Any]], ft_settings: Settings) -> Iterator[TestClient]:
    with ready_client(create_app(ft_settings)) as c:
        yield c


def test_classify_with_fasttext_over_http(ft_client: TestClient, ft_model: tuple[Path, dict[str, Any]]) -> None:
    body = post(ft_client, "/v1/classify", {"model": "ft-es", "texts": TEXTS[:2]})
    results = body["results"]
    local = ClassifierModel.load(ft_model[0]).predict(TEXTS[:2])
    for r, p in zip(results, local, strict=True):
        assert r["label"] == p.label and r["probabilities"] == pytest.approx(p.probabilities, abs=1e-6)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    models = {m["name"]: m for m in ft_client.get("/v1/models").json()["models"]}
    assert models["ft-es"]["backend"] == "fasttext" and models["ft-es"]["device"] == "cpu"


def test_explain_fasttext_over_http(ft_client: TestClient, ft_model: tuple[Path, dict[str, Any]]) -> None:
    """Occlusion: each token's score is the label's probability minus its probability without that token."""
    text = "Una película maravillosa, la recomiendo."
    result = post(ft_client, "/v1/classify", {"model": "ft-es", "texts": [text], "explain": True})["results"][0]
    scores = result["explanation"]
    tokens = ["una", "película", "maravillosa", ",", "la", "recomiendo", "."]
    assert [s["token"] for s in scores] == tokens
    assert all(text[s["start"] : s["end"]].lower() == s["token"] for s in scores)
    model = ClassifierModel.load(ft_model[0])
    full, *without = model.predict(occlusion_inputs(tokens))
    assert result["label"] == full.label
    expected = [full.probabilities[full.label] - w.probabilities[full.label] for w in without]
    assert [s["score"] for s in scores] == pytest.approx(expected, abs=1e-6)
    assert any(abs(x) > 1e-4 for x in expected)  # the words matter
    plain = post(ft_client, "/v1/classify", {"model": "ft-es", "texts": [text]})["results"][0]
    assert result["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-6)


def test_without_the_extra_the_error_names_it(sentiment_file: Path, tmp_path: Path) -> None:
    """fastText blocked in a fresh interpreter: the command is still listed and checked, and training (or importing
    the backend) stops with the pip line, before reading any data."""
    code = f"""
import sys
sys.modules["fasttext"] = None  # what a machine without the extra has: `import fasttext` fails
from nlp_service.classify import FastTextClassifierRun, train_fasttext_classifier
from nlp_service.config import Settings
from nlp_service.errors import InvalidInput
from nlp_service.registry import get_trainer
assert get_trainer("fasttext-classifier").command == "fasttext-classifier"
try:
    train_fasttext_classifier(FastTextClassifierRun(data=[{str(sentiment_file)!r}], name="x"),
                              settings=Settings(models_dir={str(tmp_path)!r}))
except ImportError as exc:
    assert isinstance(exc, InvalidInput), type(exc)
    print(exc)
try:
    import nlp_service.classify._fasttext
except ImportError as exc:
    print(exc)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all("pip install 'nlp-service[fasttext]'" in line for line in lines), proc.stdout
    assert not any(tmp_path.iterdir())
