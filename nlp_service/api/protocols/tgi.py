"""Hugging Face text-generation-inference's shape: ``inputs`` + ``parameters`` in; ``generated_text`` and
``details`` out; a stream of token events, the last one with the full text and the details."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...generate import SamplingParams
from ...options import bounds
from ...serving import Generation, GenerationFailed
from ..schemas import RequestBody
from ._sse import event

# Our finish reasons (the engine's) in TGI's words.
FINISH_REASONS = {"length": "length", "eos": "eos_token", "stop": "stop_sequence"}


class GenerateParameters(RequestBody):
    max_new_tokens: int = Field(20, ge=1, description="Most tokens to generate.")
    do_sample: bool = Field(False, description="Sample (with temperature/top_k/top_p); false is greedy decoding.")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature (implies do_sample).")
    top_k: int | None = Field(None, ge=1, description="Sample among the k most likely tokens (implies do_sample).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (implies do_sample).")
    repetition_penalty: float | None = Field(None, **bounds(SamplingParams, "repetition_penalty"),
                                             description="transformers' repetition penalty (1: none).")
    seed: int | None = Field(None, **bounds(SamplingParams, "seed"),
                             description="Seed of this request's sampling (64 bits): same seed, same text.")
    stop: list[str] = Field(default_factory=list, description="Stop sequences: generation ends before the first one "
                            "found (at most NLP_GENERATION_MAX_STOP_SEQUENCES).")
    details: bool = Field(False, description="Return finish reason, token count, seed and tokens.")
    return_full_text: bool = Field(False, description="Prepend the prompt to generated_text.")


class GenerateRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"inputs": "En el principio", "parameters": {"max_new_tokens": 30, "do_sample": True,
                                                                   "top_p": 0.9, "seed": 1}}]})

    inputs: str = Field(min_length=1, description="The prompt.")
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    model: str | None = Field(None, description="Generator name (GET /v1/models); the default one if omitted.")


class Token(BaseModel):
    id: int
    text: str
    special: bool = False


class Details(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    tokens: list[Token] = Field(default_factory=list)


class GenerateResponse(BaseModel):
    generated_text: str
    details: Details | None = None


def sampling_params(p: GenerateParameters) -> SamplingParams:
    sample = p.do_sample or p.temperature is not None or p.top_k is not None or p.top_p is not None
    # A sampled request without a seed gets one here, so that `details.seed` tells the client how to
    # reproduce the text (53 bits: exact in JSON numbers read as doubles).
    seed = p.seed if p.seed is not None or not sample else secrets.randbits(53)
    return SamplingParams(max_new_tokens=p.max_new_tokens, do_sample=sample, temperature=p.temperature or 1.0,
                          top_k=p.top_k or 0, top_p=p.top_p or 1.0, repetition_penalty=p.repetition_penalty or 1.0,
                          seed=seed, stop=tuple(p.stop))


def _full_text(body: GenerateRequest, text: str) -> str:
    return body.inputs + text if body.parameters.return_full_text else text


async def response(body: GenerateRequest, generation: Generation) -> GenerateResponse:
    try:
        pieces = [piece async for piece in generation.pieces()]
    finally:
        await generation.aclose()  # the request was cancelled: its slot is freed at the next step
    text = "".join(p.text for p in pieces)
    details = None
    if body.parameters.details:
        tokens = [Token(id=p.token_id, text=p.text) for p in pieces if p.token_id is not None]
        details = Details(finish_reason=FINISH_REASONS.get(pieces[-1].finish_reason or "", "length"),  # type: ignore[arg-type]
                          generated_tokens=len(tokens), seed=generation.seed, tokens=tokens)
    return GenerateResponse(generated_text=_full_text(body, text), details=details)


async def events(body: GenerateRequest, generation: Generation) -> AsyncIterator[bytes]:
    """One event per piece; the last carries the whole text and the details."""
    text: list[str] = []
    count = 0
    try:
        async for piece in generation.pieces():
            text.append(piece.text)
            count += piece.token_id is not None
            message: dict[str, Any] = {
                "token": {"id": piece.token_id if piece.token_id is not None else -1, "text": piece.text,
                          "logprob": None, "special": False},
                "generated_text": None, "details": None}
            if piece.finish_reason:
                message["generated_text"] = _full_text(body, "".join(text))
                message["details"] = {"finish_reason": FINISH_REASONS.get(piece.finish_reason, "length"),
                                    "generated_tokens": count, "seed": generation.seed}
            yield event(message)
    except GenerationFailed as exc:  # the stream has begun: the error is its last event, as TGI sends it
        yield event({"error": exc.message, "error_type": "generation"})
    finally:
        await generation.aclose()  # a client that went away frees its slot at the next engine step
