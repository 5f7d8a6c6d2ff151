"""The HTTP client (``nlp_service.Client``, ``AsyncClient``) against the real server over real HTTP (uvicorn in a
thread, small real models of every kind saved under the default names): every method, sync and async, gives
what the Python API gives for the same model; error answers are the package's exceptions with the server's
message; API keys, the rate limit, streams; and the README's examples of the client and the library run as
written."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import nlp_service
from nlp_service import AsyncClient, Client
from nlp_service.api import create_app
from nlp_service.api.errors import STATUS, error_body
from nlp_service.client import AuthenticationError, ServiceError
from nlp_service.config import Settings

from .helpers import modules_loaded_by, save_tiny_generator
from .test_architecture import ROOT, imported_modules, module_name
from .test_operation import serving

# What nlp_service.load finds under each default name (the session's models, tests/conftest.py), and ft-lee
# (fastText, with subwords).
DEFAULT_NAMES = {"w2v-es": "w2v_model", "ft-lee": "ft_model", "bow-es": "bow_model", "sentiment-es": "rnn_model",
                 "translate-es-en": "translator_model"}
GENERATOR = "gpt2-es"
TEXTS = ["Y dijo Dios: Sea la luz.", "el rey de Israel", "xyzzy qwrtp"]  # the last: no known token
PROMPT = "Más vale"
MAX_TEXTS = 8


@pytest.fixture(scope="module")
def default_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<workdir>/models``: the session's models (links) under the default names, and a tiny GPT-2 as gpt2-es,
    so that the README's examples run as written in ``<workdir>``."""
    folder = tmp_path_factory.mktemp("client-workdir") / "models"
    folder.mkdir()
    for name, fixture in DEFAULT_NAMES.items():
        (folder / name).symlink_to(request.getfixturevalue(fixture), target_is_directory=True)
    save_tiny_generator(folder, GENERATOR, positions=64, never_eos=True)  # every request runs its max_new_tokens
    return folder


def server_settings(folder: Path, **values: Any) -> Settings:
    return Settings(models_dir=folder, cache_dir=folder.parent / "cache", device="cpu", preload_ann=False,
                    max_texts=MAX_TEXTS, max_words=50, max_topn=100, generation_max_batch=4,
                    generation_max_input_tokens=40, generation_max_total_tokens=64, **values)


@pytest.fixture(scope="module")
def url(default_models: Path) -> Iterator[str]:
    settings = server_settings(default_models)
    with serving(create_app(settings), settings) as base:
        with Client(base) as client:
            client.wait_until_ready(timeout=120)
        yield base


@pytest.fixture(scope="module")
def local(default_models: Path) -> dict[str, Any]:
    """The same models opened with the Python API: what the answers must equal."""
    return {name: nlp_service.load(default_models / name, device="cpu") for name in [*DEFAULT_NAMES, GENERATOR]}


# ---- a light client ---------------------------------------------------------------------------------


def test_importing_the_client_loads_neither_the_server_nor_the_models() -> None:
    heavy = ["fastapi", "starlette", "uvicorn", "torch", "gensim", "spacy", "sklearn", "transformers", "numpy"]
    assert modules_loaded_by("import nlp_service.client; from nlp_service import AsyncClient, Client", heavy) == []


def test_the_client_imports_httpx_the_standard_library_and_the_errors_only() -> None:
    allowed = {"nlp_service.errors", "nlp_service._version"}
    problems = []
    for path in sorted((ROOT / "nlp_service" / "client").glob("*.py")):
        module = module_name(path)
        for line, target in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            top = target.split(".")[0]
            if top == "nlp_service":
                ok = target in allowed or target.startswith("nlp_service.client")
            else:
                ok = top in sys.stdlib_module_names or top in ("httpx", "__future__")
            if not ok:
                problems.append(f"{module}:{line} imports {target}")
    assert problems == []


# ---- every method, against the Python API --------------------------------------------------------


def same_predictions(answer: nlp_service.client.Classification, predictions: list[Any]) -> bool:
    """Labels equal; probabilities to 1e-6 (batched with other texts, a recurrent network's last bits move)."""
    return [r.label for r in answer.results] == [p.label for p in predictions] and all(
        r.probabilities.keys() == p.probabilities.keys()
        and np.allclose(list(r.probabilities.values()), list(p.probabilities.values()), rtol=0, atol=1e-6)
        for r, p in zip(answer.results, predictions, strict=True))


def test_service_methods(url: str, default_models: Path) -> None:
    names = sorted(p.name for p in default_models.iterdir())
    with Client(url) as client:
        assert client.health() is True
        readiness = client.ready()
        assert (readiness.ready, readiness.status, sorted(readiness.models), readiness.failed) == (
            True, "ready", names, [])
        info = client.info()
        assert info.version == nlp_service.__version__ and sorted(info.models) == names
        assert info.limits["max_texts"] == MAX_TEXTS and "torch" in info.libraries
        listed = client.models()
        kinds = {m.name: m.kind for m in listed.models}
        assert kinds == {name: nlp_service.read_manifest(default_models / name).kind for name in names}
        assert listed.failed == [] and listed.building == []
        one = client.model("w2v-es")
        assert one == next(m for m in listed.models if m.name == "w2v-es")
        assert one.description["dimensions"] == 32


def test_vector_methods(url: str, local: dict[str, Any]) -> None:
    w2v, ft = local["w2v-es"], local["ft-lee"]
    with Client(url) as client:
        found = client.similarity("rey", "tierra")
        assert (found.model, found.word1, found.word2) == ("w2v-es", "rey", "tierra")
        assert found.similarity == w2v.similarity("rey", "tierra")

        def pairs(answer: nlp_service.client.Neighbors) -> list[tuple[str, float]]:
            return [(n.word, n.score) for n in answer.neighbors]

        by_word = client.neighbors("rey", topn=7)
        assert (by_word.model, by_word.approximate) == ("w2v-es", False)
        assert pairs(by_word) == w2v.most_similar("rey", topn=7)
        assert pairs(client.neighbors(positive=["rey", "mujer"], negative=["hombre"], topn=5)) \
            == w2v.most_similar(["rey", "mujer"], ["hombre"], topn=5)
        vector = w2v.word_vectors(["tierra"])[0][0]
        assert pairs(client.neighbors(vector=vector, topn=5)) == w2v.most_similar(vector, topn=5)
        approximate = client.neighbors("dios", topn=5, approximate=True)
        assert approximate.approximate and pairs(approximate) == w2v.most_similar("dios", topn=5, approximate=True)
        assert pairs(client.neighbors("government", topn=5, model="ft-lee")) == ft.most_similar("government", topn=5)

        analogy = client.analogy("hombre", "rey", "mujer", topn=3, method="3cosmul")
        assert (analogy.model, analogy.method) == ("w2v-es", "3cosmul")
        assert [(a.word, a.score) for a in analogy.answers] == [
            (n.word, n.score) for n in w2v.analogy("hombre", "rey", "mujer", topn=3, method="3cosmul")]

        words = client.word_vectors(["rey", "tierra"], normalize=True)
        assert (words.model, words.dimensions) == ("w2v-es", 32)
        expected = w2v.word_vectors(["rey", "tierra"], normalized=True)
        assert [(v.word, v.source) for v in words.vectors] == [("rey", "vocabulary"), ("tierra", "vocabulary")]
        assert all(np.array_equal(v.vector, e) for v, (e, _) in zip(words.vectors, expected, strict=True))
        unseen = client.word_vectors(["governmentality"], model="ft-lee").vectors[0]  # fastText subwords
        assert unseen.source == "subwords" and np.array_equal(unseen.vector, ft.word_vectors(["governmentality"])[0][0])

        texts = client.text_vectors(TEXTS)
        assert (texts.model, texts.dimensions) == ("w2v-es", 32)
        for embedding, (vec, tokens, oov) in zip(texts.embeddings, w2v.text_vectors(TEXTS), strict=True):
            assert (embedding.tokens, embedding.oov) == (tokens, oov)
            assert np.array_equal(embedding.vector, vec) if vec is not None else embedding.vector is None
        assert texts.embeddings[-1].vector is None
        normalized = client.text_vectors(TEXTS[:1], normalize=True).embeddings[0].vector
        assert np.array_equal(normalized, w2v.encode(TEXTS[0], normalize=True))


def test_classification_and_translation_methods(url: str, local: dict[str, Any]) -> None:
    with Client(url) as client:
        classified = client.classify(TEXTS)  # the default classifier, bow-es
        assert classified.model == "bow-es" and same_predictions(classified, local["bow-es"].predict(TEXTS))
        sentiment = client.sentiment(TEXTS)  # the default sentiment model
        assert sentiment.model == "sentiment-es" and same_predictions(sentiment, local["sentiment-es"].predict(TEXTS))
        assert same_predictions(client.classify(TEXTS, model="sentiment-es"), local["sentiment-es"].predict(TEXTS))

        translated = client.translate(TEXTS[:2], source="es", target="en", beam_size=3)
        assert (translated.model, translated.source, translated.target) == ("translate-es-en", "es", "en")
        assert translated.translations == local["translate-es-en"].translate(TEXTS[:2], beam_size=3)
        assert client.translate(TEXTS[:2], beam_size=1, max_length=5).translations \
            == local["translate-es-en"].translate(TEXTS[:2], beam_size=1, max_length=5)
        # Why this label and attention, as the playground asks for them.
        explained = client.sentiment(TEXTS[:2], explain=True)
        assert same_predictions(explained, local["sentiment-es"].predict(TEXTS[:2]))
        for text, result in zip(TEXTS[:2], explained.results, strict=True):
            assert result.explanation and all(text[t.start:t.end].lower() == t.token for t in result.explanation)
        assert client.sentiment(TEXTS[:1]).results[0].explanation is None
        attended = client.translate(TEXTS[:2], source="es", target="en", beam_size=3, return_attention=True)
        assert attended.translations == translated.translations and attended.attention is not None
        for attention in attended.attention:
            assert len(attention.weights) == len(attention.target_tokens)
            assert all(abs(sum(row) - 1) < 1e-4 and len(row) == len(attention.source_tokens)
                       for row in attention.weights)
        assert translated.attention is None


def test_generation_methods(url: str, local: dict[str, Any]) -> None:
    generator = local[GENERATOR]
    with Client(url) as client:
        greedy = client.generate(PROMPT, max_new_tokens=12, details=True)
        assert greedy.generated_text == generator.generate(PROMPT, max_new_tokens=12)
        details = greedy.details
        assert details is not None and (details.finish_reason, details.generated_tokens, details.seed) == (
            "length", 12, None)
        assert "".join(t.text for t in details.tokens) == greedy.generated_text and len(details.tokens) == 12
        assert client.generate(PROMPT, max_new_tokens=12).details is None
        assert client.generate(PROMPT, max_new_tokens=12, return_full_text=True).generated_text \
            == PROMPT + greedy.generated_text

        sampled = client.generate(PROMPT, max_new_tokens=12, do_sample=True, top_k=40, seed=5, details=True)
        assert sampled.details is not None and sampled.details.seed == 5
        assert sampled.generated_text == generator.generate(PROMPT, max_new_tokens=12, do_sample=True, top_k=40,
                                                            seed=5)
        stop = greedy.generated_text[4:6]
        stopped = client.generate(PROMPT, max_new_tokens=12, stop=[stop], details=True)
        assert stopped.generated_text == greedy.generated_text[: greedy.generated_text.index(stop)]
        assert stopped.details is not None and stopped.details.finish_reason == "stop_sequence"

        events = list(client.generate_stream(PROMPT, max_new_tokens=12))
        assert len(events) == 12 and "".join(e.token.text for e in events) == greedy.generated_text
        assert [e.token.id for e in events] == [t.id for t in details.tokens]
        assert all(e.details is None and e.generated_text is None for e in events[:-1])
        last = events[-1]
        assert last.generated_text == greedy.generated_text
        assert last.details is not None
        assert (last.details.finish_reason, last.details.generated_tokens) == ("length", 12)
        # Leaving a stream early closes it; the client goes on.
        for _ in client.generate_stream(PROMPT, max_new_tokens=50):
            break
        assert client.generate(PROMPT, max_new_tokens=12).generated_text == greedy.generated_text


def test_the_async_client_gives_what_the_sync_one_gives(url: str) -> None:
    def calls(client: Any) -> list[Any]:
        return [client.health(), client.ready(), client.info(), client.model("w2v-es"),
                client.similarity("rey", "tierra"), client.neighbors("rey", topn=5),
                client.neighbors(positive=["rey", "mujer"], negative=["hombre"], topn=3),
                client.analogy("hombre", "rey", "mujer"), client.word_vectors(["rey"], normalize=True),
                client.text_vectors(TEXTS), client.classify(TEXTS[:2], model="bow-es"),
                client.translate(TEXTS[:2], source="es", target="en", beam_size=2),
                client.generate(PROMPT, max_new_tokens=10, details=True)]

    async def run() -> tuple[list[Any], list[str], list[str], Any]:
        async with AsyncClient(url) as client:
            answers = await asyncio.gather(*calls(client))
            models = [m.name for m in (await client.models()).models]
            tokens = [event.token.text async for event in client.generate_stream(PROMPT, max_new_tokens=10)]
            sentiment = await client.sentiment(TEXTS[:2])
            assert (await client.wait_until_ready(timeout=5)).ready
        return answers, models, tokens, sentiment

    answers, models, tokens, sentiment = asyncio.run(run())
    with Client(url) as client:
        expected = calls(client)
        assert models == [m.name for m in client.models().models]
        assert "".join(tokens) == expected[-1].generated_text
        assert sentiment.model == "sentiment-es" and [r.label for r in sentiment.results] == [
            r.label for r in client.sentiment(TEXTS[:2]).results]
    info, expected_info = answers.pop(2), expected.pop(2)
    assert (info.version, info.models, info.limits) == (expected_info.version, expected_info.models,
                                                        expected_info.limits)
    assert answers == expected


# ---- errors ------------------------------------------------------------------------------------


def test_error_answers_are_the_package_exceptions_with_the_server_message(url: str) -> None:
    with Client(url) as client:
        with pytest.raises(nlp_service.ModelNotFound) as unknown:
            client.similarity("rey", "tierra", model="no-such-model")
        error = unknown.value
        assert isinstance(error, ServiceError) and (error.status, error.code) == (404, "model_not_found")
        assert "no-such-model" in error.message and "w2v-es" in error.details["available"]
        assert error.request_id and error.retry_after is None
        with pytest.raises(nlp_service.ModelNotFound):
            client.model("no-such-model")

        with pytest.raises(nlp_service.NotFound) as missing:
            client.similarity("rey", "xyzzyq")
        assert not isinstance(missing.value, nlp_service.ModelNotFound)
        assert (missing.value.code, missing.value.details["words"]) == ("word_not_found", ["xyzzyq"])
        assert "xyzzyq" in str(missing.value)
        with pytest.raises(nlp_service.NotFound, match="en") as no_translator:
            client.translate(["hola"], source="en", target="fr")
        assert no_translator.value.code == "no_translator_for_languages"

        with pytest.raises(nlp_service.LimitExceeded) as over:
            client.classify(["hola"] * (MAX_TEXTS + 1))
        assert (over.value.status, over.value.limit, over.value.got, over.value.setting) == (
            422, MAX_TEXTS, MAX_TEXTS + 1, "NLP_MAX_TEXTS")
        with pytest.raises(nlp_service.LimitExceeded, match="total tokens") as too_long:
            client.generate(PROMPT, max_new_tokens=100)
        assert too_long.value.setting == "NLP_GENERATION_MAX_TOTAL_TOKENS"
        with pytest.raises(nlp_service.InvalidInput) as invalid:
            client.neighbors("rey", topn=0)
        assert not isinstance(invalid.value, nlp_service.LimitExceeded)
        assert (invalid.value.status, invalid.value.code) == (422, "validation_error")
        assert "topn" in invalid.value.message
        with pytest.raises(nlp_service.InvalidInput, match="exactly one"):
            client.neighbors()

        stream = client.generate_stream(PROMPT, model="no-such-model")
        with pytest.raises(nlp_service.ModelNotFound):  # refused before the stream begins
            next(stream)
        assert client.health()

    async def run() -> None:
        async with AsyncClient(url) as client:
            with pytest.raises(nlp_service.ModelNotFound, match="no-such-model"):
                await client.neighbors("rey", model="no-such-model")
            with pytest.raises(nlp_service.LimitExceeded):
                await client.sentiment(["hola"] * (MAX_TEXTS + 1))
            with pytest.raises(nlp_service.LimitExceeded):
                async for _ in client.generate_stream(PROMPT, max_new_tokens=100):
                    pass

    asyncio.run(run())


def test_keys_rate_limit_and_a_default_model_that_is_not_loaded(default_models: Path) -> None:
    """A server with a key, a rate limit of 3 requests a minute, and only w2v-es loaded."""
    settings = server_settings(default_models, api_keys="sesamo", rate_limit_per_minute=3, models=["w2v-es"])
    with serving(create_app(settings), settings) as base, Client(base) as anonymous, \
            Client(base, api_key="wrong") as wrong, Client(base, api_key="sesamo") as client:
        assert anonymous.health() and anonymous.wait_until_ready(timeout=60).models == ["w2v-es"]  # probes: no key
        for refused in (anonymous, wrong):
            with pytest.raises(AuthenticationError) as unauthorized:
                refused.similarity("rey", "tierra")
            assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
        assert client.similarity("rey", "tierra").model == "w2v-es"
        with pytest.raises(nlp_service.Unavailable) as unavailable:  # the default classifier is not loaded
            client.classify(["hola"])
        assert (unavailable.value.status, unavailable.value.code) == (503, "default_model_unavailable")
        assert "bow-es" in unavailable.value.message
        client.health()  # probes are not counted
        client.neighbors("rey")
        with pytest.raises(nlp_service.Overloaded) as limited:
            client.similarity("rey", "tierra")
        assert limited.value.status == 429 and limited.value.retry_after is not None and limited.value.retry_after >= 1

        async def run() -> None:
            async with AsyncClient(base, api_key="wrong") as client:
                with pytest.raises(AuthenticationError):
                    await client.models()

        asyncio.run(run())


@pytest.mark.parametrize(("family", "status"), [*STATUS, (nlp_service.ModelNotFound, 404),
                                                (nlp_service.LimitExceeded, 422)])
def test_every_status_of_the_server_table_is_its_exception(family: type[nlp_service.NLPServiceError],
                                                           status: int) -> None:
    """The server's table (api/errors.py) read backwards, and the two codes with classes of their own: an answer
    of each family's status and code is an instance of that family, with its Retry-After."""
    from nlp_service.client._errors import error_from_response  # white-box: the mapping alone

    response = httpx.Response(status, json=error_body(family.code, "why", {"limit": 3, "got": 4}),
                              headers={"Retry-After": "7"})
    error = error_from_response(response)
    assert isinstance(error, family) and isinstance(error, ServiceError)
    assert (error.status, error.code, error.message, error.retry_after) == (status, family.code, "why", 7.0)


def test_a_stream_ending_in_an_error_or_cut_short_raises() -> None:
    from nlp_service.client._stream import EventReader  # white-box: the server sends neither on purpose

    response = httpx.Response(200, headers={"x-request-id": "r-1"})
    token = 'data: {"token": {"id": 5, "text": "a", "logprob": null, "special": false}, "generated_text": null, ' \
            '"details": null}'
    reader = EventReader(response)
    assert reader.feed(token) is not None and reader.feed("") is None
    with pytest.raises(ServiceError, match="ended before its last event"):
        reader.end()
    with pytest.raises(ServiceError, match="engine failed") as failed:
        reader.feed('data: {"error": "the engine failed", "error_type": "generation"}')
    assert (failed.value.status, failed.value.code, failed.value.request_id) == (500, "generation", "r-1")
    with pytest.raises(nlp_service.Overloaded):
        reader.feed('data: {"error": "busy", "error_type": "overloaded"}')


# ---- the README's examples ---------------------------------------------------------------------


README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8000"


def readme_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python: the library and the client"):text.index("## Command line")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_examples_run(url: str, default_models: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Each example as written, in a folder whose ``models/`` holds the test models under the default names, with
    the server's address in place of the default one."""
    examples = readme_examples()
    assert len(examples) >= 4 and any("nlp_service.load" in e for e in examples) and any(
        "AsyncClient" in e for e in examples)
    for name in [k for k in os.environ if k.startswith("NLP_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(default_models.parent)
    for example in examples:
        assert "nlp_service.load" in example or README_URL in example
        exec(compile(example.replace(README_URL, url), str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "model_not_found" in printed and "NLP_MAX_TEXTS" in printed
    assert (default_models.parent / "w2v-es.bin").is_file()
