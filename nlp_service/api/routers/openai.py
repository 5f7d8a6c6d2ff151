"""Text completion in OpenAI's shape (``/v1/completions``, with ``stream``): the official ``openai``
client works against the service. The model list is ``GET /v1/models`` (also in OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import GenerationDep
from ..protocols import event_stream, openai

router = APIRouter(prefix="/v1", tags=["generation"])


@router.post("/completions", response_model=openai.CompletionResponse, response_model_exclude_none=True,
             summary="OpenAI-compatible text completion (with stream)")
async def completions(body: openai.CompletionRequest, generation: GenerationDep) -> Any:
    model = generation.model(body.model)
    prompt = openai.prompt(body)
    started = await generation.start(model, prompt, openai.sampling_params(body))
    if body.stream:
        return event_stream(openai.completion_events(body, model.name, prompt, started))
    return await openai.completion(body, model.name, prompt, started)
