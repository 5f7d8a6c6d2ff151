"""Why a classifier chose its label (``explain``): occlusion scores per token, over HTTP and by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nlp_service.classify import ClassifierModel
from nlp_service.config import Settings

from .helpers import assert_error, post

TEXT = "No me gustó nada la película, muy aburrida."


@pytest.fixture(scope="module")
def bow(bow_model: Path) -> ClassifierModel:
    return ClassifierModel.load(bow_model, device="cpu")


def test_scores_are_occlusion_by_hand(client: TestClient, bow: ClassifierModel) -> None:
    result = post(client, "/v1/classify", {"model": "bow-small", "texts": [TEXT], "explain": True})["results"][0]
    tokens = bow.tokenizer.tokenize(TEXT)
    assert [e["token"] for e in result["explanation"]] == tokens
    label = result["label"]
    k = bow.classes.index(label)
    whole = bow.predict_proba([TEXT])[0, k]
    assert result["probabilities"][label] == pytest.approx(whole, abs=1e-9)
    for i, entry in enumerate(result["explanation"]):
        # Remove token i, re-predict the rest as a text of its own: a path independent of the service's.
        without = bow.predict_proba([" ".join(tokens[:i] + tokens[i + 1 :])])[0, k]
        assert entry["score"] == pytest.approx(whole - without, abs=1e-9), entry


@pytest.mark.parametrize(("path", "model"), [("/v1/sentiment", "rnn-small"), ("/v1/classify", "bow-small")])
def test_top_token_moves_the_probability_most(client: TestClient, models_dir: Path, path: str, model: str) -> None:
    result = post(client, path, {"texts": [TEXT], "explain": True})["results"][0]
    m = ClassifierModel.load(models_dir / model, device="cpu")
    k = m.classes.index(result["label"])
    spans = result["explanation"]
    # Removing each token from the original text (its characters cut out) and re-predicting: the token with
    # the highest score is the one whose removal lowers the label's probability the most.
    variants = [TEXT[: e["start"]] + " " + TEXT[e["end"] :] for e in spans]
    probs = m.predict_proba([TEXT, *variants])[:, k]
    drops = probs[0] - probs[1:]
    top = int(np.argmax([e["score"] for e in spans]))
    assert top == int(np.argmax(drops))
    assert drops[top] == pytest.approx(spans[top]["score"], abs=1e-5)
    assert max(abs(e["score"]) for e in spans) > 0  # the model does depend on its tokens


def test_offsets_slice_the_text(client: TestClient) -> None:
    texts = ["¡Qué MARAVILLA de película!", "  Aburrida,   larga y sin gracia. "]
    for path in ("/v1/sentiment", "/v1/classify"):
        for text, result in zip(texts, post(client, path, {"texts": texts, "explain": True})["results"], strict=True):
            assert result["explanation"]
            for e in result["explanation"]:
                assert text[e["start"] : e["end"]].lower() == e["token"], (text, e)
            starts = [e["start"] for e in result["explanation"]]
            assert starts == sorted(starts)


def test_explain_false_has_no_field(client: TestClient) -> None:
    for body in ({"texts": [TEXT]}, {"texts": [TEXT], "explain": False}):
        for path in ("/v1/sentiment", "/v1/classify"):
            result = post(client, path, body)["results"][0]
            assert set(result) == {"label", "probabilities"}
    explained = post(client, "/v1/classify", {"texts": [TEXT], "explain": True})["results"][0]
    plain = post(client, "/v1/classify", {"texts": [TEXT]})["results"][0]
    assert explained["label"] == plain["label"]
    assert explained["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-9)


@pytest.mark.parametrize("path", ["/v1/sentiment", "/v1/classify"])
def test_token_limit(client: TestClient, settings: Settings, path: str) -> None:
    assert settings.max_words == 50
    texts = ["muy bien " * 10] * 3  # 60 tokens: over NLP_MAX_WORDS (50 in the test settings)
    err = assert_error(client.post(path, json={"texts": texts, "explain": True}), 422, "limit_exceeded",
                       "60", "50")
    assert err["details"] == {"limit": 50, "got": 60, "setting": "NLP_MAX_WORDS"}
    assert client.post(path, json={"texts": texts}).status_code == 200  # without explain: no such limit
    explained = post(client, path, {"texts": ["muy bien " * 25], "explain": True})  # 50: at the limit
    assert len(explained["results"][0]["explanation"]) == 50
    assert_error(client.post(path, json={"texts": [TEXT], "explain": "si"}), 422, "validation_error", "explain")
