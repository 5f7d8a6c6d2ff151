"""Generation over HTTP: TGI's /v1/generate and /v1/generate_stream, OpenAI's /v1/completions (with the
official ``openai`` client against a live server), limits, queueing and disconnects."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from nlp_service.api import create_app
from nlp_service.config import Settings
from nlp_service.generate import GeneratorModel, GPT2Engine, SamplingParams, save_generator
from nlp_service.serving import Detokenizer, GenerationFailed, GenerationWorker, first_stop

from .helpers import ready_client, save_tiny_generator
from .test_e2e import run_server


@pytest.fixture(scope="module")
def gen_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random GPT-2 with a real byte-level BPE tokenizer (trained on Spanish proverbs)."""
    folder = tmp_path_factory.mktemp("gen-models")
    save_tiny_generator(folder, "gen-tiny", positions=64)
    return folder


@pytest.fixture(scope="module")
def gen_settings(gen_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(models_dir=gen_models, cache_dir=tmp_path_factory.mktemp("gen-cache"), device="cpu",
                    default_generator_model="gen-tiny",
                    generation_max_batch=4, generation_max_queue=2, generation_max_input_tokens=40,
                    generation_max_total_tokens=60)


@pytest.fixture(scope="module")
def gen_client(gen_settings: Settings) -> Iterator[TestClient]:
    with ready_client(create_app(gen_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def reference(gen_models: Path) -> GeneratorModel:
    return GeneratorModel.load(gen_models / "gen-tiny", device="cpu", dtype="float32")


def _greedy_text(ref: GeneratorModel, prompt: str, n: int) -> str:
    ids = ref.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = ref.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=n, do_sample=False, pad_token_id=ref.tokenizer.eos_token_id)
    new = out[0, len(ids):].tolist()
    eos = ref.tokenizer.eos_token_id
    if eos in new:
        new = new[: new.index(eos)]
    return ref.tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_generate_greedy_matches_transformers(gen_client: TestClient, reference: GeneratorModel) -> None:
    r = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 12,
                                                                                   "details": True}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generated_text"] == _greedy_text(reference, "Más vale", 12)
    assert body["details"]["finish_reason"] in ("length", "eos_token")
    assert "".join(t["text"] for t in body["details"]["tokens"]) == body["generated_text"]
    full = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {
        "max_new_tokens": 12, "return_full_text": True}}).json()
    assert full["generated_text"] == "Más vale" + body["generated_text"] and "details" not in full


def test_seeded_sampling_is_reproducible(gen_client: TestClient) -> None:
    body = {"inputs": "La vida", "parameters": {"max_new_tokens": 15, "do_sample": True, "top_p": 0.9,
                                                "temperature": 0.8, "seed": 42}}
    a = gen_client.post("/v1/generate", json=body).json()["generated_text"]
    b = gen_client.post("/v1/generate", json=body).json()["generated_text"]
    body["parameters"]["seed"] = 43
    c = gen_client.post("/v1/generate", json=body).json()["generated_text"]
    assert a == b and a != c
    # Without a seed, the details say which one was drawn: sending it back gives the same text.
    del body["parameters"]["seed"]
    body["parameters"]["details"] = True
    first = gen_client.post("/v1/generate", json=body).json()
    seed = first["details"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**53
    body["parameters"]["seed"] = seed
    assert gen_client.post("/v1/generate", json=body).json()["generated_text"] == first["generated_text"]
    greedy = {"inputs": "La vida", "parameters": {"max_new_tokens": 3, "details": True}}
    assert gen_client.post("/v1/generate", json=greedy).json()["details"].get("seed") is None


def test_stream_events_add_up_to_the_text(gen_client: TestClient) -> None:
    body = {"inputs": "Más vale", "parameters": {"max_new_tokens": 10}}
    whole = gen_client.post("/v1/generate", json=body).json()["generated_text"]
    with gen_client.stream("POST", "/v1/generate_stream", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert "".join(e["token"]["text"] for e in events) == whole
    assert events[-1]["generated_text"] == whole and events[-1]["details"]["generated_tokens"] == len(events)
    assert all(e["generated_text"] is None for e in events[:-1])


def test_stop_sequences_end_the_text_before_them(gen_client: TestClient, reference: GeneratorModel) -> None:
    free = _greedy_text(reference, "Más vale", 20)
    stop = free[5:8]  # three characters the model is known to produce
    assert len(stop) == 3 and free.index(stop) >= 1
    cut = free[: free.index(stop)]
    r = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {
        "max_new_tokens": 20, "stop": [stop], "details": True}})
    assert r.json()["generated_text"] == cut and r.json()["details"]["finish_reason"] == "stop_sequence"
    with gen_client.stream("POST", "/v1/generate_stream", json={"inputs": "Más vale", "parameters": {
            "max_new_tokens": 20, "stop": [stop]}}) as s:
        events = [json.loads(line[5:]) for line in s.iter_lines() if line.startswith("data:")]
    assert "".join(e["token"]["text"] for e in events) == cut


def test_limits(gen_client: TestClient) -> None:
    def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        return r.json()["error"]

    long_prompt = "palabra " * 60
    err = error(gen_client.post("/v1/generate", json={"inputs": long_prompt}), 422, "limit_exceeded")
    assert err["details"]["limit"] == 40
    err = error(gen_client.post("/v1/generate", json={"inputs": "hola", "parameters": {"max_new_tokens": 59}}),
                422, "limit_exceeded")
    assert "total tokens" in err["message"] and err["details"]["limit"] == 60
    error(gen_client.post("/v1/generate", json={"inputs": ""}), 422, "validation_error")
    error(gen_client.post("/v1/generate", json={"inputs": "x", "parameters": {"top_p": 1.5}}), 422,
          "validation_error")
    error(gen_client.post("/v1/generate", json={"inputs": "x", "parameters": {"best_of": 2}}), 422,
          "validation_error")
    for body in ({"n": 17}, {"prompt": []}, {"n": 2, "best_of": 1}, {"suffix": "y"}, {"logprobs": 21},
                 {"best_of": 3, "stream": True}, {"prompt": ["a"] * 9, "n": 2}, {"logit_bias": {"x": 1}}):
        err = error(gen_client.post("/v1/completions", json={"prompt": "x", **body}), 422, "validation_error")
        assert next(iter(body)) in err["message"] or "prompts x best_of" in err["message"], err
    error(gen_client.post("/v1/generate", json={"inputs": "x", "model": "nope"}), 404, "model_not_found")


def test_full_queue_gets_429_and_every_admitted_request_finishes(gen_client: TestClient) -> None:
    """4 slots + 2 queue places: of 12 simultaneous long requests 6 are admitted, 6 get 429 + Retry-After."""
    app = gen_client.app

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as ac:
            body = {"inputs": "Más vale", "parameters": {"max_new_tokens": 50}}
            return await asyncio.gather(*(ac.post("/v1/generate", json=body) for _ in range(12)))

    responses = gen_client.portal.call(run)  # type: ignore[union-attr]
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 6 and set(codes) <= {200, 429}
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected and all(r.headers["retry-after"] == "1" for r in rejected)
    assert rejected[0].json()["error"]["code"] == "too_many_requests"


def test_engine_frees_slots_of_cancelled_streams(reference: GeneratorModel) -> None:
    """A consumer that stops reading (a client that went away) frees its slot at the next step."""
    worker = GenerationWorker(reference.model, reference.tokenizer, device="cpu", max_slots=1, max_queue=0,
                              max_input_tokens=40, max_total_tokens=60)
    ids = worker.encode("Más vale")

    async def scenario() -> str:
        stream = worker.stream(ids, SamplingParams(max_new_tokens=50, ignore_eos=True))
        await anext(stream)
        await stream.aclose()  # what the server does when the client disconnects
        pieces = [piece async for piece in worker.stream(ids, SamplingParams(max_new_tokens=5))]
        return pieces[-1].finish_reason

    try:
        assert asyncio.run(scenario()) in ("length", "eos")
        assert worker.stats["requests"] == 2 and worker.stats["rejected"] == 0
    finally:
        worker.close()


@pytest.mark.slow
def test_openai_client_against_a_live_server(gen_models: Path, reference: GeneratorModel,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    openai = pytest.importorskip("openai")
    with run_server(gen_models, tmp_path_factory.mktemp("gen-server"),
                    {"NLP_DEFAULT_GENERATOR_MODEL": "gen-tiny"}) as http:
        client = openai.OpenAI(base_url=str(http.base_url) + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["gen-tiny"]
        done = client.completions.create(model="gen-tiny", prompt="Más vale", max_tokens=12, temperature=0)
        assert done.choices[0].text == _greedy_text(reference, "Más vale", 12)
        assert done.choices[0].finish_reason in ("length", "stop")
        assert done.usage is not None and done.usage.prompt_tokens == len(reference.tokenizer("Más vale")["input_ids"])
        chunks = list(client.completions.create(model="gen-tiny", prompt="Más vale", max_tokens=12, temperature=0,
                                                stream=True))
        assert "".join(c.choices[0].text for c in chunks) == done.choices[0].text
        assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason
        with pytest.raises(openai.UnprocessableEntityError):
            client.completions.create(model="gen-tiny", prompt="palabra " * 60, max_tokens=5)
        # A streaming client that disconnects mid-stream: the server goes on serving others.
        with httpx.stream("POST", str(http.base_url) + "/v1/generate_stream", timeout=30,
                          json={"inputs": "Más vale", "parameters": {"max_new_tokens": 50}}) as r:
            next(r.iter_lines())
        again = client.completions.create(model="gen-tiny", prompt="Más vale", max_tokens=12, temperature=0)
        assert again.choices[0].text == done.choices[0].text
        models = http.get("/v1/models").json()["models"]
        assert models[0]["engine"]["requests"] >= 4


def test_engine_runs_models_saved_by_the_pipeline(reference: GeneratorModel) -> None:
    ids = reference.tokenizer("La vida", add_special_tokens=False)["input_ids"]
    ours = GPT2Engine(reference.model, max_slots=2).generate([ids], SamplingParams(max_new_tokens=8))[0]
    eos = reference.tokenizer.eos_token_id
    text = reference.tokenizer.decode([t for t in ours if t != eos], skip_special_tokens=True,
                                      clean_up_tokenization_spaces=False)
    assert text == _greedy_text(reference, "La vida", 8)


def test_first_stop_finds_the_earliest_stop_and_ignores_empty_ones() -> None:
    assert first_stop("uno. dos! tres.", ["!", "."]) == 3
    assert first_stop("uno dos", ["", "tres"]) is None  # an empty stop sequence stops nothing


def test_detokenizer_streams_exact_text_across_split_characters(reference: GeneratorModel) -> None:
    """Pieces decoded token by token add up to the text, and a character whose bytes span several
    tokens (an emoji the vocabulary never merged) is never emitted half-made."""
    text = " ¿Qué tal? 😀 ñandú, 中文."
    ids = reference.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # the rare characters really are split into byte tokens
    detok = Detokenizer(reference.tokenizer)
    seen = []
    for token in ids:
        detok.add(token)
        seen.append(detok.emitted)
        assert "\ufffd" not in detok.emitted
    assert detok.emitted == text
    assert any(a == b for a, b in itertools.pairwise(seen))  # something was held back a step


def test_a_failing_step_ends_every_open_stream_and_the_worker_keeps_serving(reference: GeneratorModel) -> None:
    """Fault injection: the third engine step raises after it has run (one request finished inside it,
    its event lost with the exception). Every open stream ends with :class:`GenerationFailed` (issue 11:
    it used to end as a success cut short, finish reason "length" over HTTP) after the pieces it had; the
    next request is served normally."""
    worker = GenerationWorker(reference.model, reference.tokenizer, device="cpu", max_slots=2, max_queue=2,
                              max_input_tokens=40, max_total_tokens=60)
    real_step, calls = worker.engine.step, itertools.count(1)

    def failing_step() -> Any:
        events = real_step()
        if next(calls) == 3:
            raise RuntimeError("injected failure")
        return events

    worker.engine.step = failing_step  # type: ignore[method-assign]
    ids = worker.encode("Más vale")

    async def collect(n: int) -> tuple[list[Any], BaseException | None]:
        pieces: list[Any] = []
        try:
            async for piece in worker.stream(ids, SamplingParams(max_new_tokens=n, ignore_eos=True)):
                pieces.append(piece)
        except GenerationFailed as exc:
            return pieces, exc
        return pieces, None

    async def scenario() -> list[tuple[list[Any], BaseException | None]]:
        short, long = await asyncio.wait_for(asyncio.gather(collect(3), collect(40)), timeout=20)
        after = await asyncio.wait_for(collect(4), timeout=20)
        return [short, long, after]

    try:
        (short, short_error), (long, long_error), (after, after_error) = asyncio.run(scenario())
        assert isinstance(short_error, GenerationFailed) and isinstance(long_error, GenerationFailed)
        assert len(short) == 2 and all(p.finish_reason is None for p in short + long)  # the third token was lost
        assert after_error is None and after[-1].finish_reason == "length" and len(after) == 4
        assert worker._active == 0 and not worker.engine.has_work
    finally:
        worker.close()


def test_an_engine_failure_is_an_error_over_http_never_a_short_success(gen_client: TestClient) -> None:
    """Issue 11, defect 1: a failing engine step ended the running generations, which came back 200 with a
    few of their tokens and finish reason "length". Now: a 500 when nothing was sent yet, else the stream's
    last event is an error (TGI's and OpenAI's shapes)."""
    worker = gen_client.app.state.service.models.generation_worker("gen-tiny")  # type: ignore[attr-defined]
    real_step = worker.engine.step

    def fail_at_step(n: int) -> None:
        calls = itertools.count(1)

        def step() -> Any:
            events = real_step()
            if next(calls) == n:
                raise RuntimeError("injected failure")
            return events

        worker.engine.step = step

    try:
        fail_at_step(3)
        r = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 20}})
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
        fail_at_step(3)
        r = gen_client.post("/v1/generate_stream", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 20}})
        events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
        assert events[-1]["error_type"] == "generation" and all(e.get("details") is None for e in events)
        fail_at_step(3)
        r = gen_client.post("/v1/completions", json={"prompt": "Más vale", "max_tokens": 20, "stream": True,
                                                      "temperature": 0})  # greedy: no early end of text
        events = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        assert "[DONE]" not in events and json.loads(events[-1])["error"]["type"] == "server_error"
    finally:
        worker.engine.step = real_step  # type: ignore[method-assign]
    r = gen_client.post("/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 5,
                                                                                  "details": True}})
    assert r.status_code == 200 and r.json()["details"]["generated_tokens"] == 5


def test_a_tokenizer_larger_than_the_model_gets_422_not_a_dead_engine(tmp_path: Path, reference: GeneratorModel
                                                                      ) -> None:
    """Added tokens in a tokenizer saved beside a model that was not resized: a prompt that uses one is
    a 422 that says so, and the service goes on answering."""
    import copy

    tokenizer = copy.deepcopy(reference.tokenizer)
    tokenizer.add_tokens(["<nuevo>"])
    assert len(tokenizer) == reference.model.config.vocab_size + 1
    save_generator(tmp_path / "models", "mismatched", model=reference.model, tokenizer=tokenizer, params={},
                   data={}, metrics={})
    settings = Settings(models_dir=tmp_path / "models", cache_dir=tmp_path / "cache", device="cpu",
                        default_generator_model="mismatched", generation_max_batch=2, generation_max_total_tokens=60)
    with ready_client(create_app(settings)) as c:
        r = c.post("/v1/generate", json={"inputs": "Más vale <nuevo>", "parameters": {"max_new_tokens": 3}})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "validation_error"
        assert "no embedding for" in r.json()["error"]["message"]
        r = c.post("/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 3}})
        assert r.status_code == 200 and r.json()["generated_text"] is not None
