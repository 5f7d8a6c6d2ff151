"""Text completion in OpenAI's shape (``/v1/completions``, with ``stream``): the official ``openai``
client works against the service. The model list is ``GET /v1/models`` (also in OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import GenerationDep
from ..errors import MODEL_QUERY, error_responses
from ..protocols import event_stream, openai

router = APIRouter(prefix="/v1", tags=["generation"], responses=error_responses(*MODEL_QUERY))


@router.post("/completions", response_model=openai.CompletionResponse, response_model_exclude_none=True,
             responses={200: {
                 "description": "The completion; with `stream`, server-sent events: one `data:` chunk per token "
                 "(CompletionResponse's shape, without usage), then `data: [DONE]`; an error after the stream began is "
                 "a last `data: {error}` event.",
                 "content": {"text/event-stream": {"itemSchema": {  # each event; its data is JSON but the last
                     "type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}}}}},
             summary="OpenAI-compatible text completion (with stream)")
async def completions(body: openai.CompletionRequest, generation: GenerationDep) -> Any:
    model = generation.model(body.model)
    prompt = openai.prompt(body)
    started = await generation.start(model, prompt, openai.sampling_params(body))
    if body.stream:
        return event_stream(openai.completion_events(body, model.name, prompt, started))
    return await openai.completion(body, model.name, prompt, started)
