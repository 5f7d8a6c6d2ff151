"""Text generation in Hugging Face TGI's shape: ``/v1/generate`` and ``/v1/generate_stream`` (server-sent
events). Decoding runs in the model's generation worker, batched continuously."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from ..deps import GenerationDep
from ..errors import MODEL_QUERY, error_responses
from ..protocols import event_stream, tgi

router = APIRouter(prefix="/v1", tags=["generation"], responses=error_responses(*MODEL_QUERY))


@router.post("/generate", response_model=tgi.GenerateResponse, response_model_exclude_none=True,
             summary="Generate text (Hugging Face text-generation-inference shape)")
async def generate(body: tgi.GenerateRequest, generation: GenerationDep) -> tgi.GenerateResponse:
    model = generation.model(body.model)
    started = await generation.start(model, body.inputs, tgi.sampling_params(body.parameters))
    return await tgi.response(body, started)


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
@router.post("/generate_stream", response_class=StreamingResponse, responses={200: {
    "description": "Server-sent events: one `data: {token, generated_text, details}` event per token, the last "
    "with generated_text and details; an error after the stream began is a last `data: {error, error_type}` "
    "event.",
    "content": {"text/event-stream": {"itemSchema": _STREAM_EVENT}}}},
             summary="Generate text as server-sent events (TGI shape), one event per token")
async def generate_stream(body: tgi.GenerateRequest, generation: GenerationDep) -> StreamingResponse:
    model = generation.model(body.model)
    started = await generation.start(model, body.inputs, tgi.sampling_params(body.parameters))
    return event_stream(tgi.events(body, started))
