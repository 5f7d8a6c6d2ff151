"""OpenAI's completions shape: ``POST /v1/completions`` with one prompt or several, ``n`` choices each (the
``best_of`` most likely of more), ``logprobs`` (with ``echo``, the prompt's too), penalties and ``logit_bias``;
a ``text_completion`` object, or a stream of chunks ended by ``[DONE]`` (a usage chunk first when
``stream_options.include_usage``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from ....generate import MAX_LOGPROBS
from ....serving import Generation, GenerationFailed, Piece, TokenLogprob
from .._sse import event
from ._common import (
    FINISH_REASONS,
    MAX_CHOICES,
    SamplingFields,
    Usage,
    error_event,
    interleaved,
    new_id,
    unsupported,
)


class CompletionRequest(SamplingFields):
    """OpenAI's ``POST /v1/completions``: every field of its API; values this service cannot honour are refused."""

    prompt: str | list[str] = Field(description="The prompt, or several (each gets its n choices).")
    echo: bool | None = Field(False, description="Prepend the prompt to each choice's text (and its log-"
                              "probabilities, with logprobs).")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="Each token's log-probability and this "
                                 "many likeliest alternatives.")
    best_of: int | None = Field(None, ge=1, le=MAX_CHOICES, description="Generate this many choices per prompt and "
                                "return the n most likely (log-probability per token); not with stream.")
    suffix: str | None = Field(None, description="Not supported (only null or empty): these models only continue "
                               "text.")

    @model_validator(mode="after")
    def _honourable(self) -> CompletionRequest:
        if self.suffix:
            raise unsupported("suffix", self.suffix, "the generators here continue text, they do not insert it")
        n, best_of = self.n or 1, self.best_of or self.n or 1
        if best_of < n:
            raise ValueError(f"best_of ({best_of}) must be at least n ({n})")
        if best_of > n and self.stream:
            raise ValueError("best_of greater than n is not supported with stream")
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt: the list is empty")
        if isinstance(self.prompt, list) and len(self.prompt) * best_of > MAX_CHOICES:
            raise ValueError(f"prompts x best_of (or n) = {len(self.prompt) * best_of}: at most {MAX_CHOICES} "
                             "generations a request")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def candidates(self) -> int:
        """Generations per prompt (best_of, else n)."""
        return self.best_of or self.n or 1


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


def _top(alternatives: list[TokenLogprob] | None) -> dict[str, float] | None:
    if alternatives is None:
        return None
    out: dict[str, float] = {}
    for t in alternatives:  # two ids may decode to the same text: the likelier one (first) is kept
        out.setdefault(t.text, t.logprob or 0.0)
    return out


def _logprobs(prompt: list[TokenLogprob], pieces: Sequence[Piece], start: int) -> CompletionLogprobs:
    """OpenAI's logprobs of ``prompt`` tokens (echo) then the generated ones; offsets count from ``start``."""
    tokens: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    offsets: list[int] = []
    offset = start
    for t in prompt:
        tokens.append(t.text)
        values.append(t.logprob)
        tops.append(None)
        offsets.append(offset)
        offset += len(t.text)
    for p in pieces:
        if p.token_id is None or p.logprob is None:
            continue
        tokens.append(p.text)
        values.append(p.logprob)
        tops.append(_top(p.top_logprobs))
        offsets.append(offset)
        offset += len(p.text)
    return CompletionLogprobs(tokens=tokens, token_logprobs=values, top_logprobs=tops, text_offset=offsets)


class _Choice:
    """One generation, finished."""

    def __init__(self, generation: Generation, pieces: list[Piece]) -> None:
        self.generation, self.pieces = generation, pieces
        self.text = "".join(p.text for p in pieces)
        self.tokens = sum(p.token_id is not None for p in pieces)
        self.reason = FINISH_REASONS.get(pieces[-1].finish_reason or "length", "length")
        scored = [p.logprob for p in pieces if p.logprob is not None]
        self.mean_logprob = sum(scored) / len(scored) if scored else 0.0


async def _finish(generation: Generation) -> _Choice:
    try:
        return _Choice(generation, [piece async for piece in generation.pieces()])
    finally:
        await generation.aclose()  # the request was cancelled: its slot is freed at the next step


async def completion(body: CompletionRequest, model: str, generations: Sequence[Sequence[Generation]]
                     ) -> CompletionResponse:
    """``generations``: per prompt, its candidates (best_of, else n); the n most likely of each are answered."""
    try:
        finished = [await asyncio.gather(*(_finish(g) for g in per_prompt)) for per_prompt in generations]
    finally:
        for per_prompt in generations:
            for g in per_prompt:
                await g.aclose()
    n = body.n or 1
    choices: list[CompletionChoice] = []
    for prompt_index, (prompt, candidates) in enumerate(zip(body.prompts, finished, strict=True)):
        kept = sorted(candidates, key=lambda c: -c.mean_logprob)[:n] if len(candidates) > n else candidates
        for j, choice in enumerate(kept):
            text = (prompt + choice.text) if body.echo else choice.text
            logprobs = None
            if body.logprobs is not None:
                echoed = (choice.generation.prompt_logprobs or []) if body.echo else []
                logprobs = _logprobs(echoed, choice.pieces, 0)
            choices.append(CompletionChoice(text=text, index=prompt_index * n + j, logprobs=logprobs,
                                            finish_reason=choice.reason))  # type: ignore[arg-type]
    prompt_tokens = sum(per_prompt[0].generation.prompt_tokens for per_prompt in finished)
    cid, created = new_id("cmpl")
    return CompletionResponse(id=cid, created=created, model=model, choices=choices,
                              usage=Usage.of(prompt_tokens, sum(c.tokens for p in finished for c in p)))


def _chunk(cid: str, created: int, model: str, index: int, text: str, reason: str | None,
           logprobs: CompletionLogprobs | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": index,
                         "logprobs": logprobs.model_dump() if logprobs is not None else None,
                         "finish_reason": reason}]}


async def completion_events(body: CompletionRequest, model: str, generations: Sequence[Sequence[Generation]]
                            ) -> AsyncIterator[bytes]:
    """The chunks of every choice as they come (each with its index: prompt x n + choice), then usage when
    asked, then [DONE]."""
    cid, created = new_id("cmpl")
    flat = [g for per_prompt in generations for g in per_prompt]
    prompts = [prompt for prompt, per_prompt in zip(body.prompts, generations, strict=True) for _ in per_prompt]
    offsets = [0] * len(flat)  # characters of each choice's text sent so far (text_offset of logprobs)
    generated = 0
    try:
        if body.echo:
            for index, (prompt, generation) in enumerate(zip(prompts, flat, strict=True)):
                logprobs = _logprobs(generation.prompt_logprobs or [], [], 0) if body.logprobs is not None else None
                yield event(_chunk(cid, created, model, index, prompt, None, logprobs))
                offsets[index] = len(prompt)
        async with aclosing(interleaved(flat)) as arriving:
            async for index, piece in arriving:
                generated += piece.token_id is not None
                reason = FINISH_REASONS.get(piece.finish_reason or "")
                if piece.text or reason:
                    logprobs = _logprobs([], [piece], offsets[index]) if body.logprobs is not None else None
                    yield event(_chunk(cid, created, model, index, piece.text, reason, logprobs))
                    offsets[index] += len(piece.text)
        if body.include_usage:
            prompt_tokens = sum(per_prompt[0].prompt_tokens for per_prompt in generations)
            yield event({"id": cid, "object": "text_completion", "created": created, "model": model, "choices": [],
                         "usage": Usage.of(prompt_tokens, generated).model_dump()})
        yield event("[DONE]")
    except GenerationFailed as exc:  # the stream has begun: the error is its last event, as OpenAI sends it
        yield error_event(exc)
    finally:
        for generation in flat:
            await generation.aclose()  # a client that went away frees every choice's slot at the next step
