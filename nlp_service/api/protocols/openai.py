"""OpenAI's completions shape: ``POST /v1/completions`` with ``prompt``, ``max_tokens``, ``temperature``
(0: greedy), ``stop``, ``seed``, ``echo``; a ``text_completion`` object, or a stream of chunks ended by
``[DONE]``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from ...errors import InvalidInput
from ...generate import SamplingParams
from ...options import bounds
from ...serving import Generation, GenerationFailed
from ..schemas import RequestBody
from ._sse import event

# Our finish reasons (the engine's) in OpenAI's words.
FINISH_REASONS = {"length": "length", "eos": "stop", "stop": "stop"}


class CompletionRequest(RequestBody):
    """OpenAI's ``POST /v1/completions`` (the parameters this service implements; others are refused)."""

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stream: bool = False
    stop: str | list[str] | None = Field(None, description="Stop sequences (at most "
                                        "NLP_GENERATION_MAX_STOP_SEQUENCES).")
    seed: int | None = Field(None, **bounds(SamplingParams, "seed"))
    user: str | None = None
    echo: bool = False


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


def prompt(body: CompletionRequest) -> str:
    """The one prompt of the request."""
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise InvalidInput(f"prompt: send one prompt per request (got {len(prompts)})")
    return prompts[0]


def sampling_params(body: CompletionRequest) -> SamplingParams:
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return SamplingParams(max_new_tokens=body.max_tokens, do_sample=body.temperature > 0,
                          temperature=body.temperature or 1.0, top_p=body.top_p, seed=body.seed, stop=tuple(stops))


def _ids() -> tuple[str, int]:
    return f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())


async def completion(body: CompletionRequest, model: str, text_prompt: str, generation: Generation
                     ) -> CompletionResponse:
    try:
        pieces = [piece async for piece in generation.pieces()]
    finally:
        await generation.aclose()  # the request was cancelled: its slot is freed at the next step
    text = "".join(p.text for p in pieces)
    generated = sum(p.token_id is not None for p in pieces)
    reason = FINISH_REASONS.get(pieces[-1].finish_reason or "length", "length")
    cid, created = _ids()
    return CompletionResponse(
        id=cid, created=created, model=model,
        choices=[CompletionChoice(text=(text_prompt + text) if body.echo else text, index=0, finish_reason=reason)],  # type: ignore[arg-type]
        usage=Usage(prompt_tokens=generation.prompt_tokens, completion_tokens=generated,
                    total_tokens=generation.prompt_tokens + generated))


def _chunk(cid: str, created: int, model: str, text: str, reason: str | None) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": reason}]}


async def completion_events(body: CompletionRequest, model: str, text_prompt: str, generation: Generation
                            ) -> AsyncIterator[bytes]:
    cid, created = _ids()
    try:
        if body.echo:
            yield event(_chunk(cid, created, model, text_prompt, None))
        async for piece in generation.pieces():
            reason = FINISH_REASONS.get(piece.finish_reason or "")
            if piece.text or reason:
                yield event(_chunk(cid, created, model, piece.text, reason))
        yield event("[DONE]")
    except GenerationFailed as exc:  # the stream has begun: the error is its last event, as OpenAI sends it
        yield event({"error": {"message": exc.message, "type": "server_error", "code": exc.code}})
    finally:
        await generation.aclose()
