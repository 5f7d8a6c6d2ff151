"""The HTTP contract, tested: the OpenAPI document the service publishes describes what it answers. A
schemathesis run over every operation of the real document, against the real app (its middleware, small
real models of every kind, generation included) served by uvicorn over real HTTP: no 5xx, and every
status, content type, header and body as documented."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from nlp_service.api import create_app
from nlp_service.api.errors import ErrorResponse
from nlp_service.api.server import uvicorn_options
from nlp_service.config import Settings

from .helpers import CHAT_TEMPLATE, save_tiny_generator
from .test_generate_api import gen_models  # noqa: F401  (the tiny GPT-2 generator, a module fixture)

HOST = "127.0.0.1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Bounded: examples per operation (fuzzing phase; the schema's examples and schemathesis' coverage cases
# come on top), and no per-example deadline (a 2-core machine shared with other tests is slow at times).
CONTRACT_SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 generator with a chat template (gen-tiny has none: chats with it are refused)."""
    return save_tiny_generator(tmp_path_factory.mktemp("chat-model"), "chat-tiny", positions=64,
                               chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def contract_settings(settings: Settings, w2v_model: Path, ft_model: Path, bow_model: Path, rnn_model: Path,
                      translator_model: Path, gen_models: Path,  # noqa: F811  (the imported fixture)
                      chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's models and the generators in one folder (links), with limits that keep each request
    cheap: a fuzzer asks for the most work each limit allows."""
    folder = tmp_path_factory.mktemp("contract-models")
    for model in (w2v_model, ft_model, bow_model, rnn_model, translator_model, gen_models / "gen-tiny", chat_model):
        (folder / model.name).symlink_to(model, target_is_directory=True)
    return settings.model_copy(update={
        "models_dir": folder, "default_translator_model": "tr-small", "default_generator_model": "gen-tiny",
        "generation_max_batch": 4, "generation_max_input_tokens": 40, "generation_max_total_tokens": 60,
        "translation_max_cost": 2_000, "request_timeout_s": 30.0})


@pytest.fixture(scope="module")
def server(contract_settings: Settings) -> Iterator[str]:
    """The app under uvicorn in a thread, on a socket bound here (no port race); its base URL once ready."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    # As `nlp-service serve` runs it (its HTTP protocol, keep-alive), but leaving this process's logging alone.
    options = {**uvicorn_options(contract_settings), "log_config": None, "log_level": "warning"}
    uv = uvicorn.Server(uvicorn.Config(create_app(contract_settings), lifespan="on", **options))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while not uv.started or httpx.get(f"{base}/ready", timeout=5, trust_env=False).status_code != 200:
            assert thread.is_alive() and time.monotonic() < deadline, "server not ready"
            time.sleep(0.1)
        yield base
    finally:
        uv.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxy between the test and 127.0.0.1
        yield session


# The app's document, built at collection (it depends on no model nor setting; the served one is checked to be
# the same): one test per operation.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)

# Random values rarely get past validation (random model names only ever find a 404; a random prompt is
# empty or too long): the hooks below also send, as often as what was generated, each of these patches to
# the generated body (the loaded models' names; a prompt that fits), so that requests reach the models.
_VECTORS, _CLASSIFIERS = ["w2v-small", "ft-lee"], ["bow-small", "rnn-small"]
_ALL = [*_VECTORS, *_CLASSIFIERS, "tr-small", "gen-tiny", "chat-tiny"]
_PROMPT = {"model": "gen-tiny", "prompt": "Más vale", "max_tokens": 5}
_CHAT = {"model": "chat-tiny", "messages": [{"role": "user", "content": "Hola"}], "max_tokens": 5}
PATCHES: dict[str, list[dict[str, Any]]] = {
    **{path: [{"model": name} for name in _VECTORS] for path in (
        "/v1/similarity", "/v1/neighbors", "/v1/analogy", "/v1/embeddings/words", "/v1/embeddings/texts")},
    "/v1/classify": [{"model": name, **explain} for name in _CLASSIFIERS for explain in ({}, {"explain": True})],
    "/v1/sentiment": [{"model": name, **explain} for name in _CLASSIFIERS for explain in ({}, {"explain": True})],
    "/v1/translate": [{"model": "tr-small"}, {"model": "tr-small", "return_attention": True}],
    "/v1/generate": [{"model": "gen-tiny"}],
    "/v1/generate_stream": [{"model": "gen-tiny"}],
    "/v1/completions": [{"model": "gen-tiny"}, _PROMPT, {**_PROMPT, "stream": True}],
    "/v1/embeddings": [patch for name in _VECTORS for patch in ({"model": name}, {"model": name, "input": ["el rey"]})],
    "/v1/chat/completions": [{"model": "chat-tiny"}, _CHAT, {**_CHAT, "n": 2, "logprobs": True, "top_logprobs": 2},
                             {**_CHAT, "stream": True, "stream_options": {"include_usage": True}}],
    "/v1/models/{name}": [{"name": name} for name in _ALL],
    "/v1/models/{name}/curves": [{"name": name} for name in _ALL],
}


def _patched(context: schemathesis.HookContext, values: Any) -> st.SearchStrategy[Any]:
    patches = PATCHES.get(context.operation.path, []) if context.operation else []
    if not patches or not isinstance(values, dict):
        return st.just(values)
    return st.sampled_from([{}, *patches]).map(lambda patch: {**values, **patch})


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _patched(context, body)


@schema.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: Any) -> st.SearchStrategy[Any]:
    return _patched(context, path_parameters) if path_parameters else st.just(path_parameters)


@pytest.mark.slow
@schema.parametrize()
@CONTRACT_SETTINGS
def test_every_operation_keeps_its_contract(case: schemathesis.Case, server: str, http: requests.Session) -> None:
    case.call_and_validate(base_url=server, session=http, checks=CHECKS, timeout=60)


@pytest.mark.slow
def test_the_served_document_is_the_tested_one(server: str, http: requests.Session) -> None:
    assert http.get(f"{server}/openapi.json", timeout=30).json() == DOCUMENT


def test_document_describes_errors_and_streams() -> None:
    """Every error response is the ErrorResponse shape (never FastAPI's ``{"detail": ...}``; TGI's own paths
    answer the request's errors in TGI's shape, which its client reads), every route but the probes documents
    401/429/504, routes naming models 404, bodies 400/413/422, and the streams are ``text/event-stream``."""
    doc = DOCUMENT
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    tgi_ref = {"$ref": "#/components/schemas/TGIErrorResponse"}
    assert doc["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
    assert set(doc["components"]["schemas"]["TGIErrorResponse"]["required"]) >= {"error", "error_type"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {int(s) for s in responses if int(s) >= 400}
            for status in errors - ({503} if path == "/ready" else set()):
                tgi_shaped = path in ("/", "/generate", "/generate_stream") and status in (400, 404, 422, 503)
                assert responses[str(status)]["content"] == {"application/json": {
                    "schema": tgi_ref if tgi_shaped else error_ref}}, (method, path, status)
            if path in ("/health", "/ready"):
                assert errors <= {503}, (path, errors)
                continue
            assert {401, 429, 504} <= errors, (method, path, errors)
            if method == "post":
                assert {400, 404, 413, 422, 503} <= errors, (path, errors)
    assert doc["paths"]["/v1/models/{name}"]["get"]["responses"].keys() >= {"404", "422"}
    assert set(doc["paths"]["/ready"]["get"]["responses"]) == {"200", "503"}
    curves = doc["paths"]["/v1/models/{name}/curves"]["get"]["responses"]
    assert curves.keys() >= {"404", "422"} and list(curves["200"]["content"]) == ["image/png"]
    stream = doc["paths"]["/v1/generate_stream"]["post"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert stream["text/event-stream"]["itemSchema"]["properties"]["data"]["contentMediaType"] == "application/json"
    completions = doc["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]
    assert set(completions) == {"application/json", "text/event-stream"}
    assert "itemSchema" in completions["text/event-stream"]
    assert completions["application/json"]["schema"] == {"$ref": "#/components/schemas/CompletionResponse"}
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    assert chat["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletionResponse"}


def test_refusals_without_a_key_are_documented(tmp_path: Path) -> None:
    """With API keys set, every operation but the probes answers 401 as documented (body and header)."""
    with TestClient(create_app(Settings(models_dir=tmp_path, api_keys="secret"))) as client:
        for path, operations in DOCUMENT["paths"].items():
            for method, operation in operations.items():
                r = client.request(method, path.replace("{name}", "w2v-small"), json={} if method == "post" else None)
                if path in ("/health", "/ready"):
                    assert r.status_code != 401, path
                    continue
                assert r.status_code == 401, (method, path, r.status_code)
                assert "401" in operation["responses"], (method, path)
                assert r.headers["www-authenticate"] == "Bearer"
                ErrorResponse.model_validate(r.json())
