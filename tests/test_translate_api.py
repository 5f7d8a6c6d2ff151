"""Translation over HTTP (the seq2seq model and a Marian model behind the same endpoint), and the CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nlp_service.api import create_app
from nlp_service.cli import app as cli_app
from nlp_service.config import Settings
from nlp_service.data import PARALLEL_LIBREOFFICE, iter_parallel
from nlp_service.translate import TranslatorModel, import_marian

from .helpers import assert_error, ready_client, save_tiny_marian

TEXTS = ["Pulse el icono para más información.", "Y dijo Dios: Sea la luz.", "Guardar como"]



def test_translate_matches_the_model(client: TestClient, translator_model: Path) -> None:
    direct = TranslatorModel.load(translator_model, device="cpu")
    for beam in (1, 4):
        r = client.post("/v1/translate", json={"texts": TEXTS, "source": "es", "target": "en", "beam_size": beam})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["source"], body["target"]) == ("tr-small", "es", "en")
        assert body["translations"] == direct.translate(TEXTS, beam_size=beam)
    for alpha in (0.0, 2.0):
        r = client.post("/v1/translate", json={"texts": TEXTS, "beam_size": 4, "length_penalty": alpha})
        assert r.json()["translations"] == direct.translate(TEXTS, beam_size=4, length_penalty=alpha)
    # No languages given: the one translator answers; by name too.
    assert client.post("/v1/translate", json={"texts": TEXTS[:1]}).json()["model"] == "tr-small"
    assert client.post("/v1/translate", json={"texts": TEXTS[:1], "model": "tr-small"}).status_code == 200


def test_models_list_translators_with_test_scores(client: TestClient, translator_model: Path) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    tr = models["tr-small"]
    assert tr["kind"] == "translator" and (tr["source"], tr["target"]) == ("es", "en")
    saved = json.loads((translator_model / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert tr["test_metrics"] == {"bleu": saved["bleu"], "chrf": saved["chrf"], "sentences": saved["sentences"]}


def test_bad_input(client: TestClient) -> None:
    url = "/v1/translate"
    assert_error(client.post(url, json={"texts": []}), 422, "validation_error")
    assert_error(client.post(url, json={"texts": ["hola", " "]}), 422, "empty_text")
    err = assert_error(client.post(url, json={"texts": ["hola"] * 9}), 422, "limit_exceeded")
    assert err["details"]["setting"] == "NLP_MAX_TEXTS"
    err = assert_error(client.post(url, json={"texts": ["a" * 2001]}), 422, "limit_exceeded")
    assert err["details"]["setting"] == "NLP_MAX_TEXT_CHARS"
    # Within the character limit but over the model's 60 subword pieces.
    err = assert_error(client.post(url, json={"texts": ["hola", "información " * 40]}), 422, "limit_exceeded")
    assert err["details"]["index"] == 1 and err["details"]["limit"] == 60
    assert err["details"]["pieces"] == err["details"]["got"] > 60  # `pieces`: the name clients had
    assert "subword pieces" in err["message"]
    err = assert_error(client.post(url, json={"texts": ["hola"], "beam_size": 9}), 422, "limit_exceeded")
    assert err["details"]["setting"] == "NLP_MAX_BEAM_SIZE"
    assert_error(client.post(url, json={"texts": ["hola"], "beam_size": 0}), 422, "validation_error")
    assert_error(client.post(url, json={"texts": ["hola"], "max_length": 0}), 422, "validation_error")
    assert_error(client.post(url, json={"texts": ["hola"], "length_penalty": -1}), 422, "validation_error")
    assert_error(client.post(url, json={"texts": ["hola"], "temperature": 1}), 422, "validation_error")
    err = assert_error(client.post(url, json={"texts": ["hola"], "source": "fr", "target": "de"}), 404,
                       "no_translator_for_languages")
    assert err["details"] == {"source": "fr", "target": "de", "available": ["es->en"]}
    assert_error(client.post(url, json={"texts": ["hola"], "model": "tr-small", "target": "fr"}), 422,
                 "language_mismatch")
    assert_error(client.post(url, json={"texts": ["hola"], "model": "bow-small"}), 404, "model_not_found")


def test_concurrent_requests_are_batched_and_answered_in_order(client: TestClient) -> None:
    app = client.app
    expected = {t: client.post("/v1/translate", json={"texts": [t], "beam_size": 2}).json()["translations"][0]
                for t in TEXTS}
    before = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "tr-small")["batching"]

    async def run() -> list[tuple[list[str], dict[str, Any]]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            async def one(texts: list[str]) -> tuple[list[str], dict[str, Any]]:
                r = await ac.post("/v1/translate", json={"texts": texts, "beam_size": 2})
                return texts, r.json()

            return await asyncio.gather(*(one([TEXTS[i % 3], TEXTS[(i + 1) % 3]]) for i in range(24)))

    for texts, body in client.portal.call(run):  # type: ignore[union-attr]
        assert body["translations"] == [expected[t] for t in texts]
    after = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "tr-small")["batching"]
    assert after["items"] - before["items"] == 48
    assert after["batches"] - before["batches"] < 24  # requests were coalesced


# -- the Marian backend ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised Marian model with real SentencePiece vocabularies, saved with
    ``save_pretrained`` exactly as Helsinki-NLP's checkpoints are."""
    return save_tiny_marian(tmp_path_factory.mktemp("marian-src"))


def test_marian_backend_behind_the_same_endpoint(marian_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, MarianMTModel

    models_dir = tmp_path / "models"
    path = import_marian(marian_dir, models_dir, "opus-tiny-es-en", source_lang="es", target_lang="en")
    model = TranslatorModel.load(path, device="cpu")
    assert model.backend == "marian" and model.max_source_tokens == 64
    # Same output as transformers' own generate on the saved model.
    tok = AutoTokenizer.from_pretrained(marian_dir)
    ref = MarianMTModel.from_pretrained(marian_dir).eval()
    batch = tok([TEXTS[0]], return_tensors="pt")
    with torch.inference_mode():
        want = tok.batch_decode(ref.generate(**batch, num_beams=2, max_new_tokens=12, do_sample=False,
                                             length_penalty=0.6), skip_special_tokens=True)
    assert model.translate([TEXTS[0]], beam_size=2, max_length=12) == [w.strip() for w in want]

    settings = Settings(models_dir=models_dir, device="cpu", max_texts=4, default_translator_model="opus-tiny-es-en")
    with ready_client(create_app(settings)) as c:
        r = c.post("/v1/translate", json={"texts": TEXTS, "source": "es", "target": "en", "beam_size": 2})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "opus-tiny-es-en" and len(r.json()["translations"]) == 3
        err = assert_error(c.post("/v1/translate", json={"texts": ["palabra " * 100]}), 422, "limit_exceeded")
        assert err["details"]["limit"] == 64
        info = c.get("/v1/models/opus-tiny-es-en").json()
        assert info["backend"] == "marian" and info["test_metrics"] is None
        err = assert_error(c.post("/v1/translate", json={"texts": TEXTS, "return_attention": True}), 422,
                           "attention_not_supported", "opus-tiny-es-en", "seq2seq")
        assert err["details"] == {"model": "opus-tiny-es-en", "backend": "marian"}


def test_marian_import_errors_are_clear(tmp_path: Path) -> None:
    from nlp_service.artifacts import ArtifactError

    with pytest.raises(ArtifactError, match="cannot load a Marian model"):
        import_marian(tmp_path / "nothing-here", tmp_path / "models", "x", source_lang="es", target_lang="en")


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_trains_on_an_anki_file_and_translates(tmp_path: Path) -> None:
    """`train translator` on a user's Tatoeba-format file, then `translate` with the saved model."""
    pairs = list(itertools.islice(iter_parallel(PARALLEL_LIBREOFFICE, "en", "es"), 300))
    anki = tmp_path / "spa.txt"
    anki.write_text("".join(f"{en}\t{es}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i} (x) & #{i + 1} (y)\n"
                            for i, (en, es) in enumerate(pairs)), encoding="utf-8")
    runner = CliRunner()
    args = ["train", "translator", str(anki), "--name", "anki-en-es", "--source", "en", "--target", "es",
            "--vocab-size", "200", "--embedding-dim", "16", "--hidden-size", "16", "--epochs", "1",
            "--models-dir", str(tmp_path / "models")]
    r = runner.invoke(cli_app, args, env={"NLP_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("{"):])
    assert out["test"]["sentences"] == 15 and "bleu" in out["test"]
    assert r.stderr.splitlines()[-1] == f"plot: {tmp_path / 'models' / 'anki-en-es' / 'training_curve.png'}"
    r = runner.invoke(cli_app, ["translate", "Save the document", "--model", "anki-en-es", "--beam-size", "2",
                                "--models-dir", str(tmp_path / "models")])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip()
    # A wrong direction for an Anki file is a one-line error, not a traceback.
    r = runner.invoke(cli_app, [*args[:5], "--source", "es", "--target", "fr"])
    assert r.exit_code == 1 and "pairs English with one other language" in r.stderr


def test_fetch_tatoeba_offline_fails_fast(tmp_path: Path) -> None:
    import time

    runner = CliRunner()
    start = time.perf_counter()
    r = runner.invoke(cli_app, ["fetch", "tatoeba", "--dest", str(tmp_path), "--url", "http://127.0.0.1:9/spa-eng.zip",
                                "--timeout", "3"])
    assert r.exit_code == 1
    assert "Cannot download the Tatoeba pairs" in r.stderr and "nlp-service train translator" in r.stderr
    assert time.perf_counter() - start < 10
