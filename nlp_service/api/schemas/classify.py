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
    explain: bool = Field(False, description="Also say why: each result gets `explanation`, a score per token "
                          "(occlusion). Costs one more prediction per token (at most NLP_MAX_WORDS tokens over "
                          "all the texts).")


class TokenScore(BaseModel):
    token: str = Field(description="The token as the model sees it (its tokenizer's normalised form).")
    start: int = Field(description="Character offset in the text where the token starts.")
    end: int = Field(description="Character offset in the text where it ends: `text[start:end]` is the token "
                     "as written.")
    score: float = Field(description="The predicted label's probability minus its probability without this "
                         "token: positive when the token pushed the text towards the label.")


class ClassResult(BaseModel):
    label: str
    probabilities: dict[str, float] = Field(description="Probability of each class (they sum to 1).")
    explanation: list[TokenScore] | None = Field(
        None, description="Only with `explain`: one entry per token of the text, in order.")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassResult]
