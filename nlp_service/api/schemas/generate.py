"""Request and response bodies of generation: Hugging Face TGI's shape and OpenAI's completions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(20, ge=1, description="Most tokens to generate.")
    do_sample: bool = Field(False, description="Sample (with temperature/top_k/top_p); false is greedy decoding.")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature (implies do_sample).")
    top_k: int | None = Field(None, ge=1, description="Sample among the k most likely tokens (implies do_sample).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (implies do_sample).")
    repetition_penalty: float | None = Field(None, gt=0, description="transformers' repetition penalty (1: none).")
    seed: int | None = Field(None, description="Seed of this request's sampling: same seed, same text.")
    stop: list[str] = Field(default_factory=list, max_length=8,
                            description="Stop sequences: generation ends before the first one found.")
    details: bool = Field(False, description="Return finish reason, token count, seed and tokens.")
    return_full_text: bool = Field(False, description="Prepend the prompt to generated_text.")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
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


class CompletionRequest(BaseModel):
    """OpenAI's ``POST /v1/completions`` (the parameters this service implements; others are refused)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    echo: bool = False


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
