"""A first start (issue 12): ``serve --build-defaults`` answers at once and builds the missing default
models in the background, each in its own process; a request for one still building gets 503
``model_building`` with its progress and a Retry-After, and the same request succeeds once it is built,
without a restart. The shipped configs take minutes: these tests replace them (``--defaults-dir``) with
tiny ones."""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR, SENTIMENT_ES
from nlp_service.defaults import DEFAULT_MODELS, missing
from nlp_service.errors import ModelBuilding, ModelNotFound
from nlp_service.serving import ModelManager

from .helpers import assert_error
from .test_e2e import HOST, free_port

SIMILARITY = {"word1": "dios", "word2": "señor"}
TEXTS = ["Una película preciosa.", "Aburrida de principio a fin."]


@pytest.fixture(scope="module")
def tiny_defaults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Default-model configs of a few seconds each: w2v-es and sentiment-es on cut data, and a bow-es whose
    data file does not exist (its build fails; the next one is built all the same)."""
    folder = tmp_path_factory.mktemp("defaults")
    corpus, reviews = folder / "corpus.txt", folder / "reviews.tsv"
    with gzip.open(DATASETS_DIR / "corpus_es" / "rv1909.txt.gz", "rt", encoding="utf-8") as src:
        corpus.write_text("".join(itertools.islice(src, 3000)), encoding="utf-8")
    with gzip.open(SENTIMENT_ES, "rt", encoding="utf-8") as src:
        reviews.write_text("".join(itertools.islice(src, 601)), encoding="utf-8")
    (folder / "w2v-es.toml").write_text(
        f'command = "word2vec"\ncorpus = ["{corpus}"]\nvector_size = 16\nmin_count = 2\nepochs = 1\nann = false\n')
    (folder / "bow-es.toml").write_text(f'command = "bow"\ndata = ["{folder / "missing.tsv"}"]\ntask = "sentiment"\n')
    (folder / "sentiment-es.toml").write_text(
        f'command = "rnn"\ndata = ["{reviews}"]\ntask = "sentiment"\nembedding_dim = 16\nhidden_size = 16\n'
        'epochs = 1\nmax_length = 64\n')
    return folder


@contextmanager
def serving(models_dir: Path, workdir: Path, *args: str, env: dict[str, str] | None = None
            ) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    """``python -m nlp_service serve ARGS`` until /health answers; yields a client and the process."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NLP_")}
    environment |= {"NLP_CACHE_DIR": str(workdir / "cache"), "NLP_DEVICE": "cpu", **(env or {})}
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nlp_service", "serve", "--host", HOST, "--port", str(port),
                                 "--models-dir", str(models_dir), *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=workdir, env=environment)
    try:
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=10.0, trust_env=False) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
                try:
                    if client.get("/health", timeout=2.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
                time.sleep(0.05)
            yield client, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.2)
    return result


def assert_building(r: httpx.Response, model: str) -> dict[str, Any]:
    details = assert_error(r, 503, "model_building", repr(model))["details"]
    assert int(r.headers["Retry-After"]) > 0
    assert details["model"] == model and details["state"] in ("waiting", "building")
    assert {"progress", "stage", "elapsed_seconds", "expected_seconds", "remaining_seconds"} <= set(details)
    assert details["elapsed_seconds"] >= 0
    return details


@pytest.mark.slow
def test_first_start_serves_at_once_and_adds_each_model_when_built(tiny_defaults: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    started = time.monotonic()
    with serving(models, tmp_path / "run", "--build-defaults", "--defaults-dir", str(tiny_defaults),
                 env={"NLP_MODELS": '["w2v-es", "bow-es", "sentiment-es"]'}) as (http, proc):
        assert time.monotonic() - started < 30  # the port opens before any model is built
        # Nothing built yet: each request says so, with how far its build has got.
        first = assert_building(http.post("/v1/similarity", json=SIMILARITY), "w2v-es")
        assert first["expected_seconds"] is None  # a replaced config: its build time is not known
        waiting = assert_building(http.post("/v1/sentiment", json={"texts": TEXTS}), "sentiment-es")
        assert waiting["state"] == "waiting" and "w2v-es" in waiting["after"] and waiting["progress"] == 0
        assert_building(http.get("/v1/models/w2v-es"), "w2v-es")
        r = http.get("/ready")
        assert r.status_code == 503 and r.json()["status"] in ("loading", "building"), r.text
        assert r.json()["models"] == []

        # The same request succeeds once the model is built: the same process, no restart.
        answer = wait_for(lambda: (r := http.post("/v1/similarity", json=SIMILARITY)).status_code == 200 and r.json(),
                          "vector answer")
        assert answer["model"] == "w2v-es" and -1 <= answer["similarity"] <= 1
        ready = http.get("/ready")
        assert ready.status_code == 200 and "w2v-es" in ready.json()["models"]  # one model serves: ready
        if ready.json()["status"] == "building":
            assert {b["name"] for b in ready.json()["building"]} <= {"bow-es", "sentiment-es"}

        # A failed build is listed with why (no paths); the builds after it go on.
        body = wait_for(lambda: (r := http.get("/ready").json())["status"] == "ready" and r, "end of the builds")
        assert body["models"] == ["sentiment-es", "w2v-es"] and "building" not in body
        [failed] = body["failed"]
        assert failed["name"] == "bow-es" and "missing.tsv" in failed["error"], failed
        assert str(tiny_defaults) not in failed["error"]
        assert http.post("/v1/sentiment", json={"texts": TEXTS}).json()["model"] == "sentiment-es"
        err = assert_error(http.post("/v1/classify", json={"texts": TEXTS}), 503, "default_model_unavailable")
        assert err["details"]["load_error"] == failed["error"]
        assert "nlp_models_loaded 2.0" in http.get("/metrics").text
        assert proc.poll() is None
    assert (models / "w2v-es" / "manifest.json").is_file() and not (models / "bow-es").exists()


@pytest.mark.slow
def test_without_build_defaults_nothing_is_built(tmp_path: Path) -> None:
    """A plain ``serve`` serves what the folder holds and trains nothing."""
    models = tmp_path / "models"
    with serving(models, tmp_path / "run") as (http, _):
        wait_for(lambda: http.get("/ready").status_code == 200, "readiness", timeout=30)
        assert http.get("/ready").json() == {"status": "ready", "models": [], "failed": []}
        assert_error(http.post("/v1/similarity", json=SIMILARITY), 503, "default_model_unavailable")
    assert not models.exists() or not any(models.iterdir())


def test_build_defaults_needs_one_worker(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--models-dir", str(tmp_path), "--workers", "2", "--build-defaults"],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "--workers 1" in result.stderr and "nlp-service defaults" in result.stderr


def test_missing_defaults_in_build_order(tmp_path: Path) -> None:
    """Quickest useful first: the vectors, then the baseline classifier; ``only`` (the models the server
    would load) limits them; a folder under the name counts as present."""
    settings = Settings(models_dir=tmp_path)
    names = [spec.name for spec in missing(settings)]
    assert names[:2] == ["w2v-es", "bow-es"] and names == [spec.name for spec in DEFAULT_MODELS]
    assert [s.name for s in missing(settings, ["cc-es", "sentiment-es"])] == ["sentiment-es"]
    assert missing(settings, []) == []
    expected = [spec.expected_seconds() for spec in DEFAULT_MODELS]
    assert all(e is not None and e > 0 for e in expected)


class FakeBuilds:
    """Builds as the manager sees them, driven by the test."""

    def __init__(self, plan: dict[str, str]) -> None:
        self.plan = plan
        self.done: set[str] = set()
        self.callbacks: tuple[Callable[[str], object], Callable[[str, str], object]] | None = None
        self.stopped = False

    def planned(self) -> dict[str, str]:
        return dict(self.plan)

    def status(self, name: str) -> dict[str, Any] | None:
        if name in self.done:
            return None
        return {"state": "building", "progress": 0.25, "stage": "training", "elapsed_seconds": 5.0,
                "expected_seconds": 20.0, "remaining_seconds": 15}

    def start(self, built: Callable[[str], object], failed: Callable[[str, str], object]) -> None:
        self.callbacks = (built, failed)

    def stop(self) -> None:
        self.stopped = True


def test_manager_adds_built_models_at_runtime(bow_model: Path, tmp_path: Path) -> None:
    """In process: 503 model_building until built, then served; a failed build is failed with a public reason
    (no paths); of_kind is incomplete while a model of its kind builds."""
    import asyncio

    from nlp_service.serving._metrics import MODELS_LOADED

    models = tmp_path / "models"
    models.mkdir()
    manager = ModelManager(Settings(models_dir=models, cache_dir=tmp_path / "c", device="cpu"))
    builds = FakeBuilds({"bow-es": "classifier", "sentiment-es": "classifier"})
    manager.build_in_background(builds)
    manager.start()
    assert manager.wait_until_ready(30) and builds.callbacks is not None
    built, failed = builds.callbacks
    with pytest.raises(ModelBuilding) as info:
        manager.get("classifier", None, "bow-es")
    assert info.value.details["progress"] == 0.25 and info.value.details["model"] == "bow-es"
    with pytest.raises(ModelBuilding):
        manager.of_kind("classifier")
    assert [b["name"] for b in manager.builds()] == ["bow-es", "sentiment-es"]

    shutil.copytree(bow_model, models / "bow-es")
    builds.done.add("bow-es")
    built("bow-es")
    assert manager.get("classifier", None, "bow-es").kind == "classifier"
    assert MODELS_LOADED._value.get() == 1  # type: ignore[attr-defined]
    builds.done.add("sentiment-es")
    failed("sentiment-es", f"no such file: {tmp_path}/reviews.tsv")
    assert manager.building == {} and "building" not in manager.describe()
    assert "reviews.tsv" in manager.failed["sentiment-es"] and str(tmp_path) not in manager.failed["sentiment-es"]
    with pytest.raises(ModelNotFound):
        manager.get("classifier", "sentiment-es")
    assert list(manager.of_kind("classifier")) == ["bow-es"]
    asyncio.run(manager.close())
    assert builds.stopped
