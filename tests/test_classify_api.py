"""Classification over HTTP: TestClient, and the real server with concurrent clients."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from nlp_service.classify import ClassifierModel

from .helpers import assert_error

TEXTS = ["Una película preciosa, emocionante y muy bien hecha.", "Aburrida, larga y sin gracia.",
         "Ni fu ni fa.", "¡Qué maravilla!"]



@pytest.mark.parametrize(("path", "model"), [("/v1/sentiment", "rnn-small"), ("/v1/classify", "bow-small")])
def test_default_models_and_probabilities(client: TestClient, path: str, model: str, models_dir: Path) -> None:
    r = client.post(path, json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model
    direct = ClassifierModel.load(models_dir / model, device="cpu").predict(TEXTS)
    for got, want in zip(body["results"], direct, strict=True):
        assert got["label"] == want.label
        assert set(got["probabilities"]) == {"neg", "pos"}
        assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for label, p in want.probabilities.items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_named_model_on_either_endpoint(client: TestClient) -> None:
    a = client.post("/v1/sentiment", json={"texts": TEXTS, "model": "bow-small"}).json()
    b = client.post("/v1/classify", json={"texts": TEXTS, "model": "bow-small"}).json()
    assert a == b and a["model"] == "bow-small"


@pytest.mark.parametrize("path", ["/v1/sentiment", "/v1/classify"])
def test_bad_input(client: TestClient, path: str) -> None:
    assert_error(client.post(path, json={"texts": []}), 422, "validation_error")
    assert_error(client.post(path, json={"texts": ["bien", "  "]}), 422, "empty_text")
    err = assert_error(client.post(path, json={"texts": ["a"] * 9}), 422, "limit_exceeded")
    assert err["details"]["setting"] == "NLP_MAX_TEXTS"
    err = assert_error(client.post(path, json={"texts": ["a" * 2001]}), 422, "limit_exceeded")
    assert err["details"]["setting"] == "NLP_MAX_TEXT_CHARS"
    assert_error(client.post(path, json={"texts": "una sola"}), 422, "validation_error")
    assert_error(client.post(path, json={"texts": [1, 2]}), 422, "validation_error")
    err = assert_error(client.post(path, json={"texts": ["x"], "model": "nope"}), 404, "model_not_found")
    assert "rnn-small" in err["details"]["available"]
    # a vectors model is not a classifier
    assert_error(client.post(path, json={"texts": ["x"], "model": "w2v-small"}), 404, "model_not_found")


def test_concurrent_requests_are_batched_and_answered_in_order(client: TestClient) -> None:
    """32 concurrent clients through the ASGI app: every answer is its own, in order."""
    app = client.app
    expected = {t: client.post("/v1/sentiment", json={"texts": [t]}).json()["results"][0] for t in TEXTS}
    before = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "rnn-small")["batching"]

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            reqs = [[TEXTS[i % 4], TEXTS[(i + 1) % 4]] for i in range(64)]
            sem = asyncio.Semaphore(32)

            async def one(texts: list[str]) -> dict[str, Any]:
                async with sem:
                    r = await ac.post("/v1/sentiment", json={"texts": texts})
                    return {"texts": texts, "body": r.json()}

            return await asyncio.gather(*(one(t) for t in reqs))

    # The app's lifespan already ran inside TestClient's portal; reuse its loop.
    results = client.portal.call(run)  # type: ignore[union-attr]
    for r in results:
        got = r["body"]["results"]
        assert [g["label"] for g in got] == [expected[t]["label"] for t in r["texts"]]
        for g, t in zip(got, r["texts"], strict=True):
            assert g["probabilities"]["pos"] == pytest.approx(expected[t]["probabilities"]["pos"], abs=1e-5)
    after = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "rnn-small")["batching"]
    assert after["items"] - before["items"] == 128
    assert after["batches"] - before["batches"] < 64  # requests were coalesced
