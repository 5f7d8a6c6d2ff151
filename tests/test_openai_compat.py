"""OpenAI's embeddings and chat completions, tested with the clients people use: the official ``openai`` SDK
and LangChain's ``ChatOpenAI``, against the real server (``python -m nlp_service serve``) over real HTTP,
with a real word2vec model and tiny GPT-2 generators, one with a chat template and one without."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from nlp_service.api import create_app
from nlp_service.api.protocols.openai import chat
from nlp_service.api.protocols.openai.chat import ChatCompletionRequest
from nlp_service.config import Settings
from nlp_service.generate import GeneratorModel, SamplingParams
from nlp_service.serving import QueueFull

from .helpers import CHAT_TEMPLATE, W2V, ready_client, save_tiny_generator
from .test_e2e import run_server

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

CHAT = "chat-tiny"  # a generator with a chat template
PLAIN = "gen-tiny"  # one without
HOLA = [{"role": "user", "content": "Hola"}]
HOLA_PROMPT = "<|user|>Hola\n<|assistant|>"


@pytest.fixture(scope="module")
def compat_models(w2v_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's word2vec model (a link) and two tiny generators, in one folder."""
    folder = tmp_path_factory.mktemp("compat-models")
    (folder / W2V).symlink_to(w2v_model, target_is_directory=True)
    save_tiny_generator(folder, PLAIN, positions=64)
    save_tiny_generator(folder, CHAT, positions=128, chat_template=CHAT_TEMPLATE)
    return folder


@pytest.fixture(scope="module")
def http(compat_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with run_server(compat_models, tmp_path_factory.mktemp("compat-server"),
                    {"NLP_DEFAULT_GENERATOR_MODEL": CHAT, "NLP_DEFAULT_VECTORS_MODEL": W2V}) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(http: httpx.Client) -> Any:
    return openai.OpenAI(base_url=f"{http.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def chat_reference(compat_models: Path) -> GeneratorModel:
    return GeneratorModel.load(compat_models / CHAT, device="cpu", dtype="float32")


def _text_vectors(http: httpx.Client, texts: list[str]) -> dict[str, Any]:
    r = http.post("/v1/embeddings/texts", json={"model": W2V, "texts": texts})
    assert r.status_code == 200, r.text
    return r.json()


def _completion(http: httpx.Client, prompt: str, **fields: Any) -> dict[str, Any]:
    r = http.post("/v1/completions", json={"model": CHAT, "prompt": prompt, **fields}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


# -- embeddings ----------------------------------------------------------------------------------------------

TEXTS = ["El rey y la reina", "la tierra era desordenada y vacía", "Dios"]


def test_embeddings_are_the_text_vectors_of_the_service(http: httpx.Client, sdk: Any) -> None:
    expected = _text_vectors(http, TEXTS)
    got = sdk.embeddings.create(model=W2V, input=TEXTS, encoding_format="float")
    assert got.object == "list" and got.model == W2V
    assert [d.index for d in got.data] == [0, 1, 2]
    assert [d.embedding for d in got.data] == [e["vector"] for e in expected["embeddings"]]
    assert all(len(d.embedding) == expected["dimensions"] for d in got.data)
    tokens = sum(len(e["tokens"]) for e in expected["embeddings"])
    assert got.usage.prompt_tokens == got.usage.total_tokens == tokens
    one = sdk.embeddings.create(model=W2V, input=TEXTS[0], encoding_format="float")  # a string, not a list
    assert [d.embedding for d in one.data] == [expected["embeddings"][0]["vector"]]


def test_base64_embeddings_decode_to_the_same_vectors(http: httpx.Client, sdk: Any) -> None:
    expected = [e["vector"] for e in _text_vectors(http, TEXTS)["embeddings"]]
    raw = sdk.embeddings.create(model=W2V, input=TEXTS, encoding_format="base64")
    assert all(isinstance(d.embedding, str) for d in raw.data)
    assert [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4").tolist() for d in raw.data] == expected
    # Without a format the SDK asks for base64 and decodes it itself.
    implicit = sdk.embeddings.create(model=W2V, input=TEXTS)
    assert [d.embedding for d in implicit.data] == expected


def test_a_text_with_no_known_token_gets_a_zero_vector(http: httpx.Client, sdk: Any) -> None:
    texts = ["qxzwv jjkqx", "rey"]
    expected = _text_vectors(http, texts)["embeddings"]
    assert expected[0]["vector"] is None and expected[1]["vector"] is not None
    got = sdk.embeddings.create(model=W2V, input=texts, encoding_format="float")
    assert got.data[0].embedding == [0.0] * len(expected[1]["vector"])
    assert got.data[1].embedding == expected[1]["vector"]


def test_embeddings_defaults_and_extensions(http: httpx.Client) -> None:
    r = http.post("/v1/embeddings", json={"input": "rey"})  # no model: the default vectors model
    assert r.status_code == 200, r.text
    assert r.json()["model"] == W2V
    unit = http.post("/v1/embeddings", json={"input": ["rey"], "normalize": True, "dimensions": 32}).json()
    assert unit["data"][0]["embedding"] == _text_vectors_normalized(http, ["rey"])[0]
    assert abs(np.linalg.norm(unit["data"][0]["embedding"]) - 1) < 1e-5


def _text_vectors_normalized(http: httpx.Client, texts: list[str]) -> list[list[float]]:
    r = http.post("/v1/embeddings/texts", json={"model": W2V, "texts": texts, "normalize": True})
    assert r.status_code == 200, r.text
    return [e["vector"] for e in r.json()["embeddings"]]


def test_embeddings_refuse_what_they_cannot_do(http: httpx.Client, sdk: Any) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as wrong:
        sdk.embeddings.create(model=W2V, input=["rey"], dimensions=8)
    assert wrong.value.code == "wrong_dimensions"
    assert "dimensions" in wrong.value.message and "32-dimensional" in wrong.value.message
    with pytest.raises(openai.UnprocessableEntityError) as ids:
        sdk.embeddings.create(model=W2V, input=[[101, 2000, 102]])
    assert "token-id arrays are not supported" in ids.value.message
    with pytest.raises(openai.UnprocessableEntityError) as ids:
        sdk.embeddings.create(model=W2V, input=[5, 6])
    assert "token-id arrays are not supported" in ids.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model="text-embedding-3-small", input=["rey"])
    with pytest.raises(openai.UnprocessableEntityError) as limit:  # the limits of /v1/embeddings/texts
        sdk.embeddings.create(model=W2V, input=["rey"] * 1000)
    assert limit.value.code == "limit_exceeded"
    r = http.post("/v1/embeddings", json={"model": W2V, "input": []})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("input")


# -- chat completions ----------------------------------------------------------------------------------------

def test_a_generator_without_chat_template_is_refused_with_a_400(sdk: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=PLAIN, messages=HOLA)
    assert refused.value.status_code == 400 and refused.value.code == "no_chat_template"
    assert PLAIN in refused.value.message and "no chat template" in refused.value.message
    assert "/v1/completions" in refused.value.message


def test_the_chat_template_renders_the_prompt(chat_reference: GeneratorModel) -> None:
    """What the following tests compare against: the template as transformers renders it."""
    assert chat_reference.tokenizer.apply_chat_template(HOLA, tokenize=False, add_generation_prompt=True) == HOLA_PROMPT


def test_greedy_chat_is_the_completion_of_the_rendered_prompt(http: httpx.Client, sdk: Any) -> None:
    done = sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=12)
    expected = _completion(http, HOLA_PROMPT, max_tokens=12, temperature=0)
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-") and done.model == CHAT
    assert len(done.choices) == 1
    choice = done.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected["choices"][0]["text"]
    assert choice.finish_reason == expected["choices"][0]["finish_reason"]
    assert choice.logprobs is None
    assert done.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert done.usage.completion_tokens == expected["usage"]["completion_tokens"]
    # max_completion_tokens wins over max_tokens.
    shorter = sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=12,
                                          max_completion_tokens=4)
    assert shorter.choices[0].message.content == _completion(http, HOLA_PROMPT, max_tokens=4,
                                                            temperature=0)["choices"][0]["text"]


def test_developer_messages_and_text_parts(http: httpx.Client, sdk: Any) -> None:
    messages = [{"role": "developer", "content": "Sé breve."},
                {"role": "user", "content": [{"type": "text", "text": "Hola"}, {"type": "text", "text": "amigo"}]},
                {"role": "assistant", "content": "Dime."}, {"role": "user", "content": "¿Qué tal?"}]
    prompt = "<|system|>Sé breve.\n<|user|>Hola\namigo\n<|assistant|>Dime.\n<|user|>¿Qué tal?\n<|assistant|>"
    done = sdk.chat.completions.create(model=CHAT, messages=messages, temperature=0, max_tokens=10)
    expected = _completion(http, prompt, max_tokens=10, temperature=0)
    assert done.choices[0].message.content == expected["choices"][0]["text"]
    assert done.usage.prompt_tokens == expected["usage"]["prompt_tokens"]


def test_streamed_chunks_add_up_to_the_answer(sdk: Any) -> None:
    done = sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=12)
    chunks = list(sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=12, stream=True,
                                              stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    *answer, usage = chunks
    assert answer[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in answer) == done.choices[0].message.content
    assert [c.choices[0].finish_reason for c in answer if c.choices[0].finish_reason] == [done.choices[0].finish_reason]
    assert answer[-1].choices[0].finish_reason is not None
    assert usage.choices == [] and usage.usage == done.usage
    assert all(c.usage is None for c in answer)
    plain = list(sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=12, stream=True))
    assert all(c.usage is None and c.choices for c in plain)  # no usage chunk unless asked


def test_n_choices_are_seeded_samples(sdk: Any) -> None:
    def sample(n: int, seed: int, **fields: Any) -> list[str]:
        done = sdk.chat.completions.create(model=CHAT, messages=HOLA, max_tokens=8, temperature=1.0, n=n, seed=seed,
                                           **fields)
        assert [c.index for c in done.choices] == list(range(n))
        return [c.message.content for c in done.choices]

    two = sample(2, 7)
    assert two == sample(2, 7)  # reproducible
    assert two[0] != two[1]  # each choice has its own seed: seed + index
    assert two == [sample(1, 7)[0], sample(1, 8)[0]]
    streamed: dict[int, str] = {0: "", 1: ""}
    finished = set()
    for c in sdk.chat.completions.create(model=CHAT, messages=HOLA, max_tokens=8, temperature=1.0, n=2, seed=7,
                                         stream=True):
        for choice in c.choices:
            streamed[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert [streamed[0], streamed[1]] == two and finished == {0, 1}


def test_logprobs_of_a_greedy_chat(sdk: Any, chat_reference: GeneratorModel) -> None:
    """Needs the engine's log-probabilities (SamplingParams.logprobs)."""
    done = sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=6, logprobs=True,
                                       top_logprobs=3)
    content = done.choices[0].logprobs.content
    ended_by_eos = done.choices[0].finish_reason == "stop"
    assert len(content) == done.usage.completion_tokens - ended_by_eos
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.bytes == list(entry.token.encode())
        # Greedy: the token taken is the likeliest.
        assert (entry.top_logprobs[0].token, entry.top_logprobs[0].logprob) == (entry.token, entry.logprob)
    ids = chat_reference.tokenizer(HOLA_PROMPT, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        first = torch.log_softmax(chat_reference.model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    assert content[0].logprob == pytest.approx(first.max().item(), abs=1e-4)
    streamed = [entry for c in sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=6,
                                                           logprobs=True, stream=True)
                for choice in c.choices if choice.logprobs for entry in choice.logprobs.content]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in content]
    assert all(e.top_logprobs == [] for e in streamed)  # top_logprobs not asked: none


def test_fields_clients_send_with_their_defaults_are_accepted(sdk: Any) -> None:
    done = sdk.chat.completions.create(
        model=CHAT, messages=HOLA, temperature=0, max_tokens=4, tools=[], tool_choice="none", parallel_tool_calls=False,
        response_format={"type": "text"}, store=False, metadata={}, service_tier="auto", modalities=["text"],
        reasoning_effort="none", user="u1", safety_identifier="s1", prompt_cache_key="k", frequency_penalty=0,
        presence_penalty=0, top_p=1, stop=None, logprobs=False)
    assert done.choices[0].message.content is not None


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools", "tool calling"),
    ({"tool_choice": "required"}, "tool_choice", "not supported"),
    ({"response_format": {"type": "json_object"}}, "response_format", "structured output"),
    ({"store": True}, "store", "nothing is stored"),
    ({"modalities": ["text", "audio"]}, "modalities", "only text"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "text only"),
    ({"top_logprobs": 2}, "top_logprobs", "logprobs: true"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages.0.content", "image_url"),
    ({"messages": [{"role": "user"}]}, "messages.0", "needs content"),
    ({"messages": []}, "messages", "at least 1"),
])
def test_what_cannot_be_honoured_is_a_422_naming_the_field(sdk: Any, fields: dict[str, Any], field: str,
                                                           words: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(**{"model": CHAT, "messages": HOLA, "max_tokens": 4, **fields})
    assert refused.value.code == "validation_error"
    assert f" - {field}:" in refused.value.message and words in refused.value.message


def test_a_conversation_the_template_refuses_is_a_422(sdk: Any) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(model=CHAT, max_tokens=4, messages=[
            *HOLA, {"role": "assistant", "content": "Hola."}, {"role": "tool", "content": "42", "tool_call_id": "c1"}])
    assert refused.value.code == "chat_template_error"
    assert "not tool" in refused.value.message and CHAT in refused.value.message


def test_limits_are_those_of_completions(sdk: Any) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "palabra " * 200}])
    assert refused.value.code == "limit_exceeded"


def test_langchain_chat_openai_works_against_the_service(http: httpx.Client, sdk: Any) -> None:
    chat_models = pytest.importorskip("langchain_openai")
    llm = chat_models.ChatOpenAI(base_url=f"{http.base_url}/v1", api_key="x", model=CHAT, temperature=0,
                                 max_tokens=10, max_retries=0)
    expected = sdk.chat.completions.create(model=CHAT, messages=HOLA, temperature=0, max_tokens=10)
    answer = llm.invoke("Hola")
    assert answer.content == expected.choices[0].message.content
    assert answer.usage_metadata["input_tokens"] == expected.usage.prompt_tokens
    assert "".join(str(chunk.content) for chunk in llm.stream("Hola")) == answer.content


# -- in-process: closing and failing streams -----------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_client(compat_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app in-process, with room for two generations and no queue: a third is refused at once."""
    settings = Settings(models_dir=compat_models, cache_dir=tmp_path_factory.mktemp("chat-cache"), device="cpu",
                        default_generator_model=CHAT, default_vectors_model=W2V, generation_max_batch=2,
                        generation_max_queue=0)
    with ready_client(create_app(settings)) as client:
        yield client


def test_a_closed_chat_answer_frees_every_choice_at_once(chat_client: TestClient) -> None:
    generations = chat_client.app.state.service.generation  # type: ignore[attr-defined]
    body = ChatCompletionRequest(messages=HOLA, n=2, max_tokens=100, seed=3, stream=True)
    one_token = SamplingParams(max_new_tokens=1)

    async def scenario() -> None:
        model = generations.model(CHAT)
        for answer in (chat.chat_events, chat.chat_completion):
            started = await generations.start_many(model, HOLA_PROMPT, chat.chat_sampling_params(body), 2)
            with pytest.raises(QueueFull):  # both places taken
                await generations.start(model, HOLA_PROMPT, one_token)
            if answer is chat.chat_events:  # a streaming client that leaves after the first text
                events = chat.chat_events(body, model, started)
                for _ in range(3):
                    await anext(events)
                await events.aclose()
            else:  # a request cancelled (its deadline, or its client gone) while it waits for the answer
                waiting = asyncio.ensure_future(chat.chat_completion(body, model, started))
                await asyncio.sleep(0.01)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
            again = await generations.start(model, HOLA_PROMPT, one_token)  # room again, at once
            await again.aclose()

    asyncio.run(scenario())


def test_an_engine_failure_ends_a_chat_with_an_error(chat_client: TestClient) -> None:
    """Mid-stream: the last event is an error (no [DONE]); before any answer: a 500, never a short success."""
    worker = chat_client.app.state.service.models.generation_worker(CHAT)  # type: ignore[attr-defined]
    real_step = worker.engine.step

    def fail_at_step(n: int) -> None:
        calls = itertools.count(1)

        def step() -> Any:
            events = real_step()
            if next(calls) == n:
                raise RuntimeError("injected failure")
            return events

        worker.engine.step = step

    request = {"model": CHAT, "messages": HOLA, "max_tokens": 20, "temperature": 0, "n": 2}
    try:
        fail_at_step(6)  # after both choices began (each started once it has its first token)
        r = chat_client.post("/v1/chat/completions", json={**request, "stream": True})
        events = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        assert "[DONE]" not in events and json.loads(events[-1])["error"]["type"] == "server_error"
        assert json.loads(events[-1])["error"]["code"] == "generation_failed"
        assert any(choice["delta"].get("content") for e in events[:-1] for choice in json.loads(e)["choices"])
        fail_at_step(6)
        r = chat_client.post("/v1/chat/completions", json=request)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
    finally:
        worker.engine.step = real_step  # type: ignore[method-assign]
    r = chat_client.post("/v1/chat/completions", json=request)
    assert r.status_code == 200 and len(r.json()["choices"]) == 2


def test_langchain_openai_embeddings_work_against_the_service(http: httpx.Client) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    # Without the context-length check, which tokenizes with tiktoken and sends token ids (OpenAI's tokenizer,
    # not the model's).
    embedder = langchain_openai.OpenAIEmbeddings(base_url=f"{http.base_url}/v1", api_key="x", model=W2V,
                                                 check_embedding_ctx_length=False, max_retries=0)
    expected = [e["vector"] for e in _text_vectors(http, TEXTS)["embeddings"]]
    assert embedder.embed_documents(TEXTS) == expected
    assert embedder.embed_query(TEXTS[0]) == expected[0]
