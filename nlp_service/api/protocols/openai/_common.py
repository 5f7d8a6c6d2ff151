"""What OpenAI's generation endpoints (completions, chat completions) share: the sampling fields of a request,
how they become :class:`~nlp_service.generate.SamplingParams`, usage, ids and finish reasons, and how the
pieces of several choices are streamed together.

Every field of OpenAI's API is accepted, so that clients which send them all with their defaults
(LangChain, LlamaIndex, the SDKs) work; a value this service cannot honour is refused with a 422 that
says so. ``top_k`` and ``repetition_penalty`` are accepted as extensions, as vLLM does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ....generate import SamplingParams
from ....options import bounds, default_of
from ....serving import Generation, GenerationFailed, Piece
from ...schemas import RequestBody
from .._sse import event

# Our finish reasons (the engine's) in OpenAI's words.
FINISH_REASONS = {"length": "length", "eos": "stop", "stop": "stop"}
# Most choices of one request (n, best_of): each is a generation of its own in the engine.
MAX_CHOICES = 16


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="A last chunk with the usage and no choices, before [DONE].")


class SamplingFields(RequestBody):
    """The request fields of OpenAI's completions and chat completions that decide the tokens."""

    model: str | None = Field(None, description="Generator name (GET /v1/models); the default one if omitted.")
    max_tokens: int | None = Field(16, ge=1, description="Most tokens to generate.")
    temperature: float | None = Field(1.0, ge=0, le=2, description="0 is greedy decoding.")
    top_p: float | None = Field(1.0, gt=0, le=1)
    n: int | None = Field(1, ge=1, le=MAX_CHOICES, description="Choices to generate for the prompt.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, description="Stop sequences (at most "
                                         "NLP_GENERATION_MAX_STOP_SEQUENCES).")
    seed: int | None = Field(None, **bounds(SamplingParams, "seed"))
    frequency_penalty: float | None = Field(0.0, **bounds(SamplingParams, "frequency_penalty"))
    presence_penalty: float | None = Field(0.0, **bounds(SamplingParams, "presence_penalty"))
    logit_bias: dict[str, float] | None = Field(None, description="Token id (as a string) -> bias added to its "
                                                "logit, -100 to 100 (-100 bans the token).")
    user: str | None = None
    # Extensions (vLLM's names): not in OpenAI's API.
    top_k: int | None = Field(None, ge=0, description="Extension: sample among the k most likely tokens.")
    repetition_penalty: float | None = Field(None, **bounds(SamplingParams, "repetition_penalty"),
                                             description="Extension: transformers' repetition penalty.")

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            if not key.isdigit():
                raise ValueError(f"logit_bias keys are token ids (digits), not {key!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"logit_bias[{key!r}] = {bias}: biases are in [-100, 100]")
        return value

    @property
    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options is not None and self.stream_options.include_usage)


def sampling_params(body: SamplingFields, *, max_tokens: int | None = None, logprobs: int | None = None,
                    prompt_logprobs: bool = False) -> SamplingParams:
    """The sampling parameters of ``body`` (one choice's; ``n`` and ``best_of`` are the caller's).
    ``max_tokens`` overrides the body's (chat's ``max_completion_tokens``)."""
    temperature = 1.0 if body.temperature is None else body.temperature
    return SamplingParams(
        max_new_tokens=max_tokens or body.max_tokens or default_of(SamplingParams, "max_new_tokens"),
        do_sample=temperature > 0,
        temperature=temperature or 1.0, top_p=1.0 if body.top_p is None else body.top_p, top_k=body.top_k or 0,
        repetition_penalty=body.repetition_penalty or 1.0, seed=body.seed,
        frequency_penalty=body.frequency_penalty or 0.0, presence_penalty=body.presence_penalty or 0.0,
        logit_bias=tuple((int(k), float(v)) for k, v in (body.logit_bias or {}).items()),
        logprobs=logprobs, prompt_logprobs=prompt_logprobs, stop=body.stops)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens)


def new_id(prefix: str) -> tuple[str, int]:
    """A response id (``cmpl-...``, ``chatcmpl-...``) and its creation time."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time())


async def _next_piece(pieces: AsyncIterator[Piece]) -> Piece | None:
    return await anext(pieces, None)


async def interleaved(generations: Sequence[Generation]) -> AsyncIterator[tuple[int, Piece]]:
    """The pieces of several generations as they come, each with its generation's index; the pieces of one
    generation in their order. Closing it stops every generation's wait."""
    streams = [generation.pieces() for generation in generations]
    waiting: dict[asyncio.Task[Piece | None], int] = {}

    def wait_for(index: int) -> None:
        waiting[asyncio.ensure_future(_next_piece(streams[index]))] = index

    for index in range(len(streams)):
        wait_for(index)
    try:
        while waiting:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=waiting.__getitem__):  # in index order within one engine step
                index = waiting.pop(task)
                piece = task.result()
                if piece is not None:
                    yield index, piece
                    wait_for(index)
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)  # before closing the streams they read
        for stream in streams:
            await stream.aclose()


def error_event(exc: GenerationFailed) -> bytes:
    """A stream's last event when the engine failed after it began, as OpenAI sends it."""
    return event({"error": {"message": exc.message, "type": "server_error", "code": exc.code}})


def unsupported(field: str, value: Any, why: str) -> ValueError:
    """The error of a field whose value this service cannot honour (a 422 naming it)."""
    return ValueError(f"{field}={value!r} is not supported: {why}")


__all__ = ["FINISH_REASONS", "MAX_CHOICES", "SamplingFields", "StreamOptions", "Usage", "error_event", "interleaved",
           "new_id", "sampling_params", "unsupported"]
