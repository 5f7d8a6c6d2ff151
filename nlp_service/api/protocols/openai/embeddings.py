"""OpenAI's embeddings shape: ``POST /v1/embeddings`` with ``input`` (a text or a list of texts), ``model``,
``encoding_format`` (``float`` or ``base64``) and ``dimensions``; a ``list`` of ``embedding`` objects with
the usage. A text's embedding is the mean of its token vectors, as ``/v1/embeddings/texts`` computes it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, StringConstraints, field_validator

from ....errors import InvalidInput
from ...schemas import RequestBody

Text = Annotated[str, StringConstraints(min_length=1)]
# What the service gives for each text: its mean vector (None: no token has one), its tokens, the unknown ones.
FoundVector = tuple[np.ndarray | None, Sequence[str], Sequence[str]]


class EmbeddingRequest(RequestBody):
    """OpenAI's ``POST /v1/embeddings``: every field its SDK sends; token-id inputs are refused."""

    input: Text | Annotated[list[Text], Field(min_length=1)] = Field(
        description="A text, or a list of texts (at most NLP_MAX_TEXTS, each of at most NLP_MAX_TEXT_CHARS "
        "characters). Token-id arrays are not supported.")
    model: str | None = Field(None, description="Vectors model name (GET /v1/models); the default one if omitted.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`float`: a list of numbers; `base64`: the little-endian float32 bytes, base64-encoded "
        "(what OpenAI's SDK asks for and decodes when no format is given).")
    dimensions: int | None = Field(None, ge=1, description="Only the model's own dimensions: vectors are not "
                                   "shortened.")
    user: str | None = None
    # Extension (the /v1/embeddings/texts field): OpenAI's embeddings have unit length, ours only when asked.
    normalize: bool = Field(False, description="Extension: unit-length vectors (the mean's direction).")

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(item, int | list) for item in value):
            raise ValueError("token-id arrays are not supported: this service embeds text, send a string or a "
                             "list of strings")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int = Field(description="Position of its text in `input`.")
    embedding: list[float] | str = Field(description="The vector: numbers, or base64 of its little-endian float32 "
                                         "bytes (`encoding_format`).")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens of the inputs, as the vectors model's tokenizer splits them.")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def check_dimensions(body: EmbeddingRequest, model: str, dimensions: int) -> None:
    """``dimensions`` may only repeat the model's: its vectors cannot be cut to fewer."""
    if body.dimensions is not None and body.dimensions != dimensions:
        raise InvalidInput(f"dimensions: model {model} gives {dimensions}-dimensional vectors and cannot shorten or "
                           f"lengthen them (got dimensions={body.dimensions}); omit dimensions or send {dimensions}",
                           code="wrong_dimensions", model=model, dimensions=dimensions, got=body.dimensions)


def _encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # as OpenAI's SDK reads it: numpy.frombuffer(..., dtype="float32")
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


def embedding_response(body: EmbeddingRequest, model: str, dimensions: int, found: Sequence[FoundVector]
                       ) -> EmbeddingResponse:
    """The response of ``found`` (one per text of ``body``). A text with no known token has no mean: it gets
    a zero vector, as OpenAI's shape has no null (``/v1/embeddings/texts`` tells it apart, with ``vector: null``)."""
    zero = np.zeros(dimensions, dtype=np.float32)
    tokens = sum(len(toks) for _, toks, _ in found)
    return EmbeddingResponse(
        model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        data=[Embedding(index=i, embedding=_encoded(zero if vector is None else vector, body.encoding_format))
              for i, (vector, _, _) in enumerate(found)])


__all__ = ["Embedding", "EmbeddingRequest", "EmbeddingResponse", "EmbeddingUsage", "check_dimensions",
           "embedding_response"]
