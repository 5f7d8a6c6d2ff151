"""What every endpoint does with bad HTTP: wrong JSON types, bodies that are not objects or not JSON,
unknown fields, oversized bodies (declared or streamed), unknown routes and methods; and the one table
that gives each family of domain errors its status. All answered with the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from nlp_service.api.errors import install_error_handlers
from nlp_service.errors import (
    InvalidInput,
    LimitExceeded,
    ModelNotFound,
    NLPServiceError,
    NotFound,
    Overloaded,
    Unavailable,
    UnsupportedByModel,
)

from .helpers import W2V, assert_error, chunked_neighbors_request


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/neighbors", {"word": 123}, "word"),
        ("/v1/neighbors", {"word": "rey", "topn": "many"}, "topn"),
        ("/v1/neighbors", {"word": "rey", "approximate": [1]}, "approximate"),
        ("/v1/neighbors", {"vector": ["a"] * 32}, "vector.0"),
        ("/v1/similarity", {"word1": "rey", "word2": None}, "word2"),
        ("/v1/similarity", {"word1": "rey"}, "word2"),
        ("/v1/analogy", {"a": "hombre", "b": "rey", "c": "mujer", "method": "3coswhat"}, "method"),
        ("/v1/embeddings/words", {"words": "rey"}, "words"),
        ("/v1/embeddings/texts", {"texts": [1, 2]}, "texts.0"),
        ("/v1/embeddings/texts", {"texts": ["rey"], "model": 5}, "model"),
    ],
)
def test_wrong_json_types(client: TestClient, path: str, body: dict[str, Any], field: str) -> None:
    err = assert_error(client.post(path, json=body), 422, "validation_error", field)
    assert err["message"].startswith(f"{field}:")
    assert err["details"]["errors"][0]["field"] == field


@pytest.mark.parametrize("payload", ['["rey", "dios"]', '"rey"', "42"])
def test_body_not_an_object(client: TestClient, payload: str) -> None:
    r = client.post("/v1/similarity", content=payload, headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error", "body:", "dictionary or object")


def test_empty_body(client: TestClient) -> None:
    r = client.post("/v1/similarity", content=b"", headers={"content-type": "application/json"})
    err = assert_error(r, 422, "validation_error", "body:", "required")
    assert err["details"]["errors"][0]["type"] == "missing"


@pytest.mark.parametrize("payload", [b'{"word": "rey"', b"{bad json}", b'{"word": "rey",}', b"\xff\xfe"])
def test_invalid_json_body(client: TestClient, payload: bytes) -> None:
    r = client.post("/v1/neighbors", content=payload, headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error", "not valid JSON")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/neighbors", {"word": "rey", "colour": "red"}),
        ("/v1/similarity", {"word1": "rey", "word2": "dios", "colour": "red"}),
        ("/v1/embeddings/texts", {"texts": ["rey"], "colour": "red"}),
    ],
)
def test_extra_unknown_field(client: TestClient, path: str, body: dict[str, Any]) -> None:
    err = assert_error(client.post(path, json=body), 422, "validation_error", "colour", "Extra inputs")
    assert err["details"]["errors"][0]["type"] == "extra_forbidden"


def _padded_json(size: int) -> bytes:
    """A valid neighbours request of exactly ``size`` bytes (trailing whitespace is valid JSON)."""
    raw = json.dumps({"model": W2V, "word": "rey", "topn": 3}).encode()
    return raw + b" " * (size - len(raw))


def test_body_at_the_size_limit_is_accepted(client: TestClient) -> None:
    r = client.post(
        "/v1/neighbors", content=_padded_json(100_000), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["neighbors"]) == 3


def test_oversized_body_with_content_length(client: TestClient) -> None:
    payload = _padded_json(100_001)
    r = client.post("/v1/neighbors", content=payload, headers={"content-type": "application/json"})
    assert r.request.headers["content-length"] == "100001"
    err = assert_error(r, 413, "payload_too_large", "100000 bytes")
    assert err["details"] == {"max_bytes": 100_000}


def test_oversized_body_streamed_chunked(client: TestClient) -> None:
    """No Content-Length: the limit is enforced while the body streams in."""
    r = client.post("/v1/neighbors", content=chunked_neighbors_request(150_000),
                    headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    err = assert_error(r, 413, "payload_too_large", "100000 bytes")
    assert err["details"] == {"max_bytes": 100_000}


def test_small_chunked_body_is_accepted(client: TestClient) -> None:
    r = client.post("/v1/neighbors", content=chunked_neighbors_request(50_000),
                    headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert len(r.json()["neighbors"]) == 3


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/models/w2v-small/extra"])
def test_unknown_route(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found", "Not Found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/neighbors", "POST"),
        ("PUT", "/v1/similarity", "POST"),
        ("DELETE", "/v1/models/w2v-small", "GET"),
        ("POST", "/health", "GET"),
    ],
)
def test_wrong_method(client: TestClient, method: str, path: str, allowed: str) -> None:
    r = client.request(method, path)
    assert_error(r, 405, "method_not_allowed", "Method Not Allowed")
    assert allowed in r.headers["allow"]



@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidInput("bad value", code="wrong_dimensions", got=3), 422, "wrong_dimensions"),
    (LimitExceeded("too many texts: 9 (at most 8)", limit=8, got=9, setting="NLP_MAX_TEXTS"), 422, "limit_exceeded"),
    (NotFound("no such thing", code="word_not_found"), 404, "word_not_found"),
    (ModelNotFound("no vectors model named 'x'", available=[]), 404, "model_not_found"),
    (Overloaded("the generation queue is full"), 429, "too_many_requests"),
    (Unavailable("no translator model is loaded"), 503, "no_model"),
    (UnsupportedByModel("model 'g' has no chat template", code="no_chat_template", model="g"), 400,
     "no_chat_template"),
])
def test_each_family_of_domain_errors_has_its_status(error: NLPServiceError, status: int, code: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise error

    with TestClient(app) as c:
        r = c.get("/fail")
    err = assert_error(r, status, code, error.message)
    assert err["details"] == error.details
    assert (r.headers.get("retry-after") == "1") == (status == 429)  # told when to come back


def test_a_domain_error_of_no_family_is_a_server_error_that_says_nothing_inside() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    def fail() -> None:
        raise NLPServiceError("disk layout of /srv/models/secret is inconsistent")

    with TestClient(app) as c:
        err = assert_error(c.get("/fail"), 500, "internal_error")
    assert "secret" not in err["message"]
