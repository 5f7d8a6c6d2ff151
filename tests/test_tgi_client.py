"""Hugging Face's own ``text_generation`` client (sync and async, streaming) against the real server: TGI's
root route and parameters, log-probabilities checked against transformers, and TGI's error shape."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import torch

from nlp_service.generate import GeneratorModel

text_generation = pytest.importorskip("text_generation")

PROMPT = "Más vale pájaro en mano"


def _ids(ref: GeneratorModel, text: str) -> list[int]:
    return ref.tokenizer(text, add_special_tokens=False)["input_ids"]


def _log_softmax(ref: GeneratorModel, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(ref.model(torch.tensor([ids])).logits[0].float(), dim=-1)


def _greedy(ref: GeneratorModel, ids: list[int], n: int) -> list[int]:
    with torch.inference_mode():
        out = ref.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=n, do_sample=False, pad_token_id=ref.tokenizer.eos_token_id)
    new = out[0, len(ids):].tolist()
    eos = ref.tokenizer.eos_token_id
    return new[: new.index(eos)] if eos in new else new


@pytest.mark.slow
def test_the_tgi_client_generates_with_details_and_logprobs(generator_server: httpx.Client,
                                                            tiny_generator: GeneratorModel) -> None:
    client = text_generation.Client(str(generator_server.base_url), timeout=60)
    prompt_ids = _ids(tiny_generator, PROMPT)
    response = client.generate(PROMPT, max_new_tokens=10, decoder_input_details=True, top_n_tokens=3)
    greedy = _greedy(tiny_generator, prompt_ids, 10)
    assert response.generated_text == tiny_generator.tokenizer.decode(greedy, skip_special_tokens=True)
    details = response.details
    assert [t.id for t in details.tokens][: len(greedy)] == greedy
    assert details.generated_tokens == len(details.tokens)
    # Every log-probability is the model's own: the prompt's (prefill) and the generated tokens'.
    want = _log_softmax(tiny_generator, prompt_ids + [t.id for t in details.tokens])
    assert [t.id for t in details.prefill] == prompt_ids and details.prefill[0].logprob is None
    for t, token in enumerate(details.prefill[1:], start=1):
        assert token.logprob == pytest.approx(want[t - 1, token.id].item(), abs=1e-4)
    for step, token in enumerate(details.tokens):
        row = want[len(prompt_ids) - 1 + step]
        assert token.logprob == pytest.approx(row[token.id].item(), abs=1e-4)
        assert [t.id for t in details.top_tokens[step]] == torch.topk(row, 3).indices.tolist()
    # Without decoder_input_details, no prefill; without top_n_tokens, no top tokens.
    plain = client.generate(PROMPT, max_new_tokens=10)
    assert plain.generated_text == response.generated_text
    assert plain.details.prefill == [] and plain.details.top_tokens is None


@pytest.mark.slow
def test_the_tgi_client_streams_sync_and_async(generator_server: httpx.Client) -> None:
    client = text_generation.Client(str(generator_server.base_url), timeout=60)
    whole = client.generate(PROMPT, max_new_tokens=12).generated_text
    events = list(client.generate_stream(PROMPT, max_new_tokens=12, top_n_tokens=2))
    assert "".join(e.token.text for e in events if not e.token.special) == whole
    assert events[-1].generated_text == whole and events[-1].details is not None
    assert all(e.token.logprob is not None and len(e.top_tokens) == 2 for e in events if e.token.id >= 0)

    async def both() -> tuple[str, str]:
        aclient = text_generation.AsyncClient(str(generator_server.base_url), timeout=60)
        done = await aclient.generate(PROMPT, max_new_tokens=12)
        streamed = [e async for e in aclient.generate_stream(PROMPT, max_new_tokens=12)]
        return done.generated_text, "".join(e.token.text for e in streamed)

    assert asyncio.run(both()) == (whole, whole)


@pytest.mark.slow
def test_the_tgi_clients_sampling_parameters_are_honoured(generator_server: httpx.Client,
                                                          tiny_generator: GeneratorModel) -> None:
    client = text_generation.Client(str(generator_server.base_url), timeout=60)
    # Seeded sampling with typical_p and a frequency penalty: the same seed, the same text.
    kw = {"max_new_tokens": 15, "do_sample": True, "typical_p": 0.6, "frequency_penalty": 1.0, "seed": 3}
    first = client.generate(PROMPT, **kw)
    assert client.generate(PROMPT, **kw).generated_text == first.generated_text and first.details.seed == 3
    # best_of: several sampled sequences, the most likely returned, the others in best_of_sequences.
    best = client.generate(PROMPT, max_new_tokens=8, do_sample=True, best_of=3)
    others = best.details.best_of_sequences
    assert len(others) == 2 and len({best.details.seed, *(o.seed for o in others)}) == 3
    total = sum(t.logprob for t in best.details.tokens)
    assert all(total >= sum(t.logprob for t in o.tokens) - 1e-6 for o in others)
    # truncate: only the prompt's last tokens are used (a prompt over the input limit then passes).
    long_prompt = "palabra " * 60
    with pytest.raises(text_generation.errors.ValidationError, match="at most 40"):
        client.generate(long_prompt, max_new_tokens=4)
    cut = client.generate(long_prompt, max_new_tokens=4, truncate=10, decoder_input_details=True)
    assert [t.id for t in cut.details.prefill] == _ids(tiny_generator, long_prompt)[-10:]


@pytest.mark.slow
def test_what_cannot_be_honoured_is_a_validation_error_in_tgis_shape(generator_server: httpx.Client) -> None:
    client = text_generation.Client(str(generator_server.base_url), timeout=60)
    with pytest.raises(text_generation.errors.ValidationError, match="watermark"):
        client.generate(PROMPT, max_new_tokens=4, watermark=True)
    grammar = text_generation.types.Grammar(type="regex", value="[0-9]+")
    with pytest.raises(text_generation.errors.ValidationError, match="grammar"):
        client.generate(PROMPT, max_new_tokens=4, grammar=grammar)
    r = generator_server.post("/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 0}})
    assert r.status_code == 422 and r.json()["error_type"] == "validation" and "max_new_tokens" in r.json()["error"]
    r = generator_server.post("/generate", json={"inputs": PROMPT, "model": "nadie"})
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"
    # Under /v1 the service's own error shape stays.
    r = generator_server.post("/v1/generate", json={"inputs": PROMPT, "parameters": {"watermark": True}})
    assert r.status_code == 422 and "watermark" in r.json()["error"]["message"]
    info = generator_server.get("/info").json()
    assert info["model_id"] == "gen-tiny" and info["max_input_tokens"] == 40 and info["max_total_tokens"] == 60
