"""Request and response bodies of the classification endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ._base import RequestBody


class ClassifyRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"texts": ["Una película preciosa y emocionante.", "Aburrida de principio a fin."]}]})

    model: str | None = Field(None, description="Classifier name (GET /v1/models); the default one if omitted.")
    texts: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        min_length=1, description="Texts to classify (at most NLP_MAX_TEXTS).")


class ClassResult(BaseModel):
    label: str
    probabilities: dict[str, float] = Field(description="Probability of each class (they sum to 1).")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassResult]
