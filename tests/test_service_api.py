"""The service's own endpoints over HTTP (TestClient): health, readiness, information, the OpenAPI
document and docs page, the model list."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from nlp_service.config import Settings

from .helpers import ALL_MODELS, FT, W2V, assert_error


def test_health(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_ready(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "models": ALL_MODELS, "failed": []}


def test_info(client: TestClient, settings: Settings) -> None:
    r = client.get("/info")
    assert r.status_code == 200
    info = r.json()
    assert info["service"] == "nlp-service"
    assert info["version"]
    assert {"python", "numpy", "gensim"} <= set(info["libraries"])
    assert info["models"] == ALL_MODELS
    assert "models_dir" not in info and str(settings.models_dir) not in r.text  # no filesystem paths
    assert isinstance(info["load_seconds"], float)
    assert info["limits"] == {
        "max_body_bytes": 100_000,
        "max_words": 50,
        "max_texts": 8,
        "max_text_chars": 2000,
        "max_topn": 100,
        "max_beam_size": 8,
        "translation_max_cost": settings.translation_max_cost,
    }


def test_openapi_lists_every_route(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "nlp-service"
    assert set(spec["paths"]) == {
        "/health",
        "/ready",
        "/info",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/models/{name}/curves",
        "/v1/similarity",
        "/v1/neighbors",
        "/v1/analogy",
        "/v1/embeddings/words",
        "/v1/embeddings/texts",
        "/v1/classify",
        "/v1/sentiment",
        "/v1/translate",
        "/v1/generate",
        "/v1/generate_stream",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/embeddings",
        # TGI's own paths, which its client calls
        "/",
        "/generate",
        "/generate_stream",
    }
    for path in (
        "/v1/similarity",
        "/v1/neighbors",
        "/v1/analogy",
        "/v1/embeddings/words",
        "/v1/embeddings/texts",
    ):
        assert "post" in spec["paths"][path]
    assert "NeighborsRequest" in spec["components"]["schemas"]


def test_docs_page(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger" in r.text.lower()
    assert "/openapi.json" in r.text



def test_models_list(client: TestClient) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["failed"] == []
    assert body["object"] == "list" and {m["id"] for m in body["data"]} == set(ALL_MODELS)  # OpenAI's shape too
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == set(ALL_MODELS)
    kinds = {name: m["kind"] for name, m in by_name.items()}
    assert kinds == {W2V: "vectors", FT: "vectors", "bow-small": "classifier", "rnn-small": "classifier",
                     "tr-small": "translator"}


@pytest.mark.parametrize("name", [W2V, FT])
def test_model_by_name(client: TestClient, name: str) -> None:
    r = client.get(f"/v1/models/{name}")
    assert r.status_code == 200
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert r.json() == listed[name]


def test_model_by_name_unknown(client: TestClient) -> None:
    err = assert_error(client.get("/v1/models/no-such-model"), 404, "model_not_found", "'no-such-model'")
    assert err["details"] == {"available": ALL_MODELS, "load_error": None}
