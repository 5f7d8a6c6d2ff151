"""Observability: ``GET /metrics`` in Prometheus' text format, the HTTP request metrics (route templates,
never raw paths), and the serving metrics the workers update (micro-batches, generations).

The registry is the process's default one, shared by every app the test session builds: the tests
compare counts before and after their own requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from nlp_service.api import create_app
from nlp_service.api._metrics import RequestMetrics  # white-box: the middleware on a small app of its own
from nlp_service.config import Settings

from .helpers import ready_client
from .test_generate_api import gen_models, gen_settings  # noqa: F401 (the tiny GPT-2 fixtures)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SEEN: dict[str, float | None] = {}  # what the probe's stream saw while it ran


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics``, parsed as Prometheus would."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_is_prometheus_text_with_the_serving_metrics(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST  # text/plain, the exposition format's version
    families = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    expected = {"nlp_http_requests": "counter", "nlp_http_request_duration_seconds": "histogram",
                "nlp_http_requests_in_progress": "gauge", "nlp_queue_depth": "gauge", "nlp_batch_size": "histogram",
                "nlp_batch_seconds": "histogram", "nlp_rejected": "counter", "nlp_generations_running": "gauge",
                "nlp_generations_waiting": "gauge", "nlp_generated_tokens": "counter",
                "nlp_time_to_first_token_seconds": "histogram", "nlp_generation_errors": "counter",
                "nlp_models_loaded": "gauge", "nlp_model_load_failures": "gauge"}
    assert {name: families.get(name) for name in expected} == expected
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    before = scrape(client)
    assert client.get("/v1/models/bow-small").status_code == 200
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.post("/v1/classify", json={"texts": []}).status_code == 422
    assert client.get("/v1/classify").status_code == 405
    assert client.post("/v1/classify", content=b"x" * 100_001,
                       headers={"content-type": "application/json"}).status_code == 413
    after = scrape(client)

    count = "nlp_http_requests_total"
    assert grew(before, after, count, method="GET", route="/v1/models/{name}", status="200") == 1
    assert grew(before, after, count, method="GET", route="/v1/models/{name}", status="404") == 1
    assert grew(before, after, count, method="POST", route="/v1/classify", status="422") == 1
    assert grew(before, after, count, method="GET", route="/v1/classify", status="405") == 1
    # No route ran: an unknown path, a body refused before routing. Raw paths never become labels.
    assert grew(before, after, count, method="GET", route="unmatched", status="404") == 1
    assert grew(before, after, count, method="POST", route="unmatched", status="413") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not {"/v1/models/bow-small", "/v1/models/nope", "/no/such/path"} & routes
    # The scrape before this one is counted once it has been answered.
    assert grew(before, after, count, method="GET", route="/metrics", status="200") == 1

    latency = "nlp_http_request_duration_seconds"
    assert grew(before, after, f"{latency}_count", method="GET", route="/v1/models/{name}") == 2
    assert grew(before, after, f"{latency}_bucket", method="GET", route="/v1/models/{name}", le="+Inf") == 2
    assert grew(before, after, f"{latency}_sum", method="GET", route="/v1/models/{name}") > 0
    assert value(after, "nlp_http_requests_in_progress", method="POST") == 0


def test_several_apps_in_one_process_share_the_metrics(settings: Settings) -> None:
    """Metrics are defined once, at import: a second app registers nothing twice (it would raise)."""
    with TestClient(create_app(settings)) as other:
        assert other.get("/health").status_code == 200
        assert value(scrape(other), "nlp_http_requests_total", method="GET", route="/health", status="200") >= 1


@pytest.fixture(scope="module")
def probe() -> Iterator[TestClient]:
    """The middleware alone, over a slow stream and a failing route."""
    app = FastAPI()

    @app.put("/probe/stream/{n}")
    def stream(n: int) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            yield b"first "
            SEEN["in_progress"] = REGISTRY.get_sample_value("nlp_http_requests_in_progress", {"method": "PUT"})
            time.sleep(0.2)
            yield b"last"
        return StreamingResponse(body(), media_type="text/plain")

    @app.delete("/probe/fail")
    def fail() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestMetrics)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_a_stream_is_timed_to_the_end_of_its_body(probe: TestClient) -> None:
    labels = {"method": "PUT", "route": "/probe/stream/{n}"}
    before = REGISTRY.get_sample_value("nlp_http_request_duration_seconds_sum", labels) or 0.0
    assert probe.put("/probe/stream/3").text == "first last"
    after = REGISTRY.get_sample_value("nlp_http_request_duration_seconds_sum", labels)
    assert after is not None and after - before >= 0.2
    assert (SEEN["in_progress"] or 0) >= 1
    assert REGISTRY.get_sample_value("nlp_http_requests_in_progress", {"method": "PUT"}) == 0


def test_an_app_failure_counts_as_500(probe: TestClient) -> None:
    labels = {"method": "DELETE", "route": "/probe/fail", "status": "500"}
    before = REGISTRY.get_sample_value("nlp_http_requests_total", labels) or 0.0
    assert probe.delete("/probe/fail").status_code == 500
    assert REGISTRY.get_sample_value("nlp_http_requests_total", labels) == before + 1


def test_unusual_methods_share_one_label(probe: TestClient) -> None:
    labels = {"method": "other", "route": "unmatched", "status": "404"}
    before = REGISTRY.get_sample_value("nlp_http_requests_total", labels) or 0.0
    assert probe.request("BREW", "/coffee").status_code == 404
    assert REGISTRY.get_sample_value("nlp_http_requests_total", labels) == before + 1


# Serving metrics: updated by the workers (nlp_service/serving), read here over HTTP.


def test_classification_feeds_the_batch_metrics(client: TestClient) -> None:
    texts = ["Me encantó, muy recomendable.", "Pésimo servicio.", "Normal."]
    before = scrape(client)
    assert client.post("/v1/classify", json={"texts": texts, "model": "bow-small"}).status_code == 200
    assert client.post("/v1/sentiment", json={"texts": texts[:2], "model": "rnn-small"}).status_code == 200
    after = scrape(client)
    for model, n in (("bow-small", 3), ("rnn-small", 2)):
        assert grew(before, after, "nlp_batch_size_count", model=model) >= 1
        assert grew(before, after, "nlp_batch_size_sum", model=model) == n  # every text, in some batch
        assert grew(before, after, "nlp_batch_seconds_count", model=model) >= 1
        assert value(after, "nlp_queue_depth", model=model) == 0


def test_generation_feeds_the_generation_metrics(gen_settings: Settings) -> None:  # noqa: F811
    with ready_client(create_app(gen_settings)) as gen_client:
        before = scrape(gen_client)
        r = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 8,
                                                                                     "details": True}})
        assert r.status_code == 200, r.text
        tokens = r.json()["details"]["generated_tokens"]
        with gen_client.stream("POST", "/v1/generate_stream",
                               json={"inputs": "La vida", "parameters": {"max_new_tokens": 5}}) as s:
            assert s.status_code == 200
            streamed = sum(1 for line in s.iter_lines() if line.startswith("data:"))
        after = scrape(gen_client)
    model = "gen-tiny"
    assert grew(before, after, "nlp_generated_tokens_total", model=model) == tokens + streamed
    assert grew(before, after, "nlp_time_to_first_token_seconds_count", model=model) == 2
    assert value(after, "nlp_generations_running", model=model) == 0
    assert value(after, "nlp_generations_waiting", model=model) == 0
    assert grew(before, after, "nlp_generation_errors_total", model=model) == 0
    assert grew(before, after, "nlp_http_requests_total", method="POST", route="/v1/generate_stream",
                status="200") == 1
