"""Generation endpoints: Hugging Face TGI's ``/v1/generate`` and ``/v1/generate_stream`` (server-sent
events), and OpenAI's ``/v1/completions`` (with ``stream``). Routes only translate HTTP to the
model's generation worker: decoding runs in its engine thread, batched continuously."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...config import Settings
from ...generate import GeneratorModel, SamplingParams
from ...generate._service import GenerationWorker, Piece, PromptTooLong, QueueFull, UnknownTokens
from ..deps import resolve_model
from ..errors import APIError
from ..models import ModelManager
from ..schemas.generate import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    Details,
    GenerateParameters,
    GenerateRequest,
    GenerateResponse,
    Token,
    Usage,
)

router = APIRouter(prefix="/v1", tags=["generation"])

TGI_REASONS = {"length": "length", "eos": "eos_token", "stop": "stop_sequence"}
OPENAI_REASONS = {"length": "length", "eos": "stop", "stop": "stop"}


def _worker(request: Request, name: str | None) -> tuple[GeneratorModel, GenerationWorker]:
    settings: Settings = request.app.state.settings
    manager: ModelManager = request.app.state.models
    model: GeneratorModel = resolve_model(manager, "generator", name, settings.default_generator_model)
    return model, model.start_worker(settings)


async def _first(stream: AsyncIterator[Piece]) -> Piece:
    """The first piece. The worker checks the request when the stream starts, so its refusals (over
    a limit, unknown token ids, a full queue) are answered here, before any response has started."""
    try:
        return await anext(stream)
    except PromptTooLong as exc:
        raise APIError(422, "limit_exceeded", str(exc), {"limit": exc.limit, "got": exc.got}) from None
    except UnknownTokens as exc:
        raise APIError(422, "validation_error", f"inputs: {exc}") from None
    except QueueFull as exc:
        raise APIError(429, "too_many_requests", f"the generation queue is full: {exc}", {},
                       headers={"Retry-After": "1"}) from None


def _sampling(p: GenerateParameters) -> SamplingParams:
    sample = p.do_sample or p.temperature is not None or p.top_k is not None or p.top_p is not None
    # A sampled request without a seed gets one here, so that `details.seed` tells the client how to
    # reproduce the text (53 bits: exact in JSON numbers read as doubles).
    seed = p.seed if p.seed is not None or not sample else secrets.randbits(53)
    params = SamplingParams(max_new_tokens=p.max_new_tokens, do_sample=sample, temperature=p.temperature or 1.0,
                            top_k=p.top_k or 0, top_p=p.top_p or 1.0, repetition_penalty=p.repetition_penalty or 1.0,
                            seed=seed, stop=tuple(p.stop))
    try:
        params.validate()
    except ValueError as exc:
        raise APIError(422, "validation_error", f"parameters: {exc}") from None
    return params


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


@router.post("/generate", response_model=GenerateResponse, response_model_exclude_none=True,
             summary="Generate text (Hugging Face text-generation-inference shape)")
async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
    _, worker = _worker(request, body.model)
    params = _sampling(body.parameters)
    ids = worker.encode(body.inputs)
    stream = worker.stream(ids, params)
    pieces = [await _first(stream)]
    async for piece in stream:
        pieces.append(piece)
    text = "".join(p.text for p in pieces)
    reason = pieces[-1].finish_reason or "length"
    details = None
    if body.parameters.details:
        tokens = [Token(id=p.token_id, text=p.text) for p in pieces if p.token_id is not None]
        details = Details(finish_reason=TGI_REASONS.get(reason, "length"), generated_tokens=len(tokens),  # type: ignore[arg-type]
                          seed=params.seed, tokens=tokens)
    return GenerateResponse(generated_text=(body.inputs + text) if body.parameters.return_full_text else text,
                            details=details)


@router.post("/generate_stream", summary="Generate text as server-sent events (TGI shape), one event per token")
async def generate_stream(body: GenerateRequest, request: Request) -> StreamingResponse:
    _, worker = _worker(request, body.model)
    params = _sampling(body.parameters)
    ids = worker.encode(body.inputs)
    stream = worker.stream(ids, params)
    first = await _first(stream)

    async def events() -> AsyncIterator[bytes]:
        text: list[str] = []
        count = 0
        try:
            piece: Piece | None = first
            while piece is not None:
                text.append(piece.text)
                count += piece.token_id is not None
                event: dict[str, Any] = {
                    "token": {"id": piece.token_id if piece.token_id is not None else -1, "text": piece.text,
                              "logprob": None, "special": False},
                    "generated_text": None, "details": None}
                if piece.finish_reason:
                    full = "".join(text)
                    event["generated_text"] = (body.inputs + full) if body.parameters.return_full_text else full
                    event["details"] = {"finish_reason": TGI_REASONS.get(piece.finish_reason, "length"),
                                        "generated_tokens": count, "seed": params.seed}
                yield _sse(event)
                piece = await anext(stream, None)
        finally:
            await stream.aclose()  # a client that went away frees its slot at the next engine step

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/completions", response_model=CompletionResponse, response_model_exclude_none=True,
             summary="OpenAI-compatible text completion (with stream)")
async def completions(body: CompletionRequest, request: Request) -> Any:
    model, worker = _worker(request, body.model)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(422, "validation_error", f"prompt: send one prompt per request (got {len(prompts)})")
    prompt = prompts[0]
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    params = SamplingParams(max_new_tokens=body.max_tokens, do_sample=body.temperature > 0,
                            temperature=body.temperature or 1.0, top_p=body.top_p, seed=body.seed, stop=tuple(stops))
    ids = worker.encode(prompt)
    stream = worker.stream(ids, params)
    first = await _first(stream)
    cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    if body.stream:
        async def events() -> AsyncIterator[bytes]:
            try:
                piece: Piece | None = first
                if body.echo:
                    yield _sse(_chunk(cid, created, model.name, prompt, None))
                while piece is not None:
                    reason = OPENAI_REASONS.get(piece.finish_reason or "")
                    if piece.text or reason:
                        yield _sse(_chunk(cid, created, model.name, piece.text, reason))
                    piece = await anext(stream, None)
                yield _sse("[DONE]")
            finally:
                await stream.aclose()

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    pieces = [first]
    async for piece in stream:
        pieces.append(piece)
    text = "".join(p.text for p in pieces)
    generated = sum(p.token_id is not None for p in pieces)
    reason = OPENAI_REASONS.get(pieces[-1].finish_reason or "length", "length")
    return CompletionResponse(
        id=cid, created=created, model=model.name,
        choices=[CompletionChoice(text=(prompt + text) if body.echo else text, index=0, finish_reason=reason)],  # type: ignore[arg-type]
        usage=Usage(prompt_tokens=len(ids), completion_tokens=generated, total_tokens=len(ids) + generated))


def _chunk(cid: str, created: int, model: str, text: str, reason: str | None) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": reason}]}
