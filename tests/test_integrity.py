"""Model integrity and readiness: damaged or foreign folders fail to load (named, with why, never served),
interrupted saves are cleaned up at start, a request without a model name gets the configured default or
a 503 (never another model), and /ready says 503 while the models load in the background.

Every test damages copies of the session's models in its own folder, never the shared ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from nlp_service.api import create_app
from nlp_service.artifacts import atomic_model_dir, sha256_file
from nlp_service.config import Settings
from nlp_service.serving import ModelManager, Service

from .helpers import assert_error, ready_client

HOST = "127.0.0.1"
TEXTS = ["Una película preciosa.", "Aburrida y larga."]


def _settings(models: Path, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(models_dir=models, cache_dir=tmp_path / "cache", device="cpu", preload_ann=False,
                    default_classifier_model="bow-small", default_sentiment_model="rnn-small",
                    default_vectors_model="w2v-small", **overrides)


def _flip(path: Path, count: int = 256) -> None:
    """Invert ``count`` bytes in the middle of a file, in place: same size, other content."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    assert len(data) > 128 + count, "the file is too small to damage its data and not its header"
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped bytes", "missing file"])
def test_a_damaged_model_fails_to_load_and_is_never_served(bow_model: Path, rnn_model: Path, tmp_path: Path,
                                                           damage: str) -> None:
    models = tmp_path / "models"
    shutil.copytree(bow_model, models / "bow-small")
    (models / "rnn-small").symlink_to(rnn_model, target_is_directory=True)  # a good model beside it
    weights = models / "bow-small" / "bow" / "coef.npy"
    if damage == "flipped bytes":
        _flip(weights)
    else:
        weights.unlink()

    with ready_client(create_app(_settings(models, tmp_path))) as client:
        r = client.get("/ready")
        assert r.status_code == 200 and r.json()["models"] == ["rnn-small"]
        [failed] = r.json()["failed"]
        assert failed["name"] == "bow-small" and "coef.npy" in failed["error"]
        assert ("sha256" if damage == "flipped bytes" else "missing file") in failed["error"]
        assert str(tmp_path) not in r.text  # a reason fit for clients: no filesystem path

        err = assert_error(client.post("/v1/classify", json={"model": "bow-small", "texts": TEXTS}), 404,
                           "model_not_found", "'bow-small'")
        assert err["details"]["load_error"] == failed["error"]
        err = assert_error(client.post("/v1/classify", json={"texts": TEXTS}), 503, "default_model_unavailable",
                           "'bow-small'", "NLP_DEFAULT_CLASSIFIER_MODEL")
        assert err["details"]["load_error"] == failed["error"]
        listed = client.get("/v1/models").json()
        assert listed["failed"] == [failed] and [m["name"] for m in listed["models"]] == ["rnn-small"]
        assert str(tmp_path) not in client.get("/v1/models/bow-small").text
        assert client.post("/v1/sentiment", json={"texts": TEXTS}).status_code == 200  # the others serve


def test_checksums_can_be_turned_off(bow_model: Path, tmp_path: Path) -> None:
    """NLP_VERIFY_CHECKSUMS=false: only the sizes are checked (a faster start), so flipped bytes load."""
    models = tmp_path / "models"
    shutil.copytree(bow_model, models / "bow-small")
    _flip(models / "bow-small" / "bow" / "coef.npy")
    manager = ModelManager(_settings(models, tmp_path, verify_checksums=False))
    manager.load_all()
    assert list(manager.models) == ["bow-small"] and manager.failed == {}
    manager = ModelManager(_settings(models, tmp_path))
    manager.load_all()
    assert manager.models == {} and "sha256" in manager.failed["bow-small"]


def test_a_folder_without_a_manifest_is_failed_not_ignored(bow_model: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "bow-small").symlink_to(bow_model, target_is_directory=True)
    (models / "copied-by-hand").mkdir()
    (models / "copied-by-hand" / "weights.bin").write_bytes(b"\0" * 64)
    (models / ".cache").mkdir()  # hidden folders are not models
    (models / ".cache" / "x").write_text("x")

    with ready_client(create_app(_settings(models, tmp_path))) as client:
        body = client.get("/ready").json()
        assert body["models"] == ["bow-small"]
        assert [f["name"] for f in body["failed"]] == ["copied-by-hand"]
        assert "no manifest.json" in body["failed"][0]["error"]
        err = assert_error(client.get("/v1/models/copied-by-hand"), 404, "model_not_found")
        assert "not a model folder" in err["details"]["load_error"]


_KILLED_SAVE = """
import sys, time
from nlp_service.artifacts import atomic_model_dir
with atomic_model_dir(sys.argv[1], "half-saved") as tmp:
    (tmp / "weights.bin").write_bytes(b"x" * 1000)
    print(tmp.name, flush=True)
    time.sleep(600)
"""


def test_interrupted_saves_are_removed_at_start_but_not_a_save_in_progress(
        bow_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "bow-small").symlink_to(bow_model, target_is_directory=True)
    # A save killed with SIGKILL: nothing of it runs again, its temporary folder stays behind.
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(models)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        stale = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert stale.startswith(".tmp-half-saved-") and (models / stale).is_dir()

    class Abandoned(Exception):
        pass

    async def start_while_a_save_runs() -> None:
        with atomic_model_dir(models, "being-saved") as in_progress:
            (in_progress / "weights.bin").write_bytes(b"y")
            service = Service(_settings(models, tmp_path))
            with caplog.at_level(logging.WARNING, logger="nlp_service.serving"):
                service.start()
                try:
                    assert service.wait_until_ready(120)
                finally:
                    await service.close()
            assert in_progress.is_dir()  # locked by this save: kept
            assert list(service.models.models) == ["bow-small"] and service.models.failed == {}
            raise Abandoned  # the save fails: its folder goes

    with pytest.raises(Abandoned):
        asyncio.run(start_while_a_save_runs())
    assert not (models / stale).exists()
    assert any(stale in r.getMessage() and "did not finish" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in models.iterdir()) == ["bow-small"]


def test_without_a_model_name_the_default_answers_or_503_never_another(ft_model: Path, w2v_model: Path,
                                                                       tmp_path: Path) -> None:
    """Only an English vectors model is there, the default (w2v-small, Spanish) is missing."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "ft-lee").symlink_to(ft_model, target_is_directory=True)
    with ready_client(create_app(_settings(models, tmp_path))) as client:
        err = assert_error(client.post("/v1/similarity", json={"word1": "king", "word2": "queen"}), 503,
                           "default_model_unavailable", "'w2v-small'", "NLP_DEFAULT_VECTORS_MODEL",
                           "name a model")
        assert err["details"]["setting"] == "NLP_DEFAULT_VECTORS_MODEL" and err["details"]["available"] == ["ft-lee"]
        r = client.post("/v1/similarity", json={"model": "ft-lee", "word1": "king", "word2": "queen"})
        assert r.status_code == 200 and r.json()["model"] == "ft-lee"
    (models / "w2v-small").symlink_to(w2v_model, target_is_directory=True)
    with ready_client(create_app(_settings(models, tmp_path))) as client:
        r = client.post("/v1/similarity", json={"word1": "rey", "word2": "reina"})
        assert r.status_code == 200 and r.json()["model"] == "w2v-small"


@contextmanager
def _uvicorn(settings: Settings) -> Iterator[tuple[str, uvicorn.Server]]:
    """The app under a real uvicorn in a thread, on a socket bound here; its base URL once the port is open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.005)
        yield f"http://{HOST}:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def test_ready_says_503_while_the_models_load_then_200(bow_model: Path, rnn_model: Path, tmp_path: Path) -> None:
    """The port opens before the models are loaded: /ready answers 503 "loading" meanwhile, a request that
    needs a model 503 "loading"; once every model has been tried, 200 with the failed ones and why."""
    models = tmp_path / "models"
    shutil.copytree(bow_model, models / "bow-small")
    (models / "rnn-small").symlink_to(rnn_model, target_is_directory=True)
    (models / "no-manifest").mkdir()
    (models / "no-manifest" / "x.bin").write_bytes(b"x")
    # A big file (sparse: no disk) that the manifest lists: checking its sha256 keeps bow-small loading
    # for about a second.
    padding, size = models / "bow-small" / "padding.bin", 1 << 30
    with open(padding, "wb") as fh:
        fh.truncate(size)
    manifest_path = models / "bow-small" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["padding.bin"] = {"size": size, "sha256": sha256_file(padding)}
    manifest_path.write_text(json.dumps(manifest))

    with _uvicorn(_settings(models, tmp_path)) as (base, _), httpx.Client(base_url=base, trust_env=False,
                                                                          timeout=30) as http:
        r = http.get("/ready")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "loading"
        err = assert_error(http.post("/v1/classify", json={"texts": TEXTS}), 503, "loading", "loading")
        assert err["details"] == {"model": "bow-small"}
        assert http.get("/health").status_code == 200
        deadline = time.monotonic() + 120
        while (r := http.get("/ready")).status_code == 503:
            assert r.json()["status"] == "loading" and time.monotonic() < deadline
            time.sleep(0.05)
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "models": ["bow-small", "rnn-small"], "failed": [
            {"name": "no-manifest",
             "error": "no manifest.json: not a model folder saved by nlp-service (a complete save writes one)"}]}
        assert http.post("/v1/classify", json={"texts": TEXTS}).json()["model"] == "bow-small"
