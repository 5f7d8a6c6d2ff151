"""Text completion in OpenAI's shape (``/v1/completions``, with ``stream``): the official ``openai``
client works against the service. The model list is ``GET /v1/models`` (also in OpenAI's shape)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...serving import Generation
from ..deps import GenerationDep
from ..errors import MODEL_QUERY, error_responses
from ..protocols import event_stream
from ..protocols.openai import completions as openai
from ..protocols.openai import sampling_params

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
    # Ranking best_of's candidates needs their log-probabilities, asked for or not. max_tokens is an upper bound
    # (fit): clients that send their default (LangChain: 256) to a model of fewer positions get what fits.
    ranked = body.candidates > (body.n or 1)
    params = sampling_params(body, logprobs=body.logprobs if body.logprobs is not None else 0 if ranked else None,
                             prompt_logprobs=bool(body.echo) and body.logprobs is not None)
    started: list[list[Generation]] = []
    try:
        for prompt in body.prompts:
            started.append(await generation.start_many(model, prompt, params, body.candidates, fit=True))
    except BaseException:
        for generations in started:  # all or none: free the slots of those that did start
            for g in generations:
                await g.aclose()
        raise
    if body.stream:
        return event_stream(openai.completion_events(body, model.name, started))
    return await openai.completion(body, model.name, started)
