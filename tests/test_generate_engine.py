"""The GPT-2 decode engine against transformers' own generate, on a tiny random GPT-2 (CPU)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from nlp_service.generate import GPT2Engine, SamplingParams, StepEvent

VOCAB = 300


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    # A wider initialisation than GPT-2's 0.02 gives peaked next-token distributions: greedy choices
    # are then far from ties, so float rounding between two implementations cannot flip them.
    config = GPT2Config(vocab_size=VOCAB, n_positions=96, n_embd=64, n_layer=3, n_head=4, initializer_range=0.2,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    return GPT2LMHeadModel(config).eval()


PROMPTS = [[5, 17, 42, 9], [100], [7, 7, 7, 7, 7, 7, 7, 8, 9, 10, 11], [250, 3, 60]]


def _hf_greedy(model: GPT2LMHeadModel, prompt: list[int], n: int, **kwargs: float) -> list[int]:
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, pad_token_id=VOCAB - 1, **kwargs)
    tokens = out[0, len(prompt):].tolist()
    return tokens


# static_shapes=True runs the decode step exactly as the CUDA-graph path does (rows padded to a
# batch bucket, attention over a span bucket, free slots computing throw-away rows), eagerly on CPU.
STATIC = pytest.mark.parametrize("static", [False, True], ids=["eager", "static-shapes"])


@STATIC
def test_greedy_equals_transformers_generate(model: GPT2LMHeadModel, static: bool) -> None:
    engine = GPT2Engine(model, max_slots=4, static_shapes=static)
    params = SamplingParams(max_new_tokens=24, ignore_eos=True)
    ours = engine.generate(PROMPTS, params)
    for prompt, got in zip(PROMPTS, ours, strict=True):
        want = _hf_greedy(model, prompt, 24, min_new_tokens=24)  # generate also runs past EOS here
        assert got == want


@STATIC
def test_repetition_penalty_equals_transformers(model: GPT2LMHeadModel, static: bool) -> None:
    engine = GPT2Engine(model, max_slots=2, static_shapes=static)
    params = SamplingParams(max_new_tokens=20, repetition_penalty=1.5, ignore_eos=True)
    for prompt, got in zip(PROMPTS, engine.generate(PROMPTS, params), strict=True):
        assert got == _hf_greedy(model, prompt, 20, repetition_penalty=1.5, min_new_tokens=20)


@STATIC
def test_continuous_batching_gives_each_request_its_solo_result(model: GPT2LMHeadModel, static: bool) -> None:
    """Requests of different lengths join while others run, and leave when done: every output is
    the one the request gets alone, and a short request finishes before a long one."""
    solo = [GPT2Engine(model, max_slots=1).generate([p], SamplingParams(max_new_tokens=n, ignore_eos=True))[0]
            for p, n in zip(PROMPTS, (30, 3, 12, 7), strict=True)]
    # Fewer slots than requests: the last ones wait for a free slot.
    engine = GPT2Engine(model, max_slots=3, static_shapes=static)
    reqs = [engine.add(p, SamplingParams(max_new_tokens=n, ignore_eos=True))
            for p, n in zip(PROMPTS, (30, 3, 12, 7), strict=True)]
    finished_at = {}
    step = 0
    while engine.has_work:
        for event in engine.step():
            if event.finished:
                finished_at[event.request.id] = step
        step += 1
    assert [r.output for r in reqs] == solo
    assert finished_at[reqs[1].id] < finished_at[reqs[3].id] < finished_at[reqs[0].id]
    assert all(r.finish_reason == "length" for r in reqs)


def test_eos_stops_a_request(model: GPT2LMHeadModel) -> None:
    free_run = _hf_greedy(model, [5, 17], 40, min_new_tokens=40)
    # Declare a token that greedy decoding produces a few steps in to be the end-of-text token.
    index = next(i for i in range(3, 40) if free_run[i] not in free_run[:i])
    eos = free_run[index]
    config = GPT2Config(**{**model.config.to_dict(), "eos_token_id": eos})
    stopping = GPT2LMHeadModel(config).eval()
    stopping.load_state_dict(model.state_dict())
    engine = GPT2Engine(stopping, max_slots=2)
    req = engine.add([5, 17], SamplingParams(max_new_tokens=40))
    list(engine.run())
    with torch.inference_mode():
        want = stopping.generate(torch.tensor([[5, 17]]), attention_mask=torch.ones(1, 2, dtype=torch.long),
                                 max_new_tokens=40, do_sample=False, pad_token_id=eos)[0, 2:].tolist()
    assert req.output == want == free_run[: index + 1]
    assert req.finish_reason == "eos"
    # ignore_eos runs on to max_new_tokens.
    engine.add([5, 17], SamplingParams(max_new_tokens=40, ignore_eos=True))
    assert [e.request.output for e in engine.run() if e.finished] == [free_run]


def test_seeded_sampling_is_reproducible_and_batch_independent(model: GPT2LMHeadModel) -> None:
    params = SamplingParams(max_new_tokens=16, do_sample=True, temperature=0.9, top_k=50, top_p=0.9, seed=123,
                            ignore_eos=True)
    alone = GPT2Engine(model, max_slots=1).generate([PROMPTS[0]], params)[0]
    crowd = GPT2Engine(model, max_slots=4).generate(
        PROMPTS, [params, SamplingParams(max_new_tokens=5, do_sample=True, seed=9), params,
                  SamplingParams(max_new_tokens=9)])
    assert crowd[0] == alone
    other = GPT2Engine(model, max_slots=1).generate([PROMPTS[0]], dataclasses.replace(params, seed=124))
    assert other[0] != alone
    # top_k=1 sampling is greedy decoding.
    greedy = GPT2Engine(model, max_slots=1).generate([PROMPTS[2]], SamplingParams(max_new_tokens=10,
                                                                                   ignore_eos=True))[0]
    top1 = GPT2Engine(model, max_slots=1).generate([PROMPTS[2]], SamplingParams(
        max_new_tokens=10, do_sample=True, top_k=1, seed=5, ignore_eos=True))[0]
    assert top1 == greedy


def test_cancel_frees_the_slot(model: GPT2LMHeadModel) -> None:
    engine = GPT2Engine(model, max_slots=1)
    first = engine.add(PROMPTS[0], SamplingParams(max_new_tokens=50, ignore_eos=True))
    second = engine.add(PROMPTS[1], SamplingParams(max_new_tokens=4, ignore_eos=True))
    engine.step()
    engine.step()
    engine.cancel(first)
    list(engine.run())
    assert first.finish_reason == "cancelled" and len(first.output) == 2
    assert second.output == GPT2Engine(model, max_slots=1).generate([PROMPTS[1]], SamplingParams(
        max_new_tokens=4, ignore_eos=True))[0]


@STATIC
def test_mixed_parameters_and_holes_in_the_batch(model: GPT2LMHeadModel, static: bool) -> None:
    """Greedy, penalized and sampled requests in one batch, finishing at different steps so that free
    slots open between running ones: each still gets its solo result."""
    specs = [SamplingParams(max_new_tokens=n, repetition_penalty=rp, do_sample=ds, seed=7, ignore_eos=True)
             for n, rp, ds in ((40, 1.0, False), (2, 1.3, False), (25, 1.0, True), (5, 1.0, False),
                               (33, 1.2, False), (60, 1.0, False))]
    prompts = [*PROMPTS, [1, 2, 3], [4] * 20]
    solo = [GPT2Engine(model, max_slots=1).generate([p], sp)[0] for p, sp in zip(prompts, specs, strict=True)]
    engine = GPT2Engine(model, max_slots=5, static_shapes=static)
    assert engine.generate(prompts, specs) == solo


def test_prefill_budget_spreads_admission_over_steps(model: GPT2LMHeadModel) -> None:
    engine = GPT2Engine(model, max_slots=4, max_prefill_tokens=8)
    reqs = [engine.add(p, SamplingParams(max_new_tokens=6, ignore_eos=True)) for p in PROMPTS]
    engine.step()  # [5, 17, 42, 9] + [100] padded to 4 tokens each: 8; a third would make 3 x 11 > 8
    assert [r.slot is not None for r in reqs] == [True, True, False, False]
    engine.step()  # the 11-token prompt is over the budget on its own: admitted, alone
    assert reqs[2].slot is not None and reqs[3].slot is None
    list(engine.run())
    solo = [GPT2Engine(model, max_slots=1).generate([p], SamplingParams(max_new_tokens=6, ignore_eos=True))[0]
            for p in PROMPTS]
    assert [r.output for r in reqs] == solo


def test_cancel_a_waiting_request(model: GPT2LMHeadModel) -> None:
    engine = GPT2Engine(model, max_slots=1)
    reqs = [engine.add(p, SamplingParams(max_new_tokens=3, ignore_eos=True)) for p in PROMPTS[:3]]
    engine.step()
    engine.cancel(reqs[2])  # waiting behind another: retired at the next step, not when it reaches the head
    events = engine.step()
    assert reqs[2].finish_reason == "cancelled" and reqs[2].output == [] and reqs[2].slot is None
    assert [e.token for e in events if e.request is reqs[2]] == [None]
    assert not reqs[0].finished and not reqs[1].finished
    list(engine.run())
    assert reqs[0].finish_reason == reqs[1].finish_reason == "length"


def test_bad_requests(model: GPT2LMHeadModel) -> None:
    engine = GPT2Engine(model, max_slots=1)
    with pytest.raises(ValueError, match="over the engine's 96 positions"):
        engine.add([1] * 90, SamplingParams(max_new_tokens=10))
    with pytest.raises(ValueError, match="at least one token"):
        engine.add([], SamplingParams())
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 300\)"):
        engine.add([5, VOCAB], SamplingParams())
    for bad in ({"temperature": 0}, {"top_p": 0}, {"top_k": -1}, {"max_new_tokens": 0}):
        with pytest.raises(ValueError):
            engine.add([1], SamplingParams(**bad))  # type: ignore[arg-type]


def test_generation_import_path_loads_neither_gensim_nor_spacy() -> None:
    code = ("import sys, nlp_service.generate; "
            "print(sorted(m for m in ('gensim', 'spacy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_engine_greedy_equals_transformers_in_fp32(model: GPT2LMHeadModel) -> None:
    cuda_model = GPT2LMHeadModel(model.config).eval()
    cuda_model.load_state_dict(model.state_dict())
    cuda_model.to("cuda")
    engine = GPT2Engine(cuda_model, max_slots=8, device="cuda")
    assert engine.cuda_graphs and engine.decoder is not None and engine.decoder.row_buckets == [1, 2, 4, 8]
    ours = engine.generate(PROMPTS, SamplingParams(max_new_tokens=24, ignore_eos=True))
    for prompt, got in zip(PROMPTS, ours, strict=True):
        with torch.inference_mode():
            want = cuda_model.generate(torch.tensor([prompt], device="cuda"),
                                       attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device="cuda"),
                                       max_new_tokens=24, min_new_tokens=24, do_sample=False,
                                       pad_token_id=VOCAB - 1)[0, len(prompt):].tolist()
        assert got == want
    # Requests joining a running batch (continuous batching) under graphs give their solo results.
    solo = [GPT2Engine(cuda_model, max_slots=1, device="cuda").generate(
        [p], SamplingParams(max_new_tokens=n, ignore_eos=True))[0] for p, n in zip(PROMPTS, (30, 3, 12, 7),
                                                                                   strict=True)]
    engine2 = GPT2Engine(cuda_model, max_slots=2, device="cuda")
    outs = engine2.generate(PROMPTS, [SamplingParams(max_new_tokens=n, ignore_eos=True) for n in (30, 3, 12, 7)])
    assert outs == solo


def test_batched_top_k_top_p_equals_transformers_warpers_row_by_row() -> None:
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    from nlp_service.generate import filter_top_k_top_p

    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 60, generator=gen) * 3
    order = logits[2].argsort(descending=True)
    logits[2, order[10:12]] = logits[2, order[9]].item()  # two ties with the 10th value: top-10 keeps 12
    top_k = [0, 5, 10, 1, 0, 59, 60]
    top_p = [1.0, 1.0, 0.8, 0.5, 0.3, 0.95, 0.05]
    got = filter_top_k_top_p(logits, top_k, top_p)
    for row, (k, p) in enumerate(zip(top_k, top_p, strict=True)):
        want = logits[row : row + 1]
        if k > 0:
            want = TopKLogitsWarper(k)(None, want)
        if p < 1.0:
            want = TopPLogitsWarper(p)(None, want)
        assert torch.equal(torch.isinf(got[row]), torch.isinf(want[0])), (row, k, p)
        assert torch.equal(got[row][~torch.isinf(got[row])], logits[row][~torch.isinf(got[row])])
    assert (~torch.isinf(filter_top_k_top_p(logits[2:3], [10], [1.0]))).sum() == 12
    assert torch.equal(filter_top_k_top_p(logits, [0] * 7, [1.0] * 7), logits)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replay_equals_the_same_static_step_run_eagerly_in_fp16(model: GPT2LMHeadModel) -> None:
    """The graphs replay the kernels chosen at capture: in fp16 they must give the tokens that the
    same bucketed step gives when run eagerly (greedy, sampled, penalized, rows joining and leaving)."""
    half = GPT2LMHeadModel(model.config).eval()
    half.load_state_dict(model.state_dict())
    half.to("cuda", torch.float16)
    specs = [SamplingParams(max_new_tokens=n, repetition_penalty=rp, do_sample=ds, top_p=0.9, seed=7,
                            ignore_eos=True)
             for n, rp, ds in ((40, 1.0, False), (2, 1.3, False), (25, 1.0, True), (5, 1.0, False))]
    graphs = GPT2Engine(half, max_slots=3, device="cuda")
    eager = GPT2Engine(half, max_slots=3, device="cuda", cuda_graphs=False, static_shapes=True)
    assert graphs.cuda_graphs and graphs.decoder is not None and len(graphs.decoder.graphs) == 3 * 3
    assert graphs.generate(PROMPTS, specs) == eager.generate(PROMPTS, specs)


def test_seeded_draws_are_uniform_and_inverse_cdf_sampling_follows_the_probabilities() -> None:
    from nlp_service.generate import sample_rows, seeded_uniform
    from nlp_service.generate._sampling import _mul32  # white-box: the hash's 32-bit multiply

    values = torch.tensor([0, 1, 0xFFFFFFFF, 123456789, 0x80000000])
    for c in (0x7FEB352D, 0x846CA68B, 0x9E3779B9):  # exact 32-bit products, no int64 overflow
        assert _mul32(values, c).tolist() == [(v * c) & 0xFFFFFFFF for v in values.tolist()]
    cpu = torch.device("cpu")
    across_seeds = seeded_uniform(list(range(20000)), [0] * 20000, cpu)
    across_steps = seeded_uniform([7] * 20000, list(range(20000)), cpu)
    for u in (across_seeds, across_steps):
        assert float(u.min()) > 0 and float(u.max()) < 1
        assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.003
        # deciles equally filled, neighbours uncorrelated
        assert torch.bincount((u * 10).long(), minlength=10).min() > 1800
        assert abs(float(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1])) < 0.03
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2])
    for u in (across_seeds, across_steps):
        freq = torch.bincount(sample_rows(probs.expand(len(u), 4), u), minlength=4).float() / len(u)
        assert freq[1] == 0  # a token of probability 0 is never drawn
        assert torch.allclose(freq, probs, atol=0.02), freq
    assert torch.equal(seeded_uniform([3, 3], [5, 5], cpu), seeded_uniform([3, 3], [5, 5], cpu))


def test_sampled_first_tokens_follow_the_models_distribution(model: GPT2LMHeadModel) -> None:
    """3,000 seeds, one token each, drawn in batches of 64 through the engine (temperature 1.5, top-k 10):
    their frequencies match the model's filtered next-token distribution. (Ten candidates keep the
    sampling noise of 3,000 draws near 0.02 in total variation; a wrong sampler is far off.)"""
    prompt = PROMPTS[0]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt])).logits[0, -1] / 1.5
    top = torch.topk(logits, 10)
    want = torch.zeros(VOCAB)
    want[top.indices] = torch.softmax(top.values, dim=-1)
    engine = GPT2Engine(model, max_slots=64)
    outs = engine.generate([prompt] * 3000, [SamplingParams(max_new_tokens=1, do_sample=True, temperature=1.5,
                                                            top_k=10, seed=s) for s in range(3000)])
    freq = torch.bincount(torch.tensor([o[0] for o in outs]), minlength=VOCAB).float() / 3000
    assert float((freq - want).abs().sum()) / 2 < 0.05, (freq[top.indices], want[top.indices])
    assert float(want.max()) < 0.6  # several likely tokens, not one


def test_extreme_but_valid_parameters_sample_sensibly(model: GPT2LMHeadModel) -> None:
    """Issue 11, defects 1 and 7: a seed of 2**63 or more overflowed the engine step (ending every running
    generation), and a temperature of 1e-300 turned the logits into NaN (the last vocabulary token, again
    and again). Any seed in [0, 2**64) samples, and a tiny temperature is greedy decoding."""
    engine = GPT2Engine(model, max_slots=4)
    greedy = engine.generate(PROMPTS[:2], SamplingParams(max_new_tokens=12, ignore_eos=True))
    cold = SamplingParams(max_new_tokens=12, do_sample=True, temperature=1e-300, seed=1, ignore_eos=True)
    assert engine.generate(PROMPTS[:2], cold) == greedy
    for seed in (2**63, 2**64 - 1):
        params = SamplingParams(max_new_tokens=12, do_sample=True, seed=seed, ignore_eos=True)
        first = engine.generate(PROMPTS[:1], params)
        assert first == engine.generate(PROMPTS[:1], params) and len(first[0]) == 12
    # The top bit is kept: 2**63 and 0 are different seeds.
    runs = {tuple(engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12, do_sample=True, seed=s,
                                                              ignore_eos=True))[0]) for s in (0, 2**63)}
    assert len(runs) == 2
    with pytest.raises(ValueError, match="seed"):
        SamplingParams(seed=2**64).validate()


# ---- the OpenAI/TGI parameters: log-probabilities, penalties, logit bias, typical decoding ----------------


def _collect(engine: GPT2Engine, prompts: list[list[int]], params: SamplingParams) -> list[list[StepEvent]]:
    reqs = [engine.add(p, params) for p in prompts]
    events: dict[int, list[StepEvent]] = {r.id: [] for r in reqs}
    for event in engine.run():
        events[event.request.id].append(event)
    return [events[r.id] for r in reqs]


@STATIC
def test_logprobs_are_the_models_own(model: GPT2LMHeadModel, static: bool) -> None:
    """Each generated token's log-probability and its top-3 alternatives equal log_softmax of transformers'
    logits at that position; each prompt token's, given the ones before it, too (the first has none)."""
    engine = GPT2Engine(model, max_slots=4, static_shapes=static)
    params = SamplingParams(max_new_tokens=6, ignore_eos=True, logprobs=3, prompt_logprobs=True)
    requests = [engine.add(p, params) for p in PROMPTS]
    events: dict[int, list[StepEvent]] = {r.id: [] for r in requests}
    for event in engine.run():
        events[event.request.id].append(event)
    for prompt, req in zip(PROMPTS, requests, strict=True):
        ids = torch.tensor([prompt + req.output])
        with torch.inference_mode():
            want = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        got = events[req.id]
        assert [e.token for e in got] == req.output
        for step, event in enumerate(got):
            row = want[len(prompt) - 1 + step]
            assert event.logprob == pytest.approx(row[event.token].item(), abs=1e-4)
            top = torch.topk(row, 3)
            assert [t for t, _ in event.top or []] == top.indices.tolist()
            assert [v for _, v in event.top or []] == pytest.approx(top.values.tolist(), abs=1e-4)
        expected_prompt = [want[t - 1, prompt[t]].item() for t in range(1, len(prompt))]
        assert req.prompt_logprobs == pytest.approx(expected_prompt, abs=1e-4)


def test_no_logprobs_unless_asked(model: GPT2LMHeadModel) -> None:
    [events] = _collect(GPT2Engine(model, max_slots=2), [PROMPTS[0]], SamplingParams(max_new_tokens=3))
    assert all(e.logprob is None and e.top is None for e in events)


def _reference_penalized(model: GPT2LMHeadModel, prompt: list[int], n: int, frequency: float, presence: float,
                         bias: dict[int, float]) -> list[int]:
    """Greedy decoding with OpenAI's penalties over the generated tokens and a logit bias, step by step on
    transformers' full forward pass: the definition the engine must follow."""
    out: list[int] = []
    counts = torch.zeros(VOCAB)
    for _ in range(n):
        with torch.inference_mode():
            logits = model(torch.tensor([prompt + out])).logits[0, -1].float()
        logits = logits - counts * frequency - (counts > 0).float() * presence
        for token, b in bias.items():
            logits[token] += b
        token = int(logits.argmax())
        out.append(token)
        counts[token] += 1
    return out


@STATIC
def test_frequency_presence_penalties_and_logit_bias_follow_openai(model: GPT2LMHeadModel, static: bool) -> None:
    engine = GPT2Engine(model, max_slots=4, static_shapes=static)
    plain = engine.generate(PROMPTS, SamplingParams(max_new_tokens=16, ignore_eos=True))
    assert any(len(set(o)) < len(o) for o in plain)  # greedy repeats itself: something for penalties to change
    for frequency, presence in ((1.5, 0.0), (0.0, 2.0), (0.7, 0.7)):
        params = SamplingParams(max_new_tokens=16, ignore_eos=True, frequency_penalty=frequency,
                                presence_penalty=presence)
        for prompt, got in zip(PROMPTS, engine.generate(PROMPTS, params), strict=True):
            assert got == _reference_penalized(model, prompt, 16, frequency, presence, {})
    # A bias of -100 bans each prompt's plain first token; +100 on another forces it at every step.
    banned = {p[0]: -100.0 for p in plain}
    params = SamplingParams(max_new_tokens=5, ignore_eos=True, logit_bias=tuple(banned.items()))
    for prompt, got, before in zip(PROMPTS, engine.generate(PROMPTS, params), plain, strict=True):
        assert got[0] != before[0] and got == _reference_penalized(model, prompt, 5, 0.0, 0.0, banned)
    forced = SamplingParams(max_new_tokens=4, ignore_eos=True, logit_bias=((123, 100.0),))
    assert engine.generate(PROMPTS[:2], forced) == [[123] * 4, [123] * 4]


def test_penalties_of_one_request_leave_the_others_alone(model: GPT2LMHeadModel) -> None:
    engine = GPT2Engine(model, max_slots=4)
    plain = SamplingParams(max_new_tokens=12, ignore_eos=True)
    alone = engine.generate([PROMPTS[0]], plain)[0]
    penalized = engine.add(PROMPTS[1], dataclasses.replace(plain, presence_penalty=2.0, logit_bias=((5, 50.0),)))
    other = engine.add(PROMPTS[0], plain)
    for _ in engine.run():
        pass
    assert other.output == alone and penalized.output[0] == 5


def test_typical_filter_equals_transformers() -> None:
    from transformers.generation.logits_process import TypicalLogitsWarper

    from nlp_service.generate._sampling import filter_typical

    torch.manual_seed(1)
    logits = torch.randn(4, 50) * 3
    masses = [0.2, 0.5, 0.9, 1.0]
    got = filter_typical(logits, masses)
    for row, mass in enumerate(masses[:3]):
        want = TypicalLogitsWarper(mass=mass)(torch.zeros(1, 1, dtype=torch.long), logits[row:row + 1].clone())
        assert torch.equal(torch.isinf(got[row]), torch.isinf(want[0]))
    assert torch.equal(got[3], logits[3])  # mass 1: untouched


def test_typical_sampling_runs_and_is_seeded(model: GPT2LMHeadModel) -> None:
    params = SamplingParams(max_new_tokens=10, do_sample=True, typical_p=0.5, seed=7, ignore_eos=True)
    a = GPT2Engine(model, max_slots=2).generate(PROMPTS[:2], params)
    b = GPT2Engine(model, max_slots=2).generate(PROMPTS[:2], params)
    assert a == b and all(len(o) == 10 for o in a)
