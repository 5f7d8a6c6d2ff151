"""Serving generation: one engine thread steps the continuous batch; each request is an async stream
of text pieces. Bounded concurrency (engine slots + a bounded queue), stop sequences, incremental
detokenization, and cancellation when a client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import secrets
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, LimitExceeded, NLPServiceError
from ..generate import GeneratorModel, GPT2Engine, Request, SamplingParams, StepEvent, first_stop
from ._limits import QueueFull
from ._metrics import (
    GENERATION_ERRORS,
    GENERATIONS_RUNNING,
    GENERATIONS_WAITING,
    REJECTED,
    TIME_TO_FIRST_TOKEN,
    TOKENS_GENERATED,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ._manager import ModelManager

log = logging.getLogger("nlp_service.generate")


class PromptTooLong(LimitExceeded):
    """A prompt over the longest prompt, or prompt + new tokens over the total, in tokens."""


class GenerationFailed(NLPServiceError):
    """The engine failed while this request was running: the server's fault (500), reported as an error,
    never as a text cut short."""

    code = "generation_failed"


class UnknownTokens(InvalidInput):
    """The tokenizer gave ids that the model has no embedding for (a tokenizer with added tokens
    saved beside a model that was not resized)."""


@dataclass(frozen=True)
class TokenLogprob:
    """A token, its text alone, and its log-probability under the model (before sampling's changes)."""

    token_id: int
    text: str
    logprob: float | None  # None for a prompt's first token, which nothing predicts


@dataclass
class Piece:
    """One step of a generation as the client sees it."""

    token_id: int | None
    text: str  # new text (may be empty while a multi-byte character is incomplete)
    finish_reason: str | None = None  # "length" | "eos" | "stop" | "cancelled" on the last piece
    # With SamplingParams.logprobs set: the token's log-probability and its likeliest alternatives.
    logprob: float | None = None
    top_logprobs: list[TokenLogprob] | None = None
    # On the first piece, with SamplingParams.prompt_logprobs: each prompt token given those before it.
    prompt_logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class _Message:
    """What the engine thread hands a stream after a step."""

    token: int | None
    reason: str | None  # the finish reason, on the last message
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None
    prompt_logprobs: list[float] | None = None  # on the first message, when asked for


@dataclass
class _Stream:
    queue: asyncio.Queue[_Message]
    loop: asyncio.AbstractEventLoop
    admitted: float  # time.perf_counter() when the request was queued
    counted: bool = True  # holds one of the worker's places until released
    started: bool = False  # has had its first token


class Detokenizer:
    """Turns a growing list of token ids into text. Only the tokens since the last complete character
    are decoded at each step (byte-level BPE decodes piecewise), so a long generation costs linear,
    not quadratic, time; an incomplete UTF-8 tail waits for the tokens that complete it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pending: list[int] = []
        self.emitted = ""

    def add(self, token_id: int) -> None:
        self.pending.append(token_id)
        text = self.tokenizer.decode(self.pending, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if not text.endswith("\ufffd"):  # else: a character split across tokens, wait for the rest
            self.emitted += text
            self.pending = []


class GenerationWorker:
    """The engine of one generator model, stepped by a dedicated thread."""

    @classmethod
    def for_model(cls, model: GeneratorModel, settings: Settings) -> GenerationWorker:
        """The worker of a loaded generator, with the service's limits."""
        return cls(model.model, model.tokenizer, device=str(model.device), max_slots=settings.generation_max_batch,
                   max_queue=settings.generation_max_queue, max_input_tokens=settings.generation_max_input_tokens,
                   max_total_tokens=settings.generation_max_total_tokens,
                   max_stop_sequences=settings.generation_max_stop_sequences,
                   max_stop_chars=settings.generation_max_stop_chars, name=model.name)

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_slots: int, max_queue: int,
                 max_input_tokens: int, max_total_tokens: int, max_stop_sequences: int = 8,
                 max_stop_chars: int = 256, name: str = "generator") -> None:
        # The KV cache holds max_slots x max_total_tokens positions: no more than a request may use.
        start = time.perf_counter()
        self.engine = GPT2Engine(model, max_slots=max_slots, device=device, max_seq=max_total_tokens)
        graphs = len(self.engine.decoder.graphs) if self.engine.decoder is not None else 0
        log.info("generation engine on %s: %d slots x %d positions, %d CUDA graphs, ready in %.1f s", device,
                 max_slots, self.engine.max_seq, graphs, time.perf_counter() - start)
        self.tokenizer = tokenizer
        self.max_queue = max_queue
        self.max_input_tokens = min(max_input_tokens, self.engine.max_seq - 1)
        self.max_total_tokens = min(max_total_tokens, self.engine.max_seq)
        # Each generated token is matched against every stop sequence: their number and length bound that cost.
        self.max_stop_sequences = max_stop_sequences
        self.max_stop_chars = max_stop_chars
        self.name = name
        self._running = GENERATIONS_RUNNING.labels(name)
        self._waiting = GENERATIONS_WAITING.labels(name)
        self._tokens = TOKENS_GENERATED.labels(name)
        self._ttft = TIME_TO_FIRST_TOKEN.labels(name)
        # Short critical sections only: the engine thread never holds this lock while it steps, so the
        # event loop never waits for a decode step to finish.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._inbox: list[tuple[int, list[int], SamplingParams]] = []
        self._cancelled: set[int] = set()
        self._streams: dict[int, _Stream] = {}
        self._active = 0  # admitted and not yet finished or cancelled
        self._next_id = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.stats = {"requests": 0, "rejected": 0, "steps": 0, "tokens": 0, "max_running": 0}

    # -- limits -----------------------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def check(self, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        """The one check of a generation request (limits, token ids); the engine's own is a safety net."""
        max_new_tokens = params.max_new_tokens
        stops = [s for s in params.stop if s]
        if len(stops) > self.max_stop_sequences:
            raise LimitExceeded(f"stop: {len(stops)} stop sequences (at most {self.max_stop_sequences})",
                                limit=self.max_stop_sequences, got=len(stops),
                                setting="NLP_GENERATION_MAX_STOP_SEQUENCES")
        for i, stop in enumerate(stops):
            if len(stop) > self.max_stop_chars:
                raise LimitExceeded(f"stop[{i}] has {len(stop)} characters (at most {self.max_stop_chars})",
                                    limit=self.max_stop_chars, got=len(stop), index=i,
                                    setting="NLP_GENERATION_MAX_STOP_CHARS")
        n = len(prompt_ids)
        if n == 0:
            raise PromptTooLong("the prompt is empty", limit=self.max_input_tokens, got=0,
                                setting="NLP_GENERATION_MAX_INPUT_TOKENS")
        if n > self.max_input_tokens:
            raise PromptTooLong(f"the prompt has {n} tokens (at most {self.max_input_tokens})",
                                limit=self.max_input_tokens, got=n, setting="NLP_GENERATION_MAX_INPUT_TOKENS")
        if n + max_new_tokens > self.max_total_tokens:
            raise PromptTooLong(f"prompt ({n} tokens) + max_new_tokens ({max_new_tokens}) = {n + max_new_tokens} "
                                f"is over the limit of {self.max_total_tokens} total tokens",
                                limit=self.max_total_tokens, got=n + max_new_tokens,
                                setting="NLP_GENERATION_MAX_TOTAL_TOKENS")
        vocab = self.engine.weights.vocab_size
        outside = sorted({token for token, _ in params.logit_bias if token >= vocab})[:5]
        if outside:
            raise InvalidInput(f"logit_bias: token ids {outside} are not in this model's vocabulary (ids 0 to "
                               f"{vocab - 1})")
        if max(prompt_ids) >= vocab or min(prompt_ids) < 0:
            bad = sorted({i for i in prompt_ids if not 0 <= i < vocab})[:5]
            raise UnknownTokens(f"inputs: the prompt has token ids {bad} that this model has no embedding for (its "
                                f"vocabulary has {vocab} ids): its tokenizer and weights do not match")

    def check_room(self) -> None:
        """:class:`QueueFull` when every slot is busy and the queue is full. :meth:`stream` checks it when it
        admits a request; callers may check first too, before tokenizing a prompt that would be refused."""
        if self._active >= self.engine.max_slots + self.max_queue:
            self.stats["rejected"] += 1
            REJECTED.labels(self.name).inc()
            raise QueueFull(f"the generation queue is full: {self._active} requests running or queued (limit "
                            f"{self.engine.max_slots} slots + {self.max_queue} queued); try again shortly")

    # -- streaming --------------------------------------------------------------------------------

    async def stream(self, prompt_ids: Sequence[int], params: SamplingParams) -> AsyncGenerator[Piece, None]:
        """Pieces of text as they are generated; the last one carries the finish reason. Closing the
        iterator early (a client that went away) frees the request's slot at the next step."""
        self.check(prompt_ids, params)
        loop = asyncio.get_running_loop()
        with self._wake:
            if self._closed:
                raise RuntimeError("the generation worker is closed")
            self.check_room()
            rid = next(self._next_id)
            stream = _Stream(asyncio.Queue(), loop, time.perf_counter())
            self._streams[rid] = stream
            self._inbox.append((rid, list(prompt_ids), params))
            self._active += 1
            self.stats["requests"] += 1
            self._ensure_thread()
            self._wake.notify()
        detok = Detokenizer(self.tokenizer)
        stops = [x for x in params.stop if x]
        sent = 0  # characters of detok.emitted already given to the consumer
        try:
            while True:
                message = await stream.queue.get()
                token, reason = message.token, message.reason
                if reason == "error":
                    raise GenerationFailed("generation failed in the engine; the error is in the server log")
                done = reason is not None
                if token is not None and reason != "eos":
                    detok.add(token)
                full = detok.emitted
                hit = first_stop(full, stops) if stops else None
                extra = self._scores(message, prompt_ids)
                if hit is not None:  # the text ends before the stop sequence, which is not returned
                    yield Piece(token, full[sent:hit], "stop", **extra)
                    return
                # Hold back a tail that may be the start of a stop sequence.
                end = len(full) if done else len(full) - _stop_prefix_length(full, stops)
                chunk, sent = full[sent:end], max(sent, end)
                if done:
                    yield Piece(token, chunk, reason, **extra)
                    return
                yield Piece(token, chunk, **extra)
        finally:
            with self._wake:
                self._streams.pop(rid, None)
                if stream.counted:  # ended early (stop sequence, or the consumer went away): free the place now
                    stream.counted = False
                    self._active -= 1
                    self._cancelled.add(rid)
                    self._wake.notify()

    def token_text(self, token_id: int) -> str:
        """One token decoded alone (a piece of a multi-byte character shows as U+FFFD)."""
        return self.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _scores(self, message: _Message, prompt_ids: Sequence[int]) -> dict[str, Any]:
        """A piece's log-probabilities, with the tokens' texts, when the request asked for them."""
        extra: dict[str, Any] = {}
        if message.logprob is not None:
            extra["logprob"] = message.logprob
        if message.top is not None:
            extra["top_logprobs"] = [TokenLogprob(t, self.token_text(t), lp) for t, lp in message.top]
        if message.prompt_logprobs is not None:
            values = [None, *message.prompt_logprobs]
            extra["prompt_logprobs"] = [TokenLogprob(t, self.token_text(t), lp)
                                        for t, lp in zip(prompt_ids, values, strict=True)]
        return extra

    # -- the engine thread ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        requests: dict[int, Request] = {}  # worker id -> engine request (engine thread only)
        ids: dict[int, int] = {}  # engine request id -> worker id
        while True:
            with self._wake:
                while not self._closed and not self._inbox and not self._cancelled and not self.engine.has_work:
                    self._wake.wait()
                if self._closed:
                    return
                inbox, self._inbox = self._inbox, []
                cancelled, self._cancelled = self._cancelled, set()
            ended: list[tuple[int, int | None, str, StepEvent | None]] = []  # (worker id, token, reason, event)
            for rid, prompt, params in inbox:
                try:
                    req = self.engine.add(prompt, params)
                except Exception:  # checked before, so unexpected: end this request, keep serving
                    log.exception("generation request refused by the engine")
                    ended.append((rid, None, "error", None))
                    continue
                requests[rid], ids[req.id] = req, rid
            for rid in cancelled:
                if rid in requests:
                    self.engine.cancel(requests[rid])
            progressed: list[tuple[int, int | None, str | None, StepEvent | None]] = []
            try:
                for event in self.engine.step():
                    rid = ids[event.request.id]
                    if event.finished:
                        ended.append((rid, event.token, event.request.finish_reason or "error", event))
                    else:
                        progressed.append((rid, event.token, None, event))
            except Exception:  # a failing step must not leave clients waiting forever
                log.exception("generation step failed")
                GENERATION_ERRORS.labels(self.name).inc(len(requests))
                self.engine.fail_all()
                # Every request still open here ends with an error, including those that finished
                # earlier in this step (their events were lost with the exception).
                ended += [(rid, None, "error", None) for rid in requests]
                progressed = []
            for rid, *_ in ended:
                req = requests.pop(rid, None)
                if req is not None:
                    ids.pop(req.id, None)
            self.stats["steps"] += 1
            self.stats["max_running"] = max(self.stats["max_running"], len(self.engine.running))
            self._running.set(len(self.engine.running))
            self._waiting.set(len(self.engine.waiting))
            now = time.perf_counter()
            deliveries: dict[asyncio.AbstractEventLoop, list[tuple[_Stream, _Message]]] = {}
            with self._wake:
                for rid, token, reason, event in [*progressed, *ended]:
                    stream = self._streams.get(rid)
                    if stream is None:
                        continue
                    message = _Message(token, reason)
                    if event is not None:
                        message.logprob, message.top = event.logprob, event.top
                    if token is not None:
                        self.stats["tokens"] += 1
                        self._tokens.inc()
                        if not stream.started:
                            stream.started = True
                            self._ttft.observe(now - stream.admitted)
                            if event is not None:
                                message.prompt_logprobs = event.request.prompt_logprobs
                    if reason is not None and stream.counted:
                        stream.counted = False
                        self._active -= 1
                    deliveries.setdefault(stream.loop, []).append((stream, message))
            # One wake-up of each event loop per step, not one per token: at hundreds of streams the
            # per-call cost of call_soon_threadsafe would otherwise bound the step rate.
            for loop, items in deliveries.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is listening
                    loop.call_soon_threadsafe(_deliver, items)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.stats, "limits": {"max_batch": self.engine.max_slots, "max_queue": self.max_queue,
                                                 "max_input_tokens": self.max_input_tokens,
                                                 "max_total_tokens": self.max_total_tokens}}

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _deliver(items: list[tuple[_Stream, _Message]]) -> None:
    for stream, message in items:
        stream.queue.put_nowait(message)


def _stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop sequence."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


@dataclass
class Generation:
    """A generation that has started: its first piece is there (so a refusal was raised before any
    answer began), the rest arrive from :meth:`pieces`. Close it when the client goes away."""

    prompt_tokens: int
    seed: int | None  # the sampling seed in use (None for greedy decoding)
    first: Piece
    _rest: AsyncGenerator[Piece, None]
    # With SamplingParams.prompt_logprobs: each prompt token given those before it (the first: None).
    prompt_logprobs: list[TokenLogprob] | None = None

    async def pieces(self) -> AsyncIterator[Piece]:
        """Every piece, the first included; the last one carries the finish reason."""
        yield self.first
        async for piece in self._rest:
            yield piece

    async def aclose(self) -> None:
        await self._rest.aclose()


class Generations:
    """Generation requests: the model, and its worker's stream."""

    def __init__(self, models: ModelManager, settings: Settings) -> None:
        self.models, self.settings = models, settings

    def model(self, name: str | None) -> GeneratorModel:
        return self.models.get("generator", name, self.settings.default_generator_model)

    async def start(self, model: GeneratorModel, prompt: str, params: SamplingParams, *,
                    truncate: int | None = None, fit: bool = False) -> Generation:
        """Queue ``prompt`` (only its last ``truncate`` tokens, when given: TGI's truncate); the worker's
        check (limits, token ids, a full queue) raises here. ``fit``: ``max_new_tokens`` is an upper bound
        (OpenAI's ``max_tokens``), cut to what the total-token limit leaves after the prompt."""
        params.validate()
        if truncate is not None and truncate < 1:
            raise InvalidInput("truncate must be at least 1 (tokens of the prompt kept, from its end)")
        worker = self.models.generation_worker(model.name)
        worker.check_room()  # before tokenizing: under overload, refusals must be cheap
        ids = worker.encode(prompt)
        if truncate is not None:
            ids = ids[-truncate:]
        room = worker.max_total_tokens - len(ids)
        if fit and 0 < room < params.max_new_tokens:
            params = dataclasses.replace(params, max_new_tokens=room)
        stream = worker.stream(ids, params)
        first = await anext(stream)
        return Generation(len(ids), params.seed, first, stream, first.prompt_logprobs)

    async def start_many(self, model: GeneratorModel, prompt: str, params: SamplingParams, count: int, *,
                         truncate: int | None = None, fit: bool = False) -> list[Generation]:
        """``count`` generations of one prompt (OpenAI's ``n`` and ``best_of``, TGI's ``best_of``), decoded
        side by side. Sampled ones each get their own seed, ``seed + i`` (from a random seed when none is
        given), so they differ and each can be reproduced alone; greedy ones are all the same text."""
        if count < 1:
            raise InvalidInput("the number of generations must be at least 1")
        if params.do_sample and count > 1:
            base = params.seed if params.seed is not None else secrets.randbits(53)
            variants = [dataclasses.replace(params, seed=(base + i) % 2**64) for i in range(count)]
        else:
            variants = [params] * count
        started: list[Generation] = []
        try:
            for variant in variants:
                started.append(await self.start(model, prompt, variant, truncate=truncate, fit=fit))
        except BaseException:
            for generation in started:  # all or none: free the slots of those that did start
                await generation.aclose()
            raise
        return started
