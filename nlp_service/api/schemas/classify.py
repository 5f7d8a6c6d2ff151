"""Request and response bodies of the classification endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ._base import RequestBody


class ClassifyRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"texts": ["Una película preciosa y emocionante.", "Aburrida de principio a fin."]}]})

    model: str | None = Field(None, description="Classifier name (GET /v1/models); the default one if omitted.")
    texts: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        min_length=1, description="Texts to classify (at most NLP_MAX_TEXTS).")
    explain: bool = Field(False, description="Also say why: each result gets `explanation`, a score per token "
                          "(by `explain_method`). Occlusion costs one more prediction per token (at most "
                          "NLP_MAX_WORDS tokens over all the texts).")
    explain_method: Literal["occlusion", "cam"] | None = Field(
        None, description="Only with `explain`: `occlusion` (the default; any classifier) or `cam`, the class "
        "activation map of a convolutional classifier (`--cell cnn`; one forward pass per text; other models "
        "answer 422).")

    @model_validator(mode="after")
    def _method_needs_explain(self) -> ClassifyRequest:
        if self.explain_method is not None and not self.explain:
            raise ValueError("explain_method says how to explain: it needs \"explain\": true")
        return self


class TokenScore(BaseModel):
    token: str = Field(description="The token as the model sees it (its tokenizer's normalised form).")
    start: int = Field(description="Character offset in the text where the token starts.")
    end: int = Field(description="Character offset in the text where it ends: `text[start:end]` is the token "
                     "as written.")
    score: float = Field(description="occlusion: the predicted label's probability minus its probability "
                         "without this token, positive when the token pushed the text towards the label. cam: the "
                         "token's share of the predicted label's logit through the max-pooled feature maps.")


class ClassResult(BaseModel):
    label: str
    probabilities: dict[str, float] = Field(description="Probability of each class (they sum to 1).")
    explanation: list[TokenScore] | None = Field(
        None, description="Only with `explain`: one entry per token of the text, in order.")


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassResult]
