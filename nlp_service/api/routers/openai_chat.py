"""Chat completion in OpenAI's shape (``POST /v1/chat/completions``, with ``stream``), for generators whose
tokenizer has a chat template: the official ``openai`` client and the libraries built on it (LangChain's
``ChatOpenAI``...) work against the service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import GenerationDep
from ..errors import MODEL_QUERY, error_responses
from ..protocols import event_stream
from ..protocols.openai import MAX_CHOICES
from ..protocols.openai import chat as openai

router = APIRouter(prefix="/v1", tags=["generation"], responses=error_responses(*MODEL_QUERY))


@router.post(
    "/chat/completions", response_model=openai.ChatCompletionResponse,
    responses={200: {
        "description": "The chat completion; with `stream`, server-sent events: `data:` chunks in "
        "`chat.completion.chunk`'s shape (each choice's first has `delta.role`, then `delta.content` pieces, then one "
        "with its `finish_reason`; choices interleaved, told apart by `index`), a last chunk with `usage` and no "
        "choices when `stream_options.include_usage`, then `data: [DONE]`; an error after the stream began is a last "
        "`data: {error}` event.",
        "content": {"text/event-stream": {"itemSchema": {  # each event; its data is JSON but the last
            "type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}}}}},
    summary="OpenAI-compatible chat completion (with stream)",
    description="The `messages` (roles system, developer, user, assistant, tool; text content only) are rendered "
    "into one prompt by the generator's chat template (`tokenizer.chat_template`, with the assistant's turn "
    "opened), then generated from as `/v1/completions` does, with the same sampling fields and limits. A generator "
    "without a chat template is refused with a 400 (`no_chat_template`): use `/v1/completions` with it. "
    f"`n` (at most {MAX_CHOICES}) choices are decoded side by side; sampled ones use seeds `seed`, `seed + 1`... "
    "`max_completion_tokens` wins over `max_tokens`. `logprobs`/`top_logprobs` give each generated token's "
    "log-probability. Every other field of OpenAI's API is accepted; a value that asks for what this service "
    "does not do (tools, structured output, audio, storage...) is refused with a 422 naming the field.")
async def chat_completions(body: openai.ChatCompletionRequest, generation: GenerationDep) -> Any:
    model = generation.model(body.model)
    prompt = openai.chat_prompt(model, body.messages)
    started = await generation.start_many(model, prompt, openai.chat_sampling_params(body), body.n or 1,
                                         fit=True)
    if body.stream:
        return event_stream(openai.chat_events(body, model, started))
    return await openai.chat_completion(body, model, started)
