"""Issue 11's defects, each reproduced over a real server (``nlp-service serve``, uvicorn, real HTTP)
and now refused at the edge or isolated: no request can hurt another."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nlp_service.config import Settings

from .helpers import assert_error
from .test_e2e import run_server
from .test_generate_api import gen_models  # noqa: F401  (a fixture: the tiny GPT-2 generator)

pytestmark = pytest.mark.slow

GEN = "gen-tiny"
TRANSLATION_MAX_COST = 3_000
BATCH_MAX_QUEUE = 16


@pytest.fixture(scope="module")
def http(settings: Settings, models_dir: Path, gen_models: Path,  # noqa: F811
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server with the session's small models and the tiny generator, small limits."""
    folder = tmp_path_factory.mktemp("safety-models")
    for name in ("w2v-small", "bow-small", "rnn-small", "tr-small"):
        (folder / name).symlink_to(models_dir / name, target_is_directory=True)
    (folder / GEN).symlink_to(gen_models / GEN, target_is_directory=True)
    env = {"NLP_DEFAULT_VECTORS_MODEL": "w2v-small", "NLP_DEFAULT_CLASSIFIER_MODEL": "bow-small",
           "NLP_DEFAULT_TRANSLATOR_MODEL": "tr-small", "NLP_DEFAULT_GENERATOR_MODEL": GEN,
           "NLP_TRANSLATION_MAX_COST": str(TRANSLATION_MAX_COST), "NLP_BATCH_MAX_QUEUE": str(BATCH_MAX_QUEUE),
           "NLP_MAX_TEXTS": "16", "NLP_GENERATION_MAX_BATCH": "8", "NLP_GENERATION_MAX_QUEUE": "64"}
    with run_server(folder, tmp_path_factory.mktemp("safety-server"), env) as client:
        yield client


def _concurrently(http: httpx.Client, requests: list[tuple[str, Any]], timeout: float = 60.0
                  ) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=timeout, limits=limits,
                                     trust_env=False) as client:
            return await asyncio.gather(*(client.post(path, json=body) for path, body in requests))

    return asyncio.run(main())


def _raw(http: httpx.Client, path: str, body: str) -> httpx.Response:
    """A body as written (json= cannot encode a lone surrogate; JSON's escape can)."""
    return http.post(path, content=body.encode(), headers={"content-type": "application/json"})


# -- 1. seeds -----------------------------------------------------------------------------------------

def test_a_seed_out_of_range_is_a_422_and_running_generations_finish_whole(http: httpx.Client) -> None:
    """Was: a seed of 2**63 or more raised in the engine step and ended every running generation, which
    came back 200 with 6-10 of their tokens and finish_reason "length"."""
    good = [("/v1/generate", {"inputs": f"En el principio {i}", "model": GEN,
                              "parameters": {"max_new_tokens": 30, "do_sample": True, "seed": i, "details": True}})
            for i in range(20)]
    bad = [("/v1/generate", {"inputs": "Hola", "model": GEN, "parameters": {"do_sample": True, "seed": 2**64}}),
           ("/v1/completions", {"prompt": "Hola", "model": GEN, "seed": 2**64}),
           ("/v1/completions", {"prompt": "Hola", "model": GEN, "seed": -(2**64)})]
    edge = [("/v1/generate", {"inputs": "Hola", "model": GEN,
                              "parameters": {"do_sample": True, "seed": 2**64 - 1, "max_new_tokens": 5}}),
            ("/v1/completions", {"prompt": "Hola", "model": GEN, "seed": 2**63, "max_tokens": 5})]
    responses = _concurrently(http, [*good[:10], *bad, *edge, *good[10:]])
    goods = responses[:10] + responses[15:]
    for r in responses[10:13]:
        assert_error(r, 422, "validation_error", "seed")
    assert [r.status_code for r in responses[13:15]] == [200, 200]
    for r in goods:
        assert r.status_code == 200, r.text
        details = r.json()["details"]
        if details["finish_reason"] == "length":
            assert details["generated_tokens"] == 30


# -- 2. text that is not valid Unicode ------------------------------------------------------------------

SURROGATE = '"\\ud800"'
BAD_TEXT_BODIES = [
    ("/v1/sentiment", f'{{"texts": ["bien", {SURROGATE}]}}', "texts"),
    ("/v1/classify", f'{{"texts": ["bien"], "model": {SURROGATE}}}', "model"),
    ("/v1/translate", f'{{"texts": [{SURROGATE}]}}', "texts"),
    ("/v1/translate", f'{{"texts": ["hola"], "source": {SURROGATE}}}', "source"),
    ("/v1/completions", f'{{"prompt": {SURROGATE}}}', "prompt"),
    ("/v1/completions", f'{{"prompt": "hola", "stop": [{SURROGATE}]}}', "stop"),
    ("/v1/generate", f'{{"inputs": {SURROGATE}}}', "inputs"),
    ("/v1/generate", f'{{"inputs": "hola", "parameters": {{"stop": [{SURROGATE}]}}}}', "stop"),
    ("/v1/similarity", f'{{"word1": {SURROGATE}, "word2": "rey"}}', "word1"),
    ("/v1/neighbors", f'{{"word": {SURROGATE}}}', "word"),
    ("/v1/embeddings/texts", f'{{"texts": [{SURROGATE}]}}', "texts"),
    ("/v1/analogy", f'{{"a": "rey", "b": "reina", "c": {SURROGATE}}}', "c"),
    ("/v1/similarity", f'{{"word1": "rey", "word2": "reina", {SURROGATE}: 1}}', ""),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_TEXT_BODIES,
                         ids=[f"{p}:{f or 'key'}" for p, _, f in BAD_TEXT_BODIES])
def test_a_lone_surrogate_is_a_422_naming_the_field(http: httpx.Client, path: str, body: str, field: str) -> None:
    """Was: 500 on /v1/sentiment, /v1/classify, /v1/translate, /v1/completions and in error messages that
    echo a model or a source."""
    r = _raw(http, path, body)
    assert_error(r, 422, "validation_error", field)
    assert http.get("/health").status_code == 200  # the same keep-alive connection still works


def test_a_bad_text_among_good_ones_fails_alone(http: httpx.Client) -> None:
    """Was: 1 such request among 29 good ones failed their shared micro-batch (91 of 145 good got 500)."""

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30, trust_env=False) as client:
            # 14 + 1: within the queue bound (16 texts), so that all share batches and none gets 429
            good = [client.post("/v1/sentiment", json={"texts": [f"una película muy buena {i}"]}) for i in range(14)]
            bad = client.post("/v1/sentiment", content=b'{"texts": ["\\ud800 mala"]}',
                              headers={"content-type": "application/json"})
            return await asyncio.gather(*good[:7], bad, *good[7:])

    responses = asyncio.run(main())
    assert [r.status_code for r in responses].count(200) == 14
    assert_error(responses[7], 422, "validation_error", "texts")


# -- 3. stop sequences ------------------------------------------------------------------------------------

def test_stop_sequences_are_bounded(http: httpx.Client) -> None:
    """Was: 85,000 stop strings held the event loop for 17.6 s (/health took 17 s meanwhile)."""
    start = time.perf_counter()
    r = http.post("/v1/completions", json={"prompt": "Hola", "model": GEN, "stop": [f"s{i}" for i in range(85_000)]})
    assert time.perf_counter() - start < 5
    err = assert_error(r, 422, "limit_exceeded", "stop")
    assert err["details"]["setting"] == "NLP_GENERATION_MAX_STOP_SEQUENCES"
    r = http.post("/v1/generate", json={"inputs": "Hola", "model": GEN, "parameters": {"stop": ["x" * 300]}})
    assert assert_error(r, 422, "limit_exceeded", "stop[0]")["details"]["setting"] == "NLP_GENERATION_MAX_STOP_CHARS"
    r = http.post("/v1/completions", json={"prompt": "Hola", "model": GEN, "stop": ["a", "b"], "max_tokens": 4})
    assert r.status_code == 200, r.text


# -- 4. bounded translation work ----------------------------------------------------------------------------

def test_a_translation_request_has_a_cost_cap(http: httpx.Client) -> None:
    """Was: 64 texts x beam 8 x max_length 512 took 40 s, and a one-word request behind it waited 41 s."""
    r = http.post("/v1/translate", json={"texts": ["Hola, ¿qué tal?"] * 8, "beam_size": 8, "max_length": 512})
    err = assert_error(r, 422, "limit_exceeded", "beam_size", "max_length")
    assert err["details"] == {"limit": TRANSLATION_MAX_COST, "got": 8 * 8 * 512, "setting": "NLP_TRANSLATION_MAX_COST"}
    r = http.post("/v1/translate", json={"texts": ["Hola"], "beam_size": 2})
    assert r.status_code == 200, r.text


def test_a_full_queue_answers_429_with_retry_after(http: httpx.Client) -> None:
    """Was: translation and classification queues were unbounded; 256 clients never saw a 429."""
    body = {"texts": [f"Pulse el icono número {i} para obtener más información." for i in range(8)], "beam_size": 4}
    responses = _concurrently(http, [("/v1/translate", body)] * 48)
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) > 0 and statuses.count(200) > 0
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert_error(refused, 429, "too_many_requests", "busy")
    assert http.post("/v1/translate", json={"texts": ["Hola"]}).status_code == 200  # and it recovers


# -- 7. odd values ----------------------------------------------------------------------------------------------

def test_a_tiny_temperature_is_greedy_decoding(http: httpx.Client) -> None:
    """Was: temperature 1e-300 gave the last vocabulary token again and again."""
    texts = [http.post("/v1/completions", json={"prompt": "El sol", "model": GEN, "max_tokens": 12,
                                                 "temperature": t, "seed": 3}).json()["choices"][0]["text"]
             for t in (0, 1e-300)]
    assert texts[0] == texts[1]


def test_infinity_and_nan_are_not_numbers(http: httpx.Client) -> None:
    """Was: ``Infinity`` was accepted as a JSON number."""
    for body in ('{"prompt": "Hola", "temperature": Infinity}', '{"prompt": "Hola", "top_p": NaN}'):
        assert_error(_raw(http, "/v1/completions", body), 422, "validation_error")
    assert_error(_raw(http, "/v1/translate", '{"texts": ["hola"], "length_penalty": -Infinity}'), 422,
                 "validation_error", "length_penalty")


def test_a_vector_with_huge_components_still_has_neighbours(http: httpx.Client) -> None:
    """Was: the neighbours of a [1e38] * 100 vector all scored 0.0 (its norm overflowed float32)."""
    dim = http.post("/v1/embeddings/words", json={"words": ["rey"]}).json()["dimensions"]
    found = http.post("/v1/neighbors", json={"vector": [1e38] * dim, "topn": 3}).json()["neighbors"]
    assert len(found) == 3 and all(0 < abs(n["score"]) <= 1.0001 for n in found)
    small = http.post("/v1/neighbors", json={"vector": [1.0] * dim, "topn": 3}).json()["neighbors"]
    assert [n["word"] for n in found] == [n["word"] for n in small]  # the direction is what counts
    r = http.post("/v1/neighbors", content=json.dumps({"vector": [1e39] * dim}),
                  headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error", "vector")
