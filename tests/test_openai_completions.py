"""OpenAI's /v1/completions with every parameter its clients send, through the real ``openai`` SDK and
LangChain's OpenAI wrapper against the real server: n, best_of, logprobs (with echo), penalties, logit_bias,
several prompts, usage in streams."""

from __future__ import annotations

import httpx
import pytest
import torch

from nlp_service.generate import GeneratorModel

openai = pytest.importorskip("openai")

PROMPT = "Más vale pájaro en mano"


@pytest.fixture(scope="module")
def client(generator_server: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(base_url=str(generator_server.base_url) + "/v1", api_key="unused", max_retries=0)


def _ids(ref: GeneratorModel, text: str) -> list[int]:
    return ref.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_logprobs_with_echo_are_the_models_own(client: openai.OpenAI, tiny_generator: GeneratorModel) -> None:
    done = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=6, temperature=0, logprobs=2,
                                     echo=True)
    [choice] = done.choices
    prompt_ids = _ids(tiny_generator, PROMPT)
    assert choice.text.startswith(PROMPT)
    lp = choice.logprobs
    assert lp is not None and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    generated = tiny_generator.tokenizer(choice.text[len(PROMPT):], add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        want = torch.log_softmax(tiny_generator.model(torch.tensor([prompt_ids + generated])).logits[0].float(), dim=-1)
    ids = prompt_ids + generated
    for t in range(1, len(ids)):
        assert lp.token_logprobs[t] == pytest.approx(want[t - 1, ids[t]].item(), abs=1e-4)
    for t in range(len(prompt_ids), len(ids)):
        assert len(lp.top_logprobs[t]) <= 2 and max(lp.top_logprobs[t].values()) >= lp.token_logprobs[t] - 1e-6
    assert "".join(lp.tokens) == choice.text and lp.text_offset[len(prompt_ids)] == len(PROMPT)
    assert done.usage.prompt_tokens == len(prompt_ids) and done.usage.completion_tokens == 6


@pytest.mark.slow
def test_n_best_of_and_several_prompts(client: openai.OpenAI) -> None:
    two = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=5, n=2)
    assert [c.index for c in two.choices] == [0, 1] and two.choices[0].text != two.choices[1].text
    again = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=5, n=2)
    assert [c.text for c in again.choices] == [c.text for c in two.choices]  # seeded: reproducible
    # best_of: the most likely per token of 4 candidates (seeds 5..8) is one of them, and the likeliest.
    best = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=5,
                                     best_of=4, logprobs=0)
    candidates = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=5,
                                           n=4, logprobs=0).choices

    def mean(c: object) -> float:
        values = c.logprobs.token_logprobs  # type: ignore[attr-defined]
        return sum(values) / len(values)

    assert best.choices[0].text == max(candidates, key=mean).text
    assert best.usage.completion_tokens == sum(len(c.logprobs.token_logprobs) for c in candidates)
    several = client.completions.create(model="gen-tiny", prompt=["Más vale", "La vida"], max_tokens=5,
                                        temperature=0, n=2)
    assert [c.index for c in several.choices] == [0, 1, 2, 3]
    alone = client.completions.create(model="gen-tiny", prompt="La vida", max_tokens=5, temperature=0)
    assert several.choices[2].text == several.choices[3].text == alone.choices[0].text


@pytest.mark.slow
def test_penalties_and_logit_bias_change_the_text(client: openai.OpenAI, tiny_generator: GeneratorModel) -> None:
    plain = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=10, temperature=0).choices[0].text
    first = _ids(tiny_generator, plain)[0]
    banned = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=10, temperature=0,
                                       logit_bias={str(first): -100}).choices[0].text
    assert _ids(tiny_generator, banned)[0] != first
    penalized = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=10, temperature=0,
                                          presence_penalty=2.0, frequency_penalty=2.0).choices[0].text
    assert penalized != plain or len(set(_ids(tiny_generator, plain))) == len(_ids(tiny_generator, plain))
    with pytest.raises(openai.UnprocessableEntityError, match="not in this model's vocabulary"):
        client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=3, logit_bias={"99999": 5})


@pytest.mark.slow
def test_streams_interleave_choices_and_end_with_usage(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=9, n=2)
    chunks = list(client.completions.create(model="gen-tiny", prompt=PROMPT, max_tokens=8, temperature=1.0, seed=9,
                                            n=2, stream=True, stream_options={"include_usage": True}))
    texts = {0: "", 1: ""}
    for chunk in chunks[:-1]:
        [choice] = chunk.choices
        texts[choice.index] += choice.text
    assert texts == {c.index: c.text for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.slow
def test_langchains_openai_wrapper_with_all_its_defaults(generator_server: httpx.Client) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.OpenAI(base_url=str(generator_server.base_url) + "/v1", api_key="unused", model="gen-tiny",
                                  max_tokens=12, max_retries=0)
    # LangChain sends frequency_penalty, presence_penalty, n, logprobs, top_p, temperature ... with defaults.
    assert isinstance(llm.invoke(PROMPT), str)
    direct = generator_server.post("/v1/completions", json={
        "model": "gen-tiny", "prompt": [PROMPT], "frequency_penalty": 0, "logprobs": None, "max_tokens": 256,
        "n": 1, "presence_penalty": 0, "seed": None, "temperature": 0.7, "top_p": 1, "best_of": 1,
        "logit_bias": {}, "echo": False, "suffix": None, "user": "u", "stream": False, "stream_options": None})
    assert direct.status_code == 200, direct.text
