"""What the client's methods return: the service's response bodies as small frozen dataclasses, with the
field names of the JSON (``nlp_service/api/schemas``). Plain data, so the client needs neither pydantic's
schemas nor FastAPI; fields a newer server adds are ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Similarity:
    model: str
    word1: str
    word2: str
    similarity: float  # cosine, in [-1, 1]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Similarity:
        return cls(data["model"], data["word1"], data["word2"], data["similarity"])


@dataclass(frozen=True)
class Neighbor:
    word: str
    score: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Neighbor:
        return cls(data["word"], data["score"])


@dataclass(frozen=True)
class Neighbors:
    model: str
    approximate: bool
    neighbors: list[Neighbor]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Neighbors:
        return cls(data["model"], data["approximate"], [Neighbor.from_json(n) for n in data["neighbors"]])


@dataclass(frozen=True)
class Analogy:
    model: str
    method: str
    answers: list[Neighbor]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Analogy:
        return cls(data["model"], data["method"], [Neighbor.from_json(n) for n in data["answers"]])


@dataclass(frozen=True)
class WordVector:
    word: str
    source: Literal["vocabulary", "subwords"]  # subwords: built from fastText character n-grams
    vector: list[float]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WordVector:
        return cls(data["word"], data["source"], data["vector"])


@dataclass(frozen=True)
class WordVectors:
    model: str
    dimensions: int
    vectors: list[WordVector]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WordVectors:
        return cls(data["model"], data["dimensions"], [WordVector.from_json(v) for v in data["vectors"]])


@dataclass(frozen=True)
class TextVector:
    tokens: list[str]  # as the model's tokenizer split the text
    oov: list[str]  # tokens not in the vocabulary
    vector: list[float] | None  # mean of the token vectors; None when no token has one

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextVector:
        return cls(data["tokens"], data["oov"], data["vector"])


@dataclass(frozen=True)
class TextVectors:
    model: str
    dimensions: int
    embeddings: list[TextVector]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextVectors:
        return cls(data["model"], data["dimensions"], [TextVector.from_json(e) for e in data["embeddings"]])


@dataclass(frozen=True)
class TokenScore:
    """A token of a text and how much it pushed the predicted label (occlusion: the label's probability minus
    its probability without the token); ``text[start:end]`` is the token as written."""

    token: str
    start: int
    end: int
    score: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenScore:
        return cls(data["token"], data["start"], data["end"], data["score"])


@dataclass(frozen=True)
class ClassResult:
    label: str
    probabilities: dict[str, float]  # of each class; they sum to 1
    explanation: list[TokenScore] | None = None  # with explain=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassResult:
        explanation = data.get("explanation")
        return cls(data["label"], data["probabilities"],
                   None if explanation is None else [TokenScore.from_json(e) for e in explanation])


@dataclass(frozen=True)
class Classification:
    model: str
    results: list[ClassResult]  # one a text, in order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Classification:
        return cls(data["model"], [ClassResult.from_json(r) for r in data["results"]])


@dataclass(frozen=True)
class Attention:
    """A translation's attention: ``weights[t][s]``, target piece t on source piece s."""

    source_tokens: list[str]
    target_tokens: list[str]
    weights: list[list[float]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attention:
        return cls(data["source_tokens"], data["target_tokens"], data["weights"])


@dataclass(frozen=True)
class Translations:
    model: str
    source: str
    target: str
    translations: list[str]  # one a text, in order
    attention: list[Attention] | None = None  # with return_attention=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Translations:
        attention = data.get("attention")
        return cls(data["model"], data["source"], data["target"], data["translations"],
                   None if attention is None else [Attention.from_json(a) for a in attention])


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    logprob: float | None = None
    special: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        return cls(data["id"], data["text"], data.get("logprob"), bool(data.get("special", False)))


def _tokens(items: list[dict[str, Any]] | None) -> list[Token]:
    return [Token.from_json(t) for t in items or []]


@dataclass(frozen=True)
class BestOfSequence:
    """One of the other sequences of a ``best_of`` request (``GenerationDetails.best_of_sequences``)."""

    generated_text: str
    finish_reason: str
    generated_tokens: int
    seed: int | None = None
    prefill: list[Token] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    top_tokens: list[list[Token]] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BestOfSequence:
        top = data.get("top_tokens")
        return cls(data["generated_text"], data["finish_reason"], data["generated_tokens"], data.get("seed"),
                   _tokens(data.get("prefill")), _tokens(data.get("tokens")),
                   None if top is None else [_tokens(step) for step in top])


@dataclass(frozen=True)
class GenerationDetails:
    finish_reason: str  # TGI's: length, eos_token, stop_sequence
    generated_tokens: int
    seed: int | None = None  # the sampling seed: the same seed gives the same text
    prefill: list[Token] = field(default_factory=list)  # with decoder_input_details: the prompt's tokens
    tokens: list[Token] = field(default_factory=list)  # empty in a stream's details
    top_tokens: list[list[Token]] | None = None  # with top_n_tokens: each step's likeliest tokens
    best_of_sequences: list[BestOfSequence] | None = None  # with best_of: the other sequences

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationDetails:
        top, others = data.get("top_tokens"), data.get("best_of_sequences")
        return cls(data["finish_reason"], data["generated_tokens"], data.get("seed"), _tokens(data.get("prefill")),
                   _tokens(data.get("tokens")), None if top is None else [_tokens(step) for step in top],
                   None if others is None else [BestOfSequence.from_json(o) for o in others])


@dataclass(frozen=True)
class Generation:
    generated_text: str
    details: GenerationDetails | None = None  # with details=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Generation:
        details = data.get("details")
        return cls(data["generated_text"], GenerationDetails.from_json(details) if details else None)


@dataclass(frozen=True)
class StreamEvent:
    """One event of a generation stream: a token; the last event also has the whole text and the details."""

    token: Token
    generated_text: str | None = None
    details: GenerationDetails | None = None
    top_tokens: list[Token] | None = None  # with top_n_tokens: this step's likeliest tokens

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamEvent:
        details, top = data.get("details"), data.get("top_tokens")
        return cls(Token.from_json(data["token"]), data.get("generated_text"),
                   GenerationDetails.from_json(details) if details else None, None if top is None else _tokens(top))


@dataclass(frozen=True)
class FailedModel:
    name: str
    error: str  # why it did not load (or build)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FailedModel:
        return cls(data["name"], data["error"])


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model: its name, kind, and everything ``GET /v1/models/{name}`` says of it (``description``:
    dimensions, classes, languages, metrics, batching and engine statistics, ... by kind)."""

    name: str
    kind: str
    description: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(data["name"], data["kind"], data)


@dataclass(frozen=True)
class ModelList:
    models: list[ModelInfo]
    failed: list[FailedModel]
    building: list[dict[str, Any]]  # models built in the background (a first start), with their progress

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelList:
        return cls([ModelInfo.from_json(m) for m in data["models"]],
                   [FailedModel.from_json(f) for f in data["failed"]], data.get("building", []))


@dataclass(frozen=True)
class Readiness:
    """``GET /ready``: ``ready`` when the service answered 200 (its models found at start-up are loaded and one
    at least serves); ``status`` is ``ready``, ``loading`` or ``building``."""

    ready: bool
    status: str
    models: list[str]
    failed: list[FailedModel]
    building: list[dict[str, Any]]

    @classmethod
    def from_answer(cls, status_code: int, data: dict[str, Any]) -> Readiness:
        return cls(status_code == 200, data["status"], data["models"],
                   [FailedModel.from_json(f) for f in data["failed"]], data.get("building", []))


@dataclass(frozen=True)
class ServiceInfo:
    """``GET /info``: the service's version, its libraries' versions, its limits and its models."""

    version: str
    libraries: dict[str, str]
    models: list[str]
    load_seconds: float | None
    limits: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceInfo:
        return cls(data["version"], data["libraries"], data["models"], data.get("load_seconds"), data["limits"])
