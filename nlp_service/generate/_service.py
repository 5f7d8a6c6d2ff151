"""Serving generation: one engine thread steps the continuous batch; each request is an async stream
of text pieces. Bounded concurrency (engine slots + a bounded queue), stop sequences, incremental
detokenization, and cancellation when a client goes away."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._engine import GPT2Engine, Request
from ._sampling import SamplingParams

log = logging.getLogger("nlp_service.generate")


class QueueFull(Exception):
    """Every slot is busy and the waiting queue is full: try again shortly."""


class PromptTooLong(ValueError):
    def __init__(self, message: str, limit: int, got: int) -> None:
        super().__init__(message)
        self.limit, self.got = limit, got


@dataclass
class Piece:
    """One step of a generation as the client sees it."""

    token_id: int | None
    text: str  # new text (may be empty while a multi-byte character is incomplete)
    finish_reason: str | None = None  # "length" | "eos" | "stop" | "cancelled" on the last piece


@dataclass
class _Stream:
    request: Request
    queue: asyncio.Queue[tuple[int | None, bool]]
    loop: asyncio.AbstractEventLoop
    tokens: list[int] = field(default_factory=list)


class Detokenizer:
    """Turns a growing list of token ids into text increments; holds back an incomplete UTF-8 tail."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            return ""
        new = text[len(self.emitted):]
        self.emitted = text
        return new


class GenerationWorker:
    """The engine of one generator model, stepped by a dedicated thread."""

    def __init__(self, model: Any, tokenizer: Any, *, device: str, max_slots: int, max_queue: int,
                 max_input_tokens: int, max_total_tokens: int) -> None:
        # The KV cache holds max_slots x max_total_tokens positions: no more than a request may use.
        self.engine = GPT2Engine(model, max_slots=max_slots, device=device, max_seq=max_total_tokens)
        self.tokenizer = tokenizer
        self.max_queue = max_queue
        self.max_input_tokens = min(max_input_tokens, self.engine.max_seq - 1)
        self.max_total_tokens = min(max_total_tokens, self.engine.max_seq)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._streams: dict[int, _Stream] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self.stats = {"requests": 0, "rejected": 0, "steps": 0, "tokens": 0, "max_running": 0}

    # -- limits -----------------------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def check(self, prompt_ids: Sequence[int], max_new_tokens: int) -> None:
        n = len(prompt_ids)
        if n == 0:
            raise PromptTooLong("the prompt is empty", self.max_input_tokens, 0)
        if n > self.max_input_tokens:
            raise PromptTooLong(f"the prompt has {n} tokens (at most {self.max_input_tokens})",
                                self.max_input_tokens, n)
        if n + max_new_tokens > self.max_total_tokens:
            raise PromptTooLong(f"prompt ({n} tokens) + max_new_tokens ({max_new_tokens}) = {n + max_new_tokens} "
                                f"is over the limit of {self.max_total_tokens} total tokens",
                                self.max_total_tokens, n + max_new_tokens)

    # -- streaming --------------------------------------------------------------------------------

    async def stream(self, prompt_ids: Sequence[int], params: SamplingParams) -> AsyncIterator[Piece]:
        """Pieces of text as they are generated; the last one carries the finish reason. Closing the
        iterator early (a client that went away) frees the request's slot at the next step."""
        self.check(prompt_ids, params.max_new_tokens)
        loop = asyncio.get_running_loop()
        with self._wake:
            if self._closed:
                raise RuntimeError("the generation worker is closed")
            # Cancelled requests leave at the next step: their places count as free already.
            busy = sum(not r.cancelled for r in itertools.chain(self.engine.running.values(), self.engine.waiting))
            if busy >= self.engine.max_slots + self.max_queue:
                self.stats["rejected"] += 1
                raise QueueFull(f"{busy} requests running or queued (limit {self.engine.max_slots} + "
                                f"{self.max_queue})")
            request = self.engine.add(prompt_ids, params)
            stream = _Stream(request, asyncio.Queue(), loop)
            self._streams[request.id] = stream
            self.stats["requests"] += 1
            self._ensure_thread()
            self._wake.notify()
        detok = Detokenizer(self.tokenizer)
        stops = [x for x in params.stop if x]
        sent = 0  # characters of detok.emitted already given to the consumer
        finished = False
        try:
            while True:
                token, done = await stream.queue.get()
                reason = request.finish_reason if done else None
                if token is not None and reason != "eos":
                    detok.add(token)
                full = detok.emitted
                hit = _first_stop(full, stops) if stops else None
                if hit is not None:  # the text ends before the stop sequence, which is not returned
                    self.engine.cancel(request)
                    finished = True
                    yield Piece(token, full[sent:hit], "stop")
                    return
                # Hold back a tail that may be the start of a stop sequence.
                end = len(full) if done else len(full) - _stop_prefix_length(full, stops)
                chunk, sent = full[sent:end], max(sent, end)
                if done:
                    finished = True
                    yield Piece(token, chunk, reason)
                    return
                yield Piece(token, chunk)
        finally:
            if not finished:
                self.engine.cancel(request)  # the consumer stopped listening
            with self._lock:
                self._streams.pop(request.id, None)

    async def complete(self, prompt_ids: Sequence[int], params: SamplingParams) -> tuple[str, list[int], str]:
        """The whole generation: (text, token ids, finish reason)."""
        text, ids, reason = [], [], "length"
        async for piece in self.stream(prompt_ids, params):
            text.append(piece.text)
            if piece.token_id is not None and piece.finish_reason != "stop":
                ids.append(piece.token_id)
            if piece.finish_reason:
                reason = piece.finish_reason
        return "".join(text), ids, reason

    # -- the engine thread ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self.engine.has_work:
                    self._wake.wait()
                if self._closed:
                    return
                try:
                    events = self.engine.step()
                except Exception:  # a failing step must not leave clients waiting forever
                    log.exception("generation step failed")
                    events = []
                    for req in [*self.engine.running.values(), *self.engine.waiting]:
                        req.finish_reason = "error"
                        events.append(_Failed(req))
                    self.engine.running.clear()
                    self.engine.waiting.clear()
                self.stats["steps"] += 1
                self.stats["max_running"] = max(self.stats["max_running"], len(self.engine.running))
                targets = [(self._streams.get(e.request.id), e) for e in events]
            for stream, event in targets:
                if stream is None:
                    continue
                self.stats["tokens"] += event.token is not None
                stream.loop.call_soon_threadsafe(stream.queue.put_nowait, (event.token, event.finished))

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class _Failed:
    request: Request
    token: int | None = None
    finished: bool = True


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Start of the earliest stop sequence in ``text`` (the text is cut there), or None."""
    found = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return min(found) if found else None


def _stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop sequence."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
