"""Hugging Face text-generation-inference's shape: ``inputs`` + ``parameters`` in; ``generated_text`` and
``details`` out; a stream of token events, the last one with the full text and the details.

Every parameter of TGI's API is accepted (its client sends them all); those that decide the tokens are
honoured (``truncate``, ``typical_p``, ``top_n_tokens``, ``decoder_input_details``, ``best_of``,
``frequency_penalty``, ...), and a value this service cannot honour (``watermark: true``, a ``grammar``,
an ``adapter_id``) is a 422 that says so."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...generate import MAX_LOGPROBS, SamplingParams
from ...options import bounds
from ...serving import Generation, GenerationFailed, Piece, TokenLogprob
from ..schemas import RequestBody
from ._sse import event

if TYPE_CHECKING:
    from ...config import Settings
    from ...generate import GeneratorModel

# Our finish reasons (the engine's) in TGI's words.
FINISH_REASONS = {"length": "length", "eos": "eos_token", "stop": "stop_sequence"}
# Most sequences of one best_of request: each is a generation of its own in the engine.
MAX_BEST_OF = 8


class GenerateParameters(RequestBody):
    max_new_tokens: int = Field(20, ge=1, description="Most tokens to generate.")
    do_sample: bool = Field(False, description="Sample (with temperature/top_k/top_p); false is greedy decoding.")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature (implies do_sample).")
    top_k: int | None = Field(None, ge=1, description="Sample among the k most likely tokens (implies do_sample).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (implies do_sample).")
    typical_p: float | None = Field(None, gt=0, le=1, description="Typical decoding mass (implies do_sample).")
    repetition_penalty: float | None = Field(None, **bounds(SamplingParams, "repetition_penalty"),
                                             description="transformers' repetition penalty (1: none).")
    frequency_penalty: float | None = Field(None, **bounds(SamplingParams, "frequency_penalty"),
                                            description="A generated token's logit minus this much per time it "
                                            "was generated.")
    seed: int | None = Field(None, **bounds(SamplingParams, "seed"),
                             description="Seed of this request's sampling (64 bits): same seed, same text.")
    stop: list[str] = Field(default_factory=list, description="Stop sequences: generation ends before the first one "
                            "found (at most NLP_GENERATION_MAX_STOP_SEQUENCES).")
    truncate: int | None = Field(None, ge=1, description="Keep only the prompt's last this-many tokens.")
    best_of: int | None = Field(None, ge=1, le=MAX_BEST_OF, description="Sample this many sequences and return the "
                                "one of highest log-probability (needs sampling; not with stream).")
    details: bool = Field(False, description="Return finish reason, token count, seed and tokens.")
    decoder_input_details: bool = Field(False, description="With details: the prompt's tokens and their "
                                        "log-probabilities (prefill).")
    top_n_tokens: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="With details: each step's this-many "
                                     "likeliest tokens (top_tokens).")
    return_full_text: bool = Field(False, description="Prepend the prompt to generated_text.")
    watermark: bool = Field(False, description="Not supported (only false).")
    grammar: dict[str, Any] | None = Field(None, description="Not supported (only null).")
    adapter_id: str | None = Field(None, description="Not supported (only null): this service has no LoRA adapters.")

    @model_validator(mode="after")
    def _honourable(self) -> GenerateParameters:
        if self.watermark:
            raise ValueError("watermark=true is not supported: this service does not watermark its text")
        if self.grammar is not None:
            raise ValueError("grammar is not supported: this service does not constrain generation by a grammar")
        if self.adapter_id is not None:
            raise ValueError("adapter_id is not supported: this service serves no LoRA adapters")
        if (self.best_of or 1) > 1 and not self.sampling:
            raise ValueError("best_of > 1 needs sampling (do_sample, temperature, top_k, top_p or typical_p)")
        return self

    @property
    def sampling(self) -> bool:
        return self.do_sample or any(v is not None for v in (self.temperature, self.top_k, self.top_p, self.typical_p))


class GenerateRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"inputs": "En el principio", "parameters": {"max_new_tokens": 30, "do_sample": True,
                                                                   "top_p": 0.9, "seed": 1}}]})

    inputs: str = Field(min_length=1, description="The prompt.")
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)
    stream: bool = Field(False, description="POST / only: answer as /generate_stream does.")
    model: str | None = Field(None, description="Generator name (GET /v1/models); the default one if omitted.")

    @model_validator(mode="after")
    def _best_of_not_streamed(self) -> GenerateRequest:
        if self.stream and (self.parameters.best_of or 1) > 1:
            raise ValueError("best_of > 1 is not supported with stream")
        return self


class Token(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool = False


class InputToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None  # None for the first: nothing predicts it


class SequenceDetails(BaseModel):
    """What TGI says of one generated sequence."""

    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    prefill: list[InputToken] = Field(default_factory=list)
    tokens: list[Token] = Field(default_factory=list)
    top_tokens: list[list[Token]] | None = None


class BestOfSequence(SequenceDetails):
    generated_text: str


class Details(SequenceDetails):
    best_of_sequences: list[BestOfSequence] | None = None


class GenerateResponse(BaseModel):
    generated_text: str
    details: Details | None = None


def info(model: GeneratorModel, settings: Settings) -> dict[str, Any]:
    """TGI's ``/info`` fields for the default generator: what TGI's clients read about the server."""
    return {"model_id": model.name, "model_sha": None, "model_dtype": str(model.dtype).removeprefix("torch."),
            "model_device_type": model.device.type, "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": settings.generation_max_batch + settings.generation_max_queue,
            "max_best_of": MAX_BEST_OF, "max_stop_sequences": settings.generation_max_stop_sequences,
            "max_input_tokens": settings.generation_max_input_tokens,
            "max_total_tokens": settings.generation_max_total_tokens, "max_client_batch_size": 1,
            "router": "nlp-service"}


def sampling_params(p: GenerateParameters) -> SamplingParams:
    sample = p.sampling
    # A sampled request without a seed gets one here, so that `details.seed` tells the client how to
    # reproduce the text (53 bits: exact in JSON numbers read as doubles).
    seed = p.seed if p.seed is not None or not sample else secrets.randbits(53)
    scored = p.details or (p.best_of or 1) > 1  # the tokens' log-probabilities are in the details
    return SamplingParams(max_new_tokens=p.max_new_tokens, do_sample=sample, temperature=p.temperature or 1.0,
                          top_k=p.top_k or 0, top_p=p.top_p or 1.0, typical_p=p.typical_p or 1.0,
                          repetition_penalty=p.repetition_penalty or 1.0, frequency_penalty=p.frequency_penalty or 0.0,
                          seed=seed, stop=tuple(p.stop), logprobs=(p.top_n_tokens or 0) if scored else None,
                          prompt_logprobs=p.details and p.decoder_input_details)


def _full_text(body: GenerateRequest, text: str) -> str:
    return body.inputs + text if body.parameters.return_full_text else text


def _top(alternatives: list[TokenLogprob] | None) -> list[Token]:
    return [Token(id=t.token_id, text=t.text, logprob=t.logprob) for t in alternatives or ()]


class _Collected:
    """A whole generation: its text, tokens and log-probabilities."""

    def __init__(self, generation: Generation, pieces: Sequence[Piece]) -> None:
        self.generation, self.pieces = generation, pieces
        self.text = "".join(p.text for p in pieces)
        self.tokens = [p for p in pieces if p.token_id is not None]
        self.reason = FINISH_REASONS.get(pieces[-1].finish_reason or "", "length")
        self.logprob = sum(p.logprob or 0.0 for p in self.tokens)

    def details(self, body: GenerateRequest) -> dict[str, Any]:
        params = body.parameters
        prefill = [InputToken(id=t.token_id, text=t.text, logprob=t.logprob)
                   for t in self.generation.prompt_logprobs or ()]
        return {"finish_reason": self.reason, "generated_tokens": len(self.tokens), "seed": self.generation.seed,
                "prefill": prefill,
                "tokens": [Token(id=p.token_id, text=p.text, logprob=p.logprob) for p in self.tokens],  # type: ignore[arg-type]
                "top_tokens": [_top(p.top_logprobs) for p in self.tokens] if params.top_n_tokens else None}


async def _collect(generation: Generation) -> _Collected:
    try:
        return _Collected(generation, [piece async for piece in generation.pieces()])
    finally:
        await generation.aclose()  # the request was cancelled: its slot is freed at the next step


async def response(body: GenerateRequest, generations: Sequence[Generation]) -> GenerateResponse:
    """The answer to a request: one generation, or with ``best_of`` the most likely of several (the others in
    ``details.best_of_sequences``)."""
    collected = []
    try:
        for generation in generations:
            collected.append(await _collect(generation))
    finally:
        for generation in generations[len(collected):]:
            await generation.aclose()
    best = max(collected, key=lambda c: c.logprob)
    details = None
    if body.parameters.details:
        others = [BestOfSequence(generated_text=_full_text(body, c.text), **c.details(body))
                  for c in collected if c is not best]
        details = Details(**best.details(body), best_of_sequences=others or None)
    return GenerateResponse(generated_text=_full_text(body, best.text), details=details)


async def events(body: GenerateRequest, generation: Generation) -> AsyncIterator[bytes]:
    """One event per piece; the last carries the whole text and the details."""
    text: list[str] = []
    count = 0
    top_n = body.parameters.top_n_tokens
    try:
        async for piece in generation.pieces():
            text.append(piece.text)
            count += piece.token_id is not None
            message: dict[str, Any] = {
                "token": {"id": piece.token_id if piece.token_id is not None else -1, "text": piece.text,
                          "logprob": piece.logprob, "special": False},
                "generated_text": None, "details": None}
            if top_n:
                message["top_tokens"] = [t.model_dump() for t in _top(piece.top_logprobs)]
            if piece.finish_reason:
                message["generated_text"] = _full_text(body, "".join(text))
                message["details"] = {"finish_reason": FINISH_REASONS.get(piece.finish_reason, "length"),
                                      "generated_tokens": count, "seed": generation.seed}
            yield event(message)
    except GenerationFailed as exc:  # the stream has begun: the error is its last event, as TGI sends it
        yield event({"error": exc.message, "error_type": "generation"})
    finally:
        await generation.aclose()  # a client that went away frees its slot at the next engine step
