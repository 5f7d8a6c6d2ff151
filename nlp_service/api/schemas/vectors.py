"""Request and response bodies of the vectors endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ._base import RequestBody

Word = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Vectors are float32: a larger component would be infinite once stored.
Component = Annotated[float, Field(ge=-3.4e38, le=3.4e38)]


class _Request(RequestBody):
    model: str | None = Field(None, description="Vectors model name (GET /v1/models); default model if omitted.")


class SimilarityRequest(_Request):
    word1: Word
    word2: Word


class SimilarityResponse(BaseModel):
    model: str
    word1: str
    word2: str
    similarity: float = Field(description="Cosine similarity in [-1, 1].")


class Neighbor(BaseModel):
    word: str
    score: float


class NeighborsRequest(_Request):
    """Give exactly one of ``word``, ``vector``, or ``positive``/``negative`` word lists."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"word": "rey", "topn": 5}, {"positive": ["rey", "mujer"],
                                                                      "negative": ["hombre"]}]},
    )

    word: Word | None = None
    vector: list[Component] | None = Field(None, description="A query vector with the model's dimensions.")
    positive: list[Word] = Field(default_factory=list)
    negative: list[Word] = Field(default_factory=list)
    topn: int = Field(10, ge=1, description="How many neighbours (at most the server's max_topn).")
    approximate: bool = Field(False, description="Use the HNSW index (faster, recall measured at build time).")

    @model_validator(mode="after")
    def _one_query(self) -> NeighborsRequest:
        given = sum([self.word is not None, self.vector is not None, bool(self.positive or self.negative)])
        if given != 1:
            raise ValueError("give exactly one of: word, vector, or positive/negative word lists")
        return self


class NeighborsResponse(BaseModel):
    model: str
    approximate: bool
    neighbors: list[Neighbor]


class AnalogyRequest(_Request):
    """``a`` is to ``b`` as ``c`` is to ?"""

    model_config = ConfigDict(json_schema_extra={"examples": [{"a": "hombre", "b": "rey",
                                                                                "c": "mujer"}]})
    a: Word
    b: Word
    c: Word
    topn: int = Field(5, ge=1)
    method: Literal["3cosadd", "3cosmul"] = "3cosadd"


class AnalogyResponse(BaseModel):
    model: str
    method: str
    answers: list[Neighbor]


class WordVectorsRequest(_Request):
    words: list[Word] = Field(min_length=1)
    normalize: bool = Field(False, description="Return unit-length vectors.")


class WordVector(BaseModel):
    word: str
    source: Literal["vocabulary", "subwords"] = Field(
        description="'subwords': not in the vocabulary, built from fastText character n-grams."
    )
    vector: list[float]


class WordVectorsResponse(BaseModel):
    model: str
    dimensions: int
    vectors: list[WordVector]


class TextVectorsRequest(_Request):
    texts: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    normalize: bool = False


class TextVector(BaseModel):
    tokens: list[str] = Field(description="Tokens as the model's tokenizer split the text.")
    oov: list[str] = Field(
        description="Tokens not in the vocabulary (skipped, or from subwords if the model has them)."
    )
    vector: list[float] | None = Field(description="Mean of the token vectors; null if no token has one.")


class TextVectorsResponse(BaseModel):
    model: str
    dimensions: int
    embeddings: list[TextVector]
