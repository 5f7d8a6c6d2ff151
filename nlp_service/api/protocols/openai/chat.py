"""OpenAI's chat completions shape: ``POST /v1/chat/completions`` with ``messages``, which the model's chat
template renders into one prompt; a ``chat.completion`` object, or a stream of ``chat.completion.chunk``
events ended by ``[DONE]``.

Every field OpenAI's SDK can send is accepted, so that clients sending them with their defaults work; a
value asking for what this service does not do (tool calls, structured output, audio, storage...) is refused
with a 422 naming the field. Hints to OpenAI's own infrastructure (prompt cache, safety identifier) are
accepted and have no effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from ....errors import InvalidInput, UnsupportedByModel
from ....generate import MAX_LOGPROBS, SamplingParams
from ....serving import Generation, GenerationFailed, Piece
from ...schemas import RequestBody
from .._sse import event
from ._common import (
    FINISH_REASONS,
    SamplingFields,
    Usage,
    error_event,
    interleaved,
    new_id,
    sampling_params,
    unsupported,
)

if TYPE_CHECKING:
    from ....generate import GeneratorModel

# The most negative log-probability reported: JSON has no -Infinity (vLLM's floor too).
_LOGPROB_FLOOR = -9999.0


class TextPart(RequestBody):
    type: Literal["text"]
    text: str


class ChatMessage(RequestBody):
    """One message of the conversation. ``developer`` (OpenAI's newer name for system) is rendered as
    ``system``, which chat templates know."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(
        None, description="Text, or a list of text parts (joined with newlines); only an assistant message with "
        "tool_calls may have none.")
    name: str | None = None
    tool_call_id: str | None = Field(None, description="A tool message's: the call it answers.")
    tool_calls: list[dict[str, Any]] | None = Field(None, description="An assistant message's earlier calls, given "
                                                    "to the chat template as sent.")
    refusal: str | None = None
    # An assistant message's, refused: this service makes neither function calls nor audio.
    function_call: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        for i, part in enumerate(value if isinstance(value, list) else []):
            if isinstance(part, dict) and part.get("type") != "text":
                raise ValueError(f"part {i} is of type {part.get('type')!r}: only text parts "
                                 '({"type": "text", "text": ...}) are supported')
        return value

    @field_validator("function_call", "audio")
    @classmethod
    def _not_made_here(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise unsupported(info.field_name or "", value, "this service makes no function calls and no audio")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self

    @property
    def text(self) -> str | None:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content

    def for_template(self) -> dict[str, Any]:
        """The message as chat templates read it (transformers' convention: role, content, and the rest)."""
        message = {"role": "system" if self.role == "developer" else self.role, "content": self.text,
                   "name": self.name, "tool_call_id": self.tool_call_id, "tool_calls": self.tool_calls}
        return {key: value for key, value in message.items() if value is not None}


# Fields accepted with the values that ask for nothing more than text: field -> (accepted values, why others
# are refused). None (not sent) is always accepted.
_TEXT_ONLY: dict[str, tuple[tuple[Any, ...], str]] = {
    "tool_choice": (("none", "auto"), "tool calling is not supported: only 'none' or 'auto' (without tools, the "
                    "same)"),
    "function_call": (("none", "auto"), "function calling is not supported: only 'none' or 'auto'"),
    "response_format": (({"type": "text"},), "only {'type': 'text'}: structured output is not supported"),
    "service_tier": (("auto", "default"), "this service has one tier"),
    "store": ((False,), "nothing is stored"),
    "metadata": (({},), "it goes with store, and nothing is stored"),
    "reasoning_effort": (("none",), "these are not reasoning models"),
    "verbosity": (("medium",), "the length of an answer is max_completion_tokens'"),
    "modalities": ((["text"],), "only text is generated"),
}


class ChatCompletionRequest(SamplingFields):
    """OpenAI's ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1, description="The conversation, rendered by the model's "
                                        "chat template (roles system, developer, user, assistant, tool).")
    # Not OpenAI's 16: a chat answer is longer. The engine's default when neither is given.
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (OpenAI's older name of "
                                   f"max_completion_tokens); {SamplingParams().max_new_tokens} if neither is given.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Most tokens to generate; wins over "
                                              "max_tokens.")
    logprobs: bool | None = Field(False, description="Each generated token's log-probability, in choices[].logprobs.")
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="With logprobs: also this many likeliest "
                                     "tokens at each position.")
    # Accepted with their defaults only (see _TEXT_ONLY), or empty.
    tools: list[dict[str, Any]] | None = Field(None, description="Tool calling is not supported: none or [].")
    functions: list[dict[str, Any]] | None = Field(None, description="Function calling is not supported: none or [].")
    tool_choice: str | dict[str, Any] | None = Field(None, description="'none' or 'auto' (without tools, the same).")
    function_call: str | dict[str, Any] | None = Field(None, description="'none' or 'auto'.")
    parallel_tool_calls: bool | None = Field(None, description="No effect: there are no tool calls.")
    response_format: dict[str, Any] | None = Field(None, description="Only {\"type\": \"text\"}.")
    service_tier: str | None = Field(None, description="'auto' or 'default'.")
    store: bool | None = Field(None, description="Only false: nothing is stored.")
    metadata: dict[str, str] | None = Field(None, description="Only empty: it goes with store.")
    reasoning_effort: str | None = Field(None, description="Only 'none'.")
    verbosity: str | None = Field(None, description="Only 'medium'.")
    modalities: list[str] | None = Field(None, description="Only [\"text\"].")
    audio: dict[str, Any] | None = Field(None, description="Not supported: only text is generated.")
    prediction: dict[str, Any] | None = Field(None, description="Not supported (predicted outputs).")
    web_search_options: dict[str, Any] | None = Field(None, description="Not supported: no web search.")
    moderation: dict[str, Any] | None = Field(None, description="Not supported: no moderation.")
    # Hints to OpenAI's own prompt cache and abuse detection: accepted, no effect.
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None, info: ValidationInfo) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError(f"tool calling is not supported: send no {info.field_name} (this service generates "
                             "text only)")
        return value

    @field_validator(*_TEXT_ONLY)
    @classmethod
    def _text_only(cls, value: Any, info: ValidationInfo) -> Any:
        accepted, why = _TEXT_ONLY[info.field_name or ""]
        if value is not None and value not in accepted:
            raise unsupported(info.field_name or "", value, why)
        return value

    @field_validator("audio", "prediction", "web_search_options", "moderation")
    @classmethod
    def _not_supported(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise unsupported(info.field_name or "", value, "this service generates text only")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _with_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value


class TopLogprob(BaseModel):
    token: str = Field(description="The token's text alone (a piece of a multi-byte character shows as U+FFFD).")
    logprob: float = Field(description=f"Its log-probability under the model (at least {_LOGPROB_FLOOR}).")
    bytes: list[int] = Field(description="The UTF-8 bytes of `token`.")


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(description="The likeliest tokens at this position (top_logprobs).")


class ChoiceLogprobs(BaseModel):
    content: list[ChatTokenLogprob] = Field(description="One per generated token (the end-of-text token excluded).")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = Field(None, description="With logprobs: true.")
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


def chat_prompt(model: GeneratorModel, messages: Sequence[ChatMessage]) -> str:
    """The prompt of ``messages``: the model's chat template, ending with the start of the assistant's turn."""
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise UnsupportedByModel(f"model {model.name} has no chat template, so it cannot take chat messages: use "
                                 "/v1/completions with a prompt of your own, or a model whose tokenizer defines a chat "
                                 "template", code="no_chat_template", model=model.name)
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template([m.for_template() for m in messages], tokenize=False,
                                             add_generation_prompt=True)
    except (TemplateError, TypeError, ValueError) as exc:  # the template refuses this conversation
        raise InvalidInput(f"messages: the chat template of model {model.name} cannot render them: {exc}",
                           code="chat_template_error", model=model.name) from exc


def chat_sampling_params(body: ChatCompletionRequest) -> SamplingParams:
    """One choice's sampling parameters (``max_completion_tokens`` wins over ``max_tokens``)."""
    return sampling_params(body, max_tokens=body.max_completion_tokens,
                           logprobs=(body.top_logprobs or 0) if body.logprobs else None)


def _token_text(model: GeneratorModel, token_id: int) -> str:
    return model.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _scored(text: str, logprob: float | None) -> dict[str, Any]:
    return {"token": text, "logprob": max(logprob, _LOGPROB_FLOOR) if logprob is not None else _LOGPROB_FLOOR,
            "bytes": list(text.encode("utf-8"))}


def _logprobs(model: GeneratorModel, piece: Piece) -> list[dict[str, Any]]:
    """The piece's token with its log-probability and alternatives (none for the end-of-text token, which is
    not part of the content, nor while the engine gave none)."""
    if piece.token_id is None or piece.logprob is None or piece.finish_reason == "eos":
        return []
    return [{**_scored(_token_text(model, piece.token_id), piece.logprob),
             "top_logprobs": [_scored(top.text, top.logprob) for top in piece.top_logprobs or []]}]


def _finish_reason(piece: Piece) -> str:
    return FINISH_REASONS.get(piece.finish_reason or "length", "length")


async def chat_completion(body: ChatCompletionRequest, model: GeneratorModel, generations: Sequence[Generation]
                          ) -> ChatCompletionResponse:
    """The whole answer: one choice per generation."""
    pieces: list[list[Piece]] = [[] for _ in generations]
    try:
        async with aclosing(interleaved(generations)) as arriving:
            async for index, piece in arriving:
                pieces[index].append(piece)
    finally:
        for generation in generations:  # the request was cancelled: their slots are freed at the next step
            await generation.aclose()
    choices = [ChatChoice(
        index=i, message=AssistantMessage(content="".join(p.text for p in choice)),
        logprobs=ChoiceLogprobs.model_validate({"content": [lp for p in choice for lp in _logprobs(model, p)]})
        if body.logprobs else None,
        finish_reason=_finish_reason(choice[-1]))  # type: ignore[arg-type]
        for i, choice in enumerate(pieces)]
    generated = sum(p.token_id is not None for choice in pieces for p in choice)
    cid, created = new_id("chatcmpl")
    return ChatCompletionResponse(id=cid, created=created, model=model.name, choices=choices,
                                  usage=Usage.of(generations[0].prompt_tokens, generated))


async def chat_events(body: ChatCompletionRequest, model: GeneratorModel, generations: Sequence[Generation]
                      ) -> AsyncIterator[bytes]:
    """The answer as ``chat.completion.chunk`` events: each choice's role first, then its text as it comes
    (choices interleaved, told apart by ``index``), then its finish reason; the usage (with
    ``stream_options.include_usage``); ``[DONE]``."""
    cid, created = new_id("chatcmpl")
    usage: dict[str, Any] = {"usage": None} if body.include_usage else {}  # OpenAI's: null until the last chunk

    def chunk(index: int, delta: dict[str, Any], *, logprobs: list[dict[str, Any]] | None = None,
              finish_reason: str | None = None) -> bytes:
        return event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model.name,
                      "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason,
                                   "logprobs": {"content": logprobs} if logprobs is not None else None}], **usage})

    generated = 0
    try:
        for index in range(len(generations)):
            yield chunk(index, {"role": "assistant", "content": ""})
        async with aclosing(interleaved(generations)) as arriving:
            async for index, piece in arriving:
                generated += piece.token_id is not None
                logprobs = _logprobs(model, piece) if body.logprobs else None
                if piece.text or logprobs:
                    yield chunk(index, {"content": piece.text}, logprobs=logprobs)
                if piece.finish_reason is not None:
                    yield chunk(index, {}, finish_reason=_finish_reason(piece))
        if body.include_usage:
            yield event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model.name,
                         "choices": [], "usage": Usage.of(generations[0].prompt_tokens, generated).model_dump()})
        yield event("[DONE]")
    except GenerationFailed as exc:  # the stream has begun: the error is its last event, as OpenAI sends it
        yield error_event(exc)
    finally:
        for generation in generations:
            await generation.aclose()


__all__ = ["AssistantMessage", "ChatChoice", "ChatCompletionRequest", "ChatCompletionResponse", "ChatMessage",
           "ChatTokenLogprob", "ChoiceLogprobs", "TextPart", "TopLogprob", "chat_completion", "chat_events",
           "chat_prompt", "chat_sampling_params"]
