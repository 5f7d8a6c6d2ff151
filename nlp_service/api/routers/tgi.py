"""Text generation in Hugging Face TGI's shape, at TGI's own paths (``POST /``, ``/generate``,
``/generate_stream``: what TGI's client calls; ``GET /info`` carries TGI's fields too) and under ``/v1``.
Decoding runs in the model's generation worker, batched continuously."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ...errors import InvalidInput
from ...serving import Generation, Generations
from ..deps import GenerationDep
from ..errors import GUARDED, MODEL_QUERY, TGIErrorResponse, TGIRoute, error_responses
from ..protocols import event_stream, tgi

router = APIRouter(prefix="/v1", tags=["generation"], responses=error_responses(*MODEL_QUERY))
# TGI's own paths (its client posts to the server's root): the same handlers, errors in TGI's shape.
root_router = APIRouter(tags=["generation"], route_class=TGIRoute, responses={
    **error_responses(*GUARDED, 413), **error_responses(400, 404, 422, 503, body=TGIErrorResponse)})


async def _start(body: tgi.GenerateRequest, generation: Generations, *, stream: bool) -> list[Generation]:
    params = body.parameters
    if stream and (params.best_of or 1) > 1:
        raise InvalidInput("best_of > 1 is not supported with stream", code="validation_error")
    model = generation.model(body.model)
    return await generation.start_many(model, body.inputs, tgi.sampling_params(params), params.best_of or 1,
                                       truncate=params.truncate)


async def _generate(body: tgi.GenerateRequest, generation: Generations) -> tgi.GenerateResponse:
    return await tgi.response(body, await _start(body, generation, stream=False))


async def _generate_stream(body: tgi.GenerateRequest, generation: Generations) -> StreamingResponse:
    [started] = await _start(body, generation, stream=True)
    return event_stream(tgi.events(body, started))


@router.post("/generate", response_model=tgi.GenerateResponse, response_model_exclude_none=True,
             summary="Generate text (Hugging Face text-generation-inference shape)")
async def generate(body: tgi.GenerateRequest, generation: GenerationDep) -> tgi.GenerateResponse:
    return await _generate(body, generation)


@root_router.post("/generate", response_model=tgi.GenerateResponse, response_model_exclude_none=True,
                  summary="Generate text (TGI's path of /v1/generate; errors in TGI's shape)")
async def generate_at_tgi_path(body: tgi.GenerateRequest, generation: GenerationDep) -> tgi.GenerateResponse:
    return await _generate(body, generation)

# One event of /v1/generate_stream, as documented (``itemSchema``: each event; its ``data`` is JSON).
_NULLABLE_STRING = {"type": ["string", "null"]}
_STREAM_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
        {"type": "object", "required": ["token", "generated_text", "details"], "properties": {
            "token": {"type": "object", "required": ["id", "text", "logprob", "special"], "properties": {
                "id": {"type": "integer"}, "text": {"type": "string"}, "logprob": {"type": ["number", "null"]},
                "special": {"type": "boolean"}}},
            "generated_text": _NULLABLE_STRING,
            "details": {"anyOf": [{"type": "null"}, {
                "type": "object", "required": ["finish_reason", "generated_tokens"], "properties": {
                    "finish_reason": {"enum": ["length", "eos_token", "stop_sequence"]},
                    "generated_tokens": {"type": "integer"}, "seed": {"type": ["integer", "null"]}}}]}}},
        {"type": "object", "required": ["error", "error_type"], "properties": {
            "error": {"type": "string"}, "error_type": {"type": "string"}}}]}}}}


# StreamingResponse has no media type of its own: FastAPI then documents no application/json 200 (and the
# error responses stay JSON); the 200 is the event stream.
_STREAM_200 = {200: {
    "description": "Server-sent events: one `data: {token, generated_text, details}` event per token, the last "
    "with generated_text and details; an error after the stream began is a last `data: {error, error_type}` "
    "event.",
    "content": {"text/event-stream": {"itemSchema": _STREAM_EVENT}}}}


@router.post("/generate_stream", response_class=StreamingResponse, responses=_STREAM_200,
             summary="Generate text as server-sent events (TGI shape), one event per token")
async def generate_stream(body: tgi.GenerateRequest, generation: GenerationDep) -> StreamingResponse:
    return await _generate_stream(body, generation)


@root_router.post("/generate_stream", response_class=StreamingResponse, responses=_STREAM_200,
                  summary="Generate text as server-sent events (TGI's path of /v1/generate_stream)")
async def generate_stream_at_tgi_path(body: tgi.GenerateRequest, generation: GenerationDep) -> StreamingResponse:
    return await _generate_stream(body, generation)


@root_router.post("/", response_model=list[tgi.GenerateResponse], response_model_exclude_none=True,
                  responses={200: {"description": "A one-element list with the generation (TGI's root route); "
                                   "with `stream: true`, server-sent events as /generate_stream.",
                                   "content": {"text/event-stream": {"itemSchema": _STREAM_EVENT}}}},
                  summary="TGI's root route, which its client posts to: /generate, or /generate_stream with stream")
async def tgi_root(body: tgi.GenerateRequest, generation: GenerationDep
                   ) -> list[tgi.GenerateResponse] | StreamingResponse:
    if body.stream:
        return await _generate_stream(body, generation)
    return [await _generate(body, generation)]
