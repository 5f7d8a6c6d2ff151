"""A decode engine for GPT-2 on the model's own weights: a static, preallocated KV cache, batched
prefill, and continuous batching (requests join and leave the running batch between decode steps).

The math is GPT-2's (pre-LayerNorm blocks, tanh-GELU MLP, learned positions, tied output
embedding); greedy output equals transformers' ``generate`` token for token (tested). On CPU the
steps run eagerly; on a GPU the decode step runs on fixed shapes, captured as one CUDA graph per
(batch-size bucket, attention-span bucket) pair.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ._params import SamplingParams
from ._sampling import (
    apply_frequency_presence,
    apply_logit_bias,
    apply_repetition_penalty,
    filter_top_k_top_p,
    filter_typical,
    sample_rows,
    scale_by_temperature,
    seeded_uniform,
)


@dataclass
class _Layer:
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    qkv_w: torch.Tensor  # (3E, E) for F.linear: a transposed view of transformers' Conv1D weight, no copy
    qkv_b: torch.Tensor
    proj_w: torch.Tensor
    proj_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor
    fc_w: torch.Tensor
    fc_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor


class GPT2Weights:
    """The tensors of a transformers ``GPT2LMHeadModel``, laid out for the engine."""

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype) -> None:
        cfg = model.config
        if getattr(cfg, "model_type", None) != "gpt2":
            raise ValueError(f"the engine runs GPT-2 models, not {getattr(cfg, 'model_type', None)!r}")
        if cfg.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"unsupported activation {cfg.activation_function!r}")
        if getattr(cfg, "scale_attn_by_inverse_layer_idx", False) or getattr(cfg, "reorder_and_upcast_attn", False):
            raise ValueError("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported")
        sd = {k: v.detach().to(device=device, dtype=dtype) for k, v in model.state_dict().items()}

        def get(name: str) -> torch.Tensor:
            return sd[f"transformer.{name}"]

        self.n_layer, self.n_head, self.n_embd = cfg.n_layer, cfg.n_head, cfg.n_embd
        self.head_dim = cfg.n_embd // cfg.n_head
        self.n_positions = cfg.n_positions
        self.eps = cfg.layer_norm_epsilon
        self.vocab_size = cfg.vocab_size
        self.eos_token_id = cfg.eos_token_id
        self.wte, self.wpe = get("wte.weight"), get("wpe.weight")
        self.lm_head = sd.get("lm_head.weight", self.wte)
        self.lnf_w, self.lnf_b = get("ln_f.weight"), get("ln_f.bias")
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            self.layers.append(_Layer(
                get(p + "ln_1.weight"), get(p + "ln_1.bias"),
                get(p + "attn.c_attn.weight").t(), get(p + "attn.c_attn.bias"),
                get(p + "attn.c_proj.weight").t(), get(p + "attn.c_proj.bias"),
                get(p + "ln_2.weight"), get(p + "ln_2.bias"),
                get(p + "mlp.c_fc.weight").t(), get(p + "mlp.c_fc.bias"),
                get(p + "mlp.c_proj.weight").t(), get(p + "mlp.c_proj.bias"),
            ))


class KVCache:
    """Keys and values of every slot, preallocated: (layers, slots, heads, max_seq, head_dim) each."""

    def __init__(self, w: GPT2Weights, slots: int, max_seq: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (w.n_layer, slots, w.n_head, max_seq, w.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.slots, self.max_seq = slots, max_seq


class GPT2Runner:
    """Forward passes over the static cache: batched prefill of new prompts, one decode step for rows 0..n-1."""

    def __init__(self, w: GPT2Weights, cache: KVCache) -> None:
        self.w, self.cache = w, cache
        # On CUDA, memory-efficient attention (masks, strided cache views) or math: not cuDNN attention,
        # which newer PyTorch prefers on Hopper in fp16 and which builds a plan per new shape (a stall
        # at each prefill of a new length).
        self._on_cuda = cache.k.device.type == "cuda"

    def _attention_backends(self) -> contextlib.AbstractContextManager[Any]:
        if self._on_cuda:
            return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])
        return contextlib.nullcontext()

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, E) -> (N, H, T, D)
        n, t, _ = x.shape
        return x.view(n, t, self.w.n_head, self.w.head_dim).transpose(1, 2)

    def _block_tail(self, layer: _Layer, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        n, _, t, _ = attn.shape
        attn = attn.transpose(1, 2).reshape(n, t, self.w.n_embd)
        x = x + F.linear(attn, layer.proj_w, layer.proj_b)
        h = F.layer_norm(x, (self.w.n_embd,), layer.ln2_w, layer.ln2_b, self.w.eps)
        h = F.gelu(F.linear(h, layer.fc_w, layer.fc_b), approximate="tanh")
        return x + F.linear(h, layer.out_w, layer.out_b)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (self.w.n_embd,), self.w.lnf_w, self.w.lnf_b, self.w.eps)
        return F.linear(x, self.w.lm_head).float()

    @torch.inference_mode()
    def prefill(self, slots: Sequence[int], prompts: Sequence[Sequence[int]], *, scored: Sequence[int] = ()
                ) -> tuple[torch.Tensor, dict[int, list[float]]]:
        """Run the prompts (right-padded into one batch), fill their cache rows; logits (N, V) of each
        prompt's last token, and for the prompts at the indices ``scored``, the log-probability of each of
        their tokens after the first given those before it."""
        w, dev = self.w, self.cache.k.device
        t = max(len(p) for p in prompts)
        # Built on the host and moved once (not one small copy per prompt).
        ids = torch.tensor([[*p, *[0] * (t - len(p))] for p in prompts], dtype=torch.long).to(dev)
        lengths = torch.tensor([len(p) for p in prompts]).to(dev)
        pos = torch.arange(t, device=dev)
        x = w.wte[ids] + w.wpe[pos][None]
        causal = pos[None, :] <= pos[:, None]  # (T, T)
        mask = causal[None, None] & (pos[None, None, None, :] < lengths[:, None, None, None])
        rows = torch.tensor(list(slots), device=dev)
        with self._attention_backends():
            x = self._prefill_layers(x, rows, t, mask)
        last = x[torch.arange(len(prompts), device=dev), lengths - 1]
        return self._logits(last[:, None])[:, 0], {i: self._prompt_logprobs(x[i], prompts[i]) for i in scored}

    def _prompt_logprobs(self, hidden: torch.Tensor, prompt: Sequence[int], chunk: int = 256) -> list[float]:
        """log p(prompt[t] | prompt[:t]) for t >= 1, from the prompt's hidden states (T, E); in chunks of
        positions, so a long prompt never holds T x vocabulary logits at once."""
        out: list[float] = []
        targets = torch.tensor(list(prompt[1:]), device=hidden.device)
        for start in range(0, len(prompt) - 1, chunk):
            logits = self._logits(hidden[start : min(start + chunk, len(prompt) - 1)][None])[0]
            picked = torch.log_softmax(logits, dim=-1).gather(1, targets[start : start + logits.size(0), None])
            out += picked[:, 0].tolist()
        return out

    def _prefill_layers(self, x: torch.Tensor, rows: torch.Tensor, t: int, mask: torch.Tensor) -> torch.Tensor:
        w = self.w
        for li, layer in enumerate(w.layers):
            h = F.layer_norm(x, (w.n_embd,), layer.ln1_w, layer.ln1_b, w.eps)
            q, k, v = F.linear(h, layer.qkv_w, layer.qkv_b).split(w.n_embd, dim=-1)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            self.cache.k[li, rows, :, :t] = k
            self.cache.v[li, rows, :, :t] = v
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = self._block_tail(layer, x, attn)
        return x

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        """One step for cache rows 0..N-1 (N = len(tokens)): ``tokens`` at ``positions``; attention reads
        the first ``span`` cache positions (a fixed value keeps shapes static for graph capture)."""
        w = self.w
        n = tokens.size(0)
        rows = torch.arange(n, device=tokens.device)
        x = (w.wte[tokens] + w.wpe[positions])[:, None]  # (N, 1, E)
        mask = (torch.arange(span, device=tokens.device)[None, :] <= positions[:, None])[:, None, None]
        with self._attention_backends():
            return self._decode_layers(x, rows, positions, span, mask)

    def _decode_layers(self, x: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor, span: int,
                       mask: torch.Tensor) -> torch.Tensor:
        w, n = self.w, rows.size(0)
        for li, layer in enumerate(w.layers):
            h = F.layer_norm(x, (w.n_embd,), layer.ln1_w, layer.ln1_b, w.eps)
            q, k, v = F.linear(h, layer.qkv_w, layer.qkv_b).split(w.n_embd, dim=-1)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            self.cache.k[li, rows, :, positions] = k[:, :, 0]
            self.cache.v[li, rows, :, positions] = v[:, :, 0]
            keys = self.cache.k[li, :n, :, :span]
            values = self.cache.v[li, :n, :, :span]
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = self._block_tail(layer, x, attn)
        return self._logits(x)[:, 0]


def _counts_tokens(params: SamplingParams) -> bool:
    """Whether a request needs its generated tokens counted (frequency or presence penalty)."""
    return params.frequency_penalty != 0.0 or params.presence_penalty != 0.0


def _row_buckets(limit: int) -> list[int]:
    """Batch sizes with a graph: powers of two below ``limit``, then ``limit``."""
    out, b = [], 1
    while b < limit:
        out.append(b)
        b *= 2
    return [*out, limit]


def _span_buckets(limit: int, step: int = 64) -> list[int]:
    """Attention spans with a graph: 32, then multiples of ``step`` below ``limit``, then ``limit``.
    Linear, not doubling, steps: at hundreds of rows reading the cache dominates a step, and a span
    one past a power of two would otherwise read up to twice the positions in use."""
    return [*(s for s in (32, *range(step, limit, step)) if s < limit), limit]


class StepDecoder:
    """Decode steps on static shapes: the rows run are rounded up to a batch-size bucket and the cache
    positions attended to up to a span bucket, so that each (rows, span) pair is one fixed-shape
    computation. With ``capture`` (CUDA) each pair is captured once as a CUDA graph: a step is then one
    replay instead of hundreds of small kernels issued from Python. Without it the same padded
    computation runs eagerly (what the CPU tests check).

    Padding rows are free slots (the engine keeps their position at 0) or slots admitted in this
    step (position len(prompt), possibly past the span): either way what they compute is a cache
    write inside the cache that is rewritten before anything reads it, and logits nobody uses. Graphs are
    captured largest first into one shared memory pool, and all write their logits into one shared
    output buffer, so memory grows with the largest graph rather than with the number of graphs.
    """

    def __init__(self, runner: GPT2Runner, tokens: torch.Tensor, positions: torch.Tensor, *, capture: bool) -> None:
        self.runner = runner
        self.tokens, self.positions = tokens, positions  # the engine's static inputs (all slots)
        rows, max_seq = runner.cache.slots, runner.cache.max_seq
        self.row_buckets = _row_buckets(rows)
        self.span_buckets = _span_buckets(max_seq)
        self.logits = torch.zeros(rows, runner.w.vocab_size, device=tokens.device)
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        if capture:
            self._capture_all()

    def bucket(self, n: int, span: int) -> tuple[int, int]:
        return (next(b for b in self.row_buckets if b >= n), next(s for s in self.span_buckets if s >= span))

    def _run(self, rows: int, span: int) -> None:
        self.logits[:rows].copy_(self.runner.decode(self.tokens[:rows], self.positions[:rows], span))

    def _capture_all(self) -> None:
        pool = None
        side = torch.cuda.Stream()  # one: cuBLAS keeps a workspace per stream for the process's life
        for rows in reversed(self.row_buckets):
            for span in reversed(self.span_buckets):
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up: kernels chosen, workspaces made outside the capture
                    for _ in range(2):
                        self._run(rows, span)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._run(rows, span)
                pool = pool or graph.pool()
                self.graphs[rows, span] = graph
        torch.cuda.synchronize()

    def __call__(self, n: int, span: int) -> torch.Tensor:
        """Logits of rows 0..n-1 after one step; ``span`` covers every position those rows attend to."""
        key = self.bucket(n, span)
        graph = self.graphs.get(key)
        if graph is not None:
            graph.replay()
        else:
            self._run(*key)
        return self.logits[:n]


@dataclass(slots=True)
class Request:
    """One generation in the engine: its prompt, parameters, and what it has produced so far."""

    id: int
    prompt: list[int]
    params: SamplingParams
    output: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "length" | "eos" | "stop" | "cancelled" | "error"
    slot: int | None = None
    seed: int | None = None  # of its sampling (drawn at random when the caller gave none)
    cancelled: bool = False
    prompt_logprobs: list[float] | None = None  # with params.prompt_logprobs: of prompt[1:], after the prefill

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(slots=True)
class StepEvent:
    request: Request
    token: int | None  # None when the request ended without a new token (cancelled, failed)
    finished: bool
    # With params.logprobs: the token's log-probability under the model (before any sampling parameter
    # changes the distribution) and the ``params.logprobs`` likeliest (token, log-probability) pairs.
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None


class GPT2Engine:
    """Continuous batching over a fixed number of slots.

    ``add`` queues a request; each ``step`` admits waiting requests into free slots (one batched
    prefill, which yields their first token), then runs one decode step for every running request
    and retires those that finished. A request never waits for a longer one to end.

    Decode steps run eagerly on rows 0..n-1 (n - 1 = the highest running slot) and the positions in
    use (CPU default), or on static
    bucketed shapes (``static_shapes``), captured as CUDA graphs (``cuda_graphs``, the CUDA default).
    ``max_prefill_tokens`` bounds one prefill (requests x longest prompt): more waiting requests are
    admitted at the next steps, so a burst of long prompts neither exhausts memory nor stalls the
    running streams for long.
    """

    def __init__(self, model: Any, *, max_slots: int = 64, max_seq: int | None = None, device: str = "cpu",
                 dtype: torch.dtype | None = None, cuda_graphs: bool | None = None,
                 static_shapes: bool | None = None, max_prefill_tokens: int = 8192) -> None:
        self.device = torch.device(device)
        dtype = dtype or next(model.parameters()).dtype
        self.weights = GPT2Weights(model, self.device, dtype)
        self.max_seq = min(max_seq or self.weights.n_positions, self.weights.n_positions)
        self.cache = KVCache(self.weights, max_slots, self.max_seq, self.device, dtype)
        self.runner = GPT2Runner(self.weights, self.cache)
        self.max_slots = max_slots
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # slot -> request
        self._cancelled = 0  # requests marked cancelled and not yet retired
        # Host copy of each slot's next position (0 for a free slot): the span of a step is known
        # without reading the device.
        self._pos = [0] * max_slots
        self.positions = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.last_tokens = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.seen = torch.zeros(max_slots, self.weights.vocab_size, dtype=torch.bool, device=self.device)
        # Per slot: how often each token was generated (OpenAI's frequency and presence penalties).
        self.counts = torch.zeros(max_slots, self.weights.vocab_size, dtype=torch.float32, device=self.device)
        self._ids = itertools.count()
        use_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if use_graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        static = use_graphs if static_shapes is None else static_shapes
        if use_graphs and not static:
            raise ValueError("CUDA graphs need static shapes")
        self.decoder = (StepDecoder(self.runner, self.last_tokens, self.positions, capture=use_graphs)
                        if static else None)
        self.cuda_graphs = use_graphs

    # -- requests --------------------------------------------------------------------------------

    def add(self, prompt: Sequence[int], params: SamplingParams | None = None) -> Request:
        params = params or SamplingParams()
        params.validate()
        if not prompt:
            raise ValueError("the prompt must hold at least one token")
        if len(prompt) + params.max_new_tokens > self.max_seq:
            raise ValueError(f"prompt ({len(prompt)} tokens) + max_new_tokens ({params.max_new_tokens}) is over "
                             f"the engine's {self.max_seq} positions")
        if max(prompt) >= self.weights.vocab_size or min(prompt) < 0:
            raise ValueError(f"token ids must be in [0, {self.weights.vocab_size})")
        request = Request(next(self._ids), list(prompt), params)
        if params.do_sample:
            request.seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.waiting.append(request)
        return request

    def cancel(self, request: Request) -> None:
        """Free the request's slot at the next step (a client went away)."""
        if not request.cancelled and not request.finished:
            request.cancelled = True
            self._cancelled += 1

    def fail_all(self) -> list[Request]:
        """End every running and waiting request with ``error`` (after a failed step); frees all slots."""
        failed = [*self.running.values(), *self.waiting]
        for req in failed:
            req.finish_reason = "error"
        for slot in self.running:
            self._pos[slot] = 0
        self.running.clear()
        self.waiting.clear()
        self._cancelled = 0
        return failed

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- stepping --------------------------------------------------------------------------------

    def step(self) -> list[StepEvent]:
        events: list[StepEvent] = []
        if self._cancelled:
            events += self._retire_cancelled()
        decoding = sorted(self.running)  # slots of requests that already have a token to feed
        admitted = self._admit()
        if admitted:
            scored = [i for i, r in enumerate(admitted) if r.params.prompt_logprobs]
            logits, prompt_logprobs = self.runner.prefill([r.slot for r in admitted],  # type: ignore[misc]
                                                          [r.prompt for r in admitted], scored=scored)
            for i, values in prompt_logprobs.items():
                admitted[i].prompt_logprobs = values
            events += self._sample_and_advance(admitted, logits, advance=False)
        if decoding:
            # Rows 0..n-1 run; holes (free or just-admitted slots) compute throw-away values.
            n = decoding[-1] + 1
            if self.decoder is not None:
                rows, span = self.decoder.bucket(n, max(self._pos[:n]) + 1)
                self.positions[:rows].copy_(torch.tensor(self._pos[:rows]))
                logits = self.decoder(n, span)
            else:
                self.positions[:n].copy_(torch.tensor(self._pos[:n]))
                span = max(self._pos[:n]) + 1  # eager: attend only to the positions in use
                logits = self.runner.decode(self.last_tokens[:n], self.positions[:n], span)
            if len(decoding) < n:
                logits = logits[torch.tensor(decoding, device=self.device)]
            events += self._sample_and_advance([self.running[s] for s in decoding], logits, advance=True)
        return events

    def _retire_cancelled(self) -> list[StepEvent]:
        events = []
        for req in list(self.running.values()):
            if req.cancelled:
                self._free(req, "cancelled")
                events.append(StepEvent(req, None, True))
        if any(r.cancelled for r in self.waiting):
            for req in self.waiting:
                if req.cancelled:
                    req.finish_reason = "cancelled"
                    events.append(StepEvent(req, None, True))
            self.waiting = deque(r for r in self.waiting if not r.cancelled)
        self._cancelled = 0
        return events

    def _free(self, req: Request, reason: str) -> None:
        req.finish_reason = reason
        del self.running[req.slot]  # type: ignore[arg-type]
        self._pos[req.slot] = 0  # type: ignore[index]

    def _admit(self) -> list[Request]:
        free = [s for s in range(self.max_slots) if s not in self.running]
        admitted: list[Request] = []
        longest = 0
        while self.waiting and len(admitted) < len(free):
            nxt = self.waiting[0]
            longest_with = max(longest, len(nxt.prompt))
            if admitted and (len(admitted) + 1) * longest_with > self.max_prefill_tokens:
                break  # the rest joins at the next steps
            self.waiting.popleft()
            nxt.slot, longest = free[len(admitted)], longest_with
            self.running[nxt.slot] = nxt
            self._pos[nxt.slot] = len(nxt.prompt)
            admitted.append(nxt)
        penalized = [r for r in admitted if r.params.repetition_penalty != 1.0]
        if penalized:  # the seen-token mask is kept only for requests that use it
            self.seen[torch.tensor([r.slot for r in penalized], device=self.device)] = False
            rows = [r.slot for r in penalized for _ in r.prompt]
            cols = [t for r in penalized for t in r.prompt]
            self.seen[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)] = True
        counted = [r.slot for r in admitted if _counts_tokens(r.params)]
        if counted:
            self.counts[torch.tensor(counted, device=self.device)] = 0
        return admitted

    def _sample_and_advance(self, reqs: list[Request], logits: torch.Tensor, *, advance: bool) -> list[StepEvent]:
        """Pick each request's next token from its row of ``logits``; retire the finished ones. ``advance``:
        the token fed this step was at the slot's position, so the new one goes one further (after a
        prefill the first new token sits at len(prompt), where the position already points)."""
        dev = self.device
        scored = [i for i, r in enumerate(reqs) if r.params.logprobs is not None]
        # Log-probabilities as the model gives them, before the request's parameters change them.
        raw = torch.log_softmax(logits[torch.tensor(scored, device=dev)].float(), dim=-1) if scored else None
        penalized = [i for i, r in enumerate(reqs) if r.params.repetition_penalty != 1.0]
        if penalized:
            rows = torch.tensor(penalized, device=dev)
            pen_slots = torch.tensor([reqs[i].slot for i in penalized], device=dev)
            factors = torch.tensor([reqs[i].params.repetition_penalty for i in penalized], device=dev)
            logits = logits.clone()
            logits[rows] = apply_repetition_penalty(logits[rows], self.seen[pen_slots], factors[:, None])
        counted = [i for i, r in enumerate(reqs) if _counts_tokens(r.params)]
        if counted:
            rows_c = torch.tensor(counted, device=dev)
            count_slots = torch.tensor([reqs[i].slot for i in counted], device=dev)
            frequency = torch.tensor([reqs[i].params.frequency_penalty for i in counted], device=dev)[:, None]
            presence = torch.tensor([reqs[i].params.presence_penalty for i in counted], device=dev)[:, None]
            logits = logits.clone() if not penalized else logits
            logits[rows_c] = apply_frequency_presence(logits[rows_c].float(), self.counts[count_slots], frequency,
                                                      presence).to(logits.dtype)
        biased = [i for i, r in enumerate(reqs) if r.params.logit_bias]
        if biased:
            logits = apply_logit_bias(logits, biased, [reqs[i].params.logit_bias for i in biased])
        tokens = logits.argmax(dim=-1)
        sampled = [i for i, r in enumerate(reqs) if r.params.do_sample]
        if sampled:
            sub = scale_by_temperature(logits[sampled], [reqs[i].params.temperature for i in sampled])
            sub = filter_top_k_top_p(sub, [reqs[i].params.top_k for i in sampled],
                                     [reqs[i].params.top_p for i in sampled])
            sub = filter_typical(sub, [reqs[i].params.typical_p for i in sampled])
            # Each request's draw is a function of its seed and position only (see seeded_uniform):
            # one batched draw for all rows, the same text for a seed whatever else is in the batch.
            seeds = [reqs[i].seed or 0 for i in sampled]  # set by add() for every sampled request
            uniform = seeded_uniform(seeds, [len(reqs[i].output) for i in sampled], self.device)
            tokens[torch.tensor(sampled, device=self.device)] = sample_rows(torch.softmax(sub, dim=-1), uniform)
        # One batched write for the whole step (not one per request: on a GPU each is a kernel launch).
        slots = [r.slot for r in reqs]
        self.last_tokens[torch.tensor(slots, device=self.device)] = tokens
        if penalized:
            self.seen[pen_slots, tokens[rows]] = True
        if counted:
            self.counts[count_slots, tokens[rows_c]] += 1
        logprobs: dict[int, tuple[float, list[tuple[int, float]] | None]] = {}
        if raw is not None:
            chosen = raw.gather(1, tokens[torch.tensor(scored, device=dev)][:, None])[:, 0].tolist()
            widest = max(reqs[i].params.logprobs or 0 for i in scored)
            best = torch.topk(raw, widest, dim=-1) if widest else None
            best_ids = best.indices.tolist() if best is not None else None
            best_values = best.values.tolist() if best is not None else None
            for j, i in enumerate(scored):
                k = reqs[i].params.logprobs or 0
                top = list(zip(best_ids[j][:k], best_values[j][:k], strict=True)) if best_ids and best_values and k \
                    else None
                logprobs[i] = (chosen[j], top)
        out = tokens.tolist()
        eos = self.weights.eos_token_id
        pos = self._pos
        events = []
        for i, (req, slot, token) in enumerate(zip(reqs, slots, out, strict=True)):
            req.output.append(token)
            params = req.params
            if token == eos and not params.ignore_eos:
                self._free(req, "eos")
            elif len(req.output) >= params.max_new_tokens:
                self._free(req, "length")
            elif advance:
                pos[slot] += 1  # type: ignore[index]
            logprob, top = logprobs.get(i, (None, None))
            events.append(StepEvent(req, token, req.finish_reason is not None, logprob, top))
        return events

    # -- offline use -----------------------------------------------------------------------------

    def run(self) -> Iterator[StepEvent]:
        while self.has_work:
            yield from self.step()

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams | Sequence[SamplingParams] | None = None
                 ) -> list[list[int]]:
        """Generate for all prompts with continuous batching; the new tokens of each, in order."""
        if params is None or isinstance(params, SamplingParams):
            params = [params or SamplingParams()] * len(prompts)
        reqs = [self.add(p, sp) for p, sp in zip(prompts, params, strict=True)]
        for _ in self.run():
            pass
        return [r.output for r in reqs]
