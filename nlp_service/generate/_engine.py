"""A decode engine for GPT-2 on the model's own weights: a static, preallocated KV cache, batched
prefill, and continuous batching (requests join and leave the running batch between decode steps).

The math is GPT-2's (pre-LayerNorm blocks, tanh-GELU MLP, learned positions, tied output
embedding); greedy output equals transformers' ``generate`` token for token (tested). On CPU the
steps run eagerly; the decode step only uses fixed-shape tensors so that it can be captured as a
CUDA graph per batch-size bucket on a GPU.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ._sampling import SamplingParams, apply_repetition_penalty, filter_top_k_top_p


@dataclass
class _Layer:
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    qkv_w: torch.Tensor  # (3E, E): F.linear layout (transformers' Conv1D stores the transpose)
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
                get(p + "attn.c_attn.weight").t().contiguous(), get(p + "attn.c_attn.bias"),
                get(p + "attn.c_proj.weight").t().contiguous(), get(p + "attn.c_proj.bias"),
                get(p + "ln_2.weight"), get(p + "ln_2.bias"),
                get(p + "mlp.c_fc.weight").t().contiguous(), get(p + "mlp.c_fc.bias"),
                get(p + "mlp.c_proj.weight").t().contiguous(), get(p + "mlp.c_proj.bias"),
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
    def prefill(self, slots: Sequence[int], prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Run the prompts (right-padded into one batch), fill their cache rows; logits (N, V) of each
        prompt's last token."""
        w, dev = self.w, self.cache.k.device
        lengths = torch.tensor([len(p) for p in prompts], device=dev)
        t = int(lengths.max())
        ids = torch.zeros(len(prompts), t, dtype=torch.long, device=dev)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(p, device=dev)
        pos = torch.arange(t, device=dev)
        x = w.wte[ids] + w.wpe[pos][None]
        causal = pos[None, :] <= pos[:, None]  # (T, T)
        mask = causal[None, None] & (pos[None, None, None, :] < lengths[:, None, None, None])
        rows = torch.tensor(list(slots), device=dev)
        for li, layer in enumerate(w.layers):
            h = F.layer_norm(x, (w.n_embd,), layer.ln1_w, layer.ln1_b, w.eps)
            q, k, v = F.linear(h, layer.qkv_w, layer.qkv_b).split(w.n_embd, dim=-1)
            q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
            self.cache.k[li, rows, :, :t] = k
            self.cache.v[li, rows, :, :t] = v
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = self._block_tail(layer, x, attn)
        last = x[torch.arange(len(prompts), device=dev), lengths - 1]
        return self._logits(last[:, None])[:, 0]

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        """One step for cache rows 0..N-1 (N = len(tokens)): ``tokens`` at ``positions``; attention reads
        the first ``span`` cache positions (a fixed value keeps shapes static for graph capture)."""
        w = self.w
        n = tokens.size(0)
        rows = torch.arange(n, device=tokens.device)
        x = (w.wte[tokens] + w.wpe[positions])[:, None]  # (N, 1, E)
        mask = (torch.arange(span, device=tokens.device)[None, :] <= positions[:, None])[:, None, None]
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


class GraphDecoder:
    """Decode steps captured as CUDA graphs, one per batch-size bucket.

    Each graph runs rows 0..b-1 over every cache position (static shapes); a step picks the smallest
    bucket that holds its rows, copies tokens and positions into the graph's inputs and replays it,
    so a step costs one launch instead of hundreds of small kernels issued from Python. All graphs
    are captured when the engine starts, before any request has cache rows to disturb.
    """

    def __init__(self, runner: GPT2Runner, max_rows: int) -> None:
        self.runner = runner
        self.buckets = sorted({b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if b <= max_rows} | {max_rows})
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        dev = runner.cache.k.device
        span = runner.cache.max_seq
        for b in self.buckets:
            tokens = torch.zeros(b, dtype=torch.long, device=dev)
            positions = torch.zeros(b, dtype=torch.long, device=dev)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up: kernels chosen and workspaces allocated outside the capture
                    runner.decode(tokens, positions, span)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                logits = runner.decode(tokens, positions, span)
            self.graphs[b] = (graph, tokens, positions, logits)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
        b = next(x for x in self.buckets if x >= n)
        graph, tok_in, pos_in, logits = self.graphs[b]
        tok_in.copy_(tokens[:b])
        pos_in.copy_(positions[:b])
        graph.replay()
        return logits[:n]


@dataclass
class Request:
    """One generation in the engine: its prompt, parameters, and what it has produced so far."""

    id: int
    prompt: list[int]
    params: SamplingParams
    output: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "length" | "eos" | "stop" | "cancelled"
    slot: int | None = None
    generator: torch.Generator | None = None
    cancelled: bool = False

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class StepEvent:
    request: Request
    token: int | None  # None when the request ended without a new token (cancelled)
    finished: bool


class GPT2Engine:
    """Continuous batching over a fixed number of slots.

    ``add`` queues a request; each ``step`` admits waiting requests into free slots (one batched
    prefill, which yields their first token), then runs one decode step for every running request
    and retires those that finished. A request never waits for a longer one to end.
    """

    def __init__(self, model: Any, *, max_slots: int = 64, max_seq: int | None = None, device: str = "cpu",
                 dtype: torch.dtype | None = None, cuda_graphs: bool | None = None) -> None:
        self.device = torch.device(device)
        dtype = dtype or next(model.parameters()).dtype
        self.weights = GPT2Weights(model, self.device, dtype)
        self.max_seq = min(max_seq or self.weights.n_positions, self.weights.n_positions)
        self.cache = KVCache(self.weights, max_slots, self.max_seq, self.device, dtype)
        self.runner = GPT2Runner(self.weights, self.cache)
        self.max_slots = max_slots
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # slot -> request
        self.positions = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.last_tokens = torch.zeros(max_slots, dtype=torch.long, device=self.device)
        self.seen = torch.zeros(max_slots, self.weights.vocab_size, dtype=torch.bool, device=self.device)
        self._ids = itertools.count()
        use_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if use_graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.graphs = GraphDecoder(self.runner, max_slots) if use_graphs else None

    # -- requests --------------------------------------------------------------------------------

    def add(self, prompt: Sequence[int], params: SamplingParams | None = None) -> Request:
        params = params or SamplingParams()
        params.validate()
        if not prompt:
            raise ValueError("the prompt must hold at least one token")
        if len(prompt) + params.max_new_tokens > self.max_seq:
            raise ValueError(f"prompt ({len(prompt)} tokens) + max_new_tokens ({params.max_new_tokens}) is over "
                             f"the engine's {self.max_seq} positions")
        request = Request(next(self._ids), list(prompt), params)
        if params.do_sample:
            request.generator = torch.Generator(device=self.device)
            request.generator.manual_seed(params.seed if params.seed is not None else torch.seed())
        self.waiting.append(request)
        return request

    def cancel(self, request: Request) -> None:
        """Free the request's slot at the next step (a client went away)."""
        request.cancelled = True

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- stepping --------------------------------------------------------------------------------

    def step(self) -> list[StepEvent]:
        events: list[StepEvent] = []
        for slot, req in list(self.running.items()):
            if req.cancelled:
                req.finish_reason = "cancelled"
                events.append(StepEvent(req, None, True))
                del self.running[slot]
        while self.waiting and self.waiting[0].cancelled:
            req = self.waiting.popleft()
            req.finish_reason = "cancelled"
            events.append(StepEvent(req, None, True))
        decoding = sorted(self.running)  # requests that already have a token to feed
        admitted = self._admit()
        if admitted:
            logits = self.runner.prefill([r.slot for r in admitted], [r.prompt for r in admitted])  # type: ignore[misc]
            events += self._sample_and_advance(admitted, logits)
        if decoding:
            n = max(decoding) + 1  # rows 0..n-1; holes (free slots) compute throw-away values
            if self.graphs is not None:
                logits = self.graphs(self.last_tokens, self.positions, n)
            else:
                span = int(self.positions[:n].max()) + 1  # eager: attend only to the positions in use
                logits = self.runner.decode(self.last_tokens[:n], self.positions[:n], span)
            reqs = [self.running[s] for s in decoding]
            events += self._sample_and_advance(reqs, logits[decoding])
        return events

    def _admit(self) -> list[Request]:
        free = [s for s in range(self.max_slots) if s not in self.running]
        admitted = []
        while self.waiting and free:
            req = self.waiting.popleft()
            req.slot = free.pop(0)
            self.running[req.slot] = req
            self.seen[req.slot] = False
            self.seen[req.slot, torch.tensor(req.prompt, device=self.device)] = True
            self.positions[req.slot] = len(req.prompt)
            admitted.append(req)
        return admitted

    def _sample_and_advance(self, reqs: list[Request], logits: torch.Tensor) -> list[StepEvent]:
        slots = torch.tensor([r.slot for r in reqs], device=self.device)
        penalties = [r.params.repetition_penalty for r in reqs]
        if any(p != 1.0 for p in penalties):
            logits = apply_repetition_penalty(logits, self.seen[slots],
                                              torch.tensor(penalties, device=self.device)[:, None])
        tokens = logits.argmax(dim=-1)
        sampled = [i for i, r in enumerate(reqs) if r.params.do_sample]
        if sampled:
            sub = logits[sampled] / torch.tensor([reqs[i].params.temperature for i in sampled],
                                                 device=self.device)[:, None]
            sub = filter_top_k_top_p(sub, [reqs[i].params.top_k for i in sampled],
                                     [reqs[i].params.top_p for i in sampled])
            probs = torch.softmax(sub, dim=-1)
            for j, i in enumerate(sampled):  # each request draws from its own generator (its seed)
                tokens[i] = torch.multinomial(probs[j], 1, generator=reqs[i].generator)[0]
        out = tokens.tolist()
        # One batched write each for the whole step (not three tiny ones per request: on a GPU each
        # would be its own kernel launch).
        self.seen[slots, tokens] = True
        self.last_tokens[slots] = tokens
        events = []
        advancing = []
        for req, token in zip(reqs, out, strict=True):
            req.output.append(token)
            if token == self.weights.eos_token_id and not req.params.ignore_eos:
                req.finish_reason = "eos"
            elif len(req.output) >= req.params.max_new_tokens:
                req.finish_reason = "length"
            if req.finished:
                del self.running[req.slot]  # type: ignore[arg-type]
            elif len(req.output) > 1:
                # After a decode step the token just produced sits at the next position (after the
                # prefill it sits at len(prompt), where the position already points).
                advancing.append(req.slot)
            events.append(StepEvent(req, token, req.finished))
        if advancing:
            self.positions[torch.tensor(advancing, device=self.device)] += 1
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
