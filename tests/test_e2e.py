"""End to end: the real server (``python -m nlp_service serve``, uvicorn) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from nlp_service.config import Settings

from .helpers import chunked_neighbors_request

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def run_server(models_dir: Path, workdir: Path, env_overrides: dict[str, str] | None = None
               ) -> Iterator[httpx.Client]:
    """Start the service as a subprocess (``env_overrides``: more ``NLP_*`` settings), wait for /ready,
    yield a client for it; always stop it."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NLP_")}
    env["NLP_CACHE_DIR"] = str(workdir / "cache")
    env["NLP_DEFAULT_SENTIMENT_MODEL"] = "rnn-small"
    env.update(env_overrides or {})
    stdout_path, stderr_path = workdir / "server.out", workdir / "server.err"
    cmd = [
        sys.executable,
        "-m",
        "nlp_service",
        "serve",
        "--port",
        str(port),
        "--host",
        HOST,
        "--models-dir",
        str(models_dir),
    ]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        # cwd=workdir: no stray .env from the repository is read
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=workdir, env=env)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=10.0, trust_env=False) as client:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(
                        f"server exited with code {proc.returncode} before it was ready:\n"
                        f"{stderr_path.read_text(errors='replace')[-4000:]}"
                    )
                try:
                    if client.get("/ready", timeout=2.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"server not ready after {READY_TIMEOUT:.0f} s:\n"
                        f"{stderr_path.read_text(errors='replace')[-4000:]}"
                    )
                time.sleep(0.1)
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def http(settings: Settings, models_dir: Path, server_dir: Path) -> Iterator[httpx.Client]:
    # `settings` first: it makes the session's models exist in models_dir.
    with run_server(models_dir, server_dir) as client:
        yield client


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()


# ---- the real server answers as the in-process app does ---------------------------------------


def test_ready_and_models(http: httpx.Client) -> None:
    assert ok(http.get("/health")) == {"status": "ok"}
    models = ["bow-small", "ft-lee", "rnn-small", "tr-small", "w2v-small"]
    assert ok(http.get("/ready")) == {"status": "ready", "models": models, "failed": []}
    body = ok(http.get("/v1/models"))
    assert body["failed"] == []
    assert sorted(m["name"] for m in body["models"]) == models
    assert ok(http.get("/v1/models/w2v-small"))["dimensions"] == 32


def test_server_logs_the_models_it_loaded(http: httpx.Client, server_dir: Path) -> None:
    log = (server_dir / "server.err").read_text(errors="replace")
    assert "INFO:     loaded vectors model w2v-small" in log
    assert "INFO:     loaded translator model tr-small" in log


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/similarity", {"model": "w2v-small", "word1": "dios", "word2": "señor"}),
        ("/v1/similarity", {"model": "ft-lee", "word1": "qwertyzz", "word2": "police"}),
        ("/v1/neighbors", {"model": "w2v-small", "word": "rey", "topn": 10}),
        ("/v1/neighbors", {"model": "w2v-small", "word": "rey", "topn": 10, "approximate": True}),
        ("/v1/neighbors", {"model": "w2v-small", "positive": ["rey", "mujer"], "negative": ["hombre"]}),
        ("/v1/neighbors", {"model": "ft-lee", "word": "government", "topn": 5}),
        ("/v1/analogy", {"model": "w2v-small", "a": "hombre", "b": "rey", "c": "mujer"}),
        ("/v1/analogy", {"model": "w2v-small", "a": "hombre", "b": "rey", "c": "mujer", "method": "3cosmul"}),
        ("/v1/embeddings/words", {"model": "ft-lee", "words": ["police", "qwertyzz"], "normalize": True}),
        (
            "/v1/embeddings/texts",
            {"model": "w2v-small", "texts": ["En el principio creó Dios los cielos", "Qqqzx"]},
        ),
    ],
)
def test_same_answers_as_in_process(
    http: httpx.Client, client: TestClient, path: str, body: dict[str, Any]
) -> None:
    assert ok(http.post(path, json=body)) == ok(client.post(path, json=body))


def test_neighbors_content(http: httpx.Client) -> None:
    body = ok(http.post("/v1/neighbors", json={"model": "w2v-small", "word": "rey", "topn": 5}))
    assert body["model"] == "w2v-small"
    assert len(body["neighbors"]) == 5
    assert "rey" not in [n["word"] for n in body["neighbors"]]
    scores = [n["score"] for n in body["neighbors"]]
    assert scores == sorted(scores, reverse=True)


def test_embeddings_content(http: httpx.Client) -> None:
    body = ok(http.post("/v1/embeddings/words", json={"model": "ft-lee", "words": ["qwertyzz"]}))
    assert body["dimensions"] == 10
    assert body["vectors"][0]["source"] == "subwords"
    assert len(body["vectors"][0]["vector"]) == 10


def test_client_errors_over_http(http: httpx.Client) -> None:
    r = http.post("/v1/similarity", json={"model": "w2v-small", "word1": "qqqzx", "word2": "zzyxw"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "word_not_found"
    assert r.json()["error"]["details"]["words"] == ["qqqzx", "zzyxw"]

    r = http.post("/v1/neighbors", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert "not valid JSON" in r.json()["error"]["message"]

    r = http.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"

    r = http.post("/v1/models")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_oversized_body_with_content_length_over_http(http: httpx.Client) -> None:
    # The server runs with the default limit (NLP_MAX_BODY_BYTES, 1,000,000 bytes).
    payload = b'{"word": "rey"' + b" " * 1_000_000 + b"}"
    r = http.post("/v1/neighbors", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert "1000000 bytes" in r.json()["error"]["message"]
    assert ok(http.get("/health")) == {"status": "ok"}  # the server is still fine


def test_oversized_body_chunked_over_http(http: httpx.Client) -> None:
    r = http.post("/v1/neighbors", content=chunked_neighbors_request(1_200_000),
                  headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"


# ---- a broken model folder does not take the service down -------------------------------------


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)


def test_truncated_model_does_not_crash_server(
    settings: Settings, w2v_model: Path, client: TestClient, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    # 1. vectors.npy cut in half: the manifest's file sizes no longer match.
    shutil.copytree(w2v_model, models / "broken")
    _truncate(models / "broken" / "store" / "vectors.npy")
    # 2. the same, with the manifest's size updated, so the store reader itself must notice.
    shutil.copytree(w2v_model, models / "broken-store")
    _truncate(models / "broken-store" / "store" / "vectors.npy")
    manifest_path = models / "broken-store" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["store/vectors.npy"]["size"] = (
        (models / "broken-store" / "store" / "vectors.npy").stat().st_size
    )
    manifest_path.write_text(json.dumps(manifest))
    # 3. a good copy.
    shutil.copytree(w2v_model, models / "w2v-small")

    # Checksums off: with them, broken-store fails its sha256 before the store reader can see it.
    with run_server(models, tmp_path / "server", {"NLP_VERIFY_CHECKSUMS": "false"}) as http:
        ready = ok(http.get("/ready"))
        assert ready["status"] == "ready" and ready["models"] == ["w2v-small"]
        listed = ok(http.get("/v1/models"))
        assert [m["name"] for m in listed["models"]] == ["w2v-small"]
        assert ready["failed"] == listed["failed"]  # named with their reasons
        failed = {f["name"]: f["error"] for f in listed["failed"]}
        assert set(failed) == {"broken", "broken-store"}
        assert "vectors.npy" in failed["broken"] and "size" in failed["broken"]
        assert failed["broken-store"].startswith("ArtifactError")
        assert "cannot open vector store" in failed["broken-store"]
        assert "file size" in failed["broken-store"]

        r = http.get("/v1/models/broken")
        assert r.status_code == 404
        assert r.json()["error"]["details"]["load_error"] == failed["broken"]
        r = http.post("/v1/neighbors", json={"model": "broken", "word": "rey"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"
        assert r.json()["error"]["details"]["load_error"] == failed["broken"]

        body = {"model": "w2v-small", "word": "rey", "topn": 10}
        assert ok(http.post("/v1/neighbors", json=body)) == ok(client.post("/v1/neighbors", json=body))
        # with no model named, the default (NLP_DEFAULT_VECTORS_MODEL, w2v-es: missing) and never another
        r = http.post("/v1/similarity", json={"word1": "rey", "word2": "dios"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "default_model_unavailable"
        assert r.json()["error"]["details"]["setting"] == "NLP_DEFAULT_VECTORS_MODEL"


def test_sentiment_over_http(http: httpx.Client) -> None:
    r = http.post("/v1/sentiment", json={"texts": ["Una película preciosa.", "Aburrida y larga."]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "rnn-small" and len(body["results"]) == 2
    assert all(abs(sum(x["probabilities"].values()) - 1) < 1e-5 for x in body["results"])
    r = http.post("/v1/classify", json={"model": "bow-small", "texts": ["   "]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_text"


def test_translate_over_http(http: httpx.Client) -> None:
    texts = ["Pulse el icono para más información.", "Y dijo Dios: Sea la luz."]
    r = http.post("/v1/translate", json={"texts": texts, "source": "es", "target": "en", "beam_size": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tr-small" and len(body["translations"]) == 2
    assert all(isinstance(t, str) and t for t in body["translations"])
    r = http.post("/v1/translate", json={"texts": texts, "source": "en", "target": "es"})
    assert r.status_code == 404 and r.json()["error"]["details"]["available"] == ["es->en"]
