"""Each endpoint once: the request it takes (method, path, JSON body with the schemas' field names) and how
its answer is read. :class:`~nlp_service.client.Client` and :class:`~nlp_service.client.AsyncClient` only
send these. Fields left as None are not sent: the server's defaults apply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from ._errors import error_from_response
from ._types import (
    Analogy,
    Classification,
    Generation,
    ModelInfo,
    ModelList,
    Neighbors,
    Readiness,
    ServiceInfo,
    Similarity,
    TextVectors,
    Translations,
    WordVectors,
)

T = TypeVar("T")
AnalogyMethod = Literal["3cosadd", "3cosmul"]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    body: dict[str, Any] | None = None
    answers: frozenset[int] = field(default=frozenset({200}))  # statuses whose body is an answer, not an error

    def answer(self, response: httpx.Response) -> T:
        """The result of ``response`` (read); the service's error as an exception."""
        if response.status_code not in self.answers:
            raise error_from_response(response)
        return self.read(response)


def _json(from_json: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    return lambda response: from_json(response.json())


def _given(**fields: Any) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in fields.items()
            if value is not None}


def health() -> Call[bool]:
    return Call("GET", "/health", lambda response: response.json().get("status") == "ok")


def ready() -> Call[Readiness]:
    # 503 is an answer here: not ready yet, and why.
    return Call("GET", "/ready", lambda r: Readiness.from_answer(r.status_code, r.json()),
                answers=frozenset({200, 503}))


def info() -> Call[ServiceInfo]:
    return Call("GET", "/info", _json(ServiceInfo.from_json))


def models() -> Call[ModelList]:
    return Call("GET", "/v1/models", _json(ModelList.from_json))


def model(name: str) -> Call[ModelInfo]:
    return Call("GET", f"/v1/models/{quote(name, safe='')}", _json(ModelInfo.from_json))


def similarity(word1: str, word2: str, model: str | None) -> Call[Similarity]:
    return Call("POST", "/v1/similarity", _json(Similarity.from_json), _given(word1=word1, word2=word2, model=model))


def neighbors(word: str | None, vector: Sequence[float] | None, positive: Sequence[str] | None,
              negative: Sequence[str] | None, topn: int | None, approximate: bool | None, model: str | None
              ) -> Call[Neighbors]:
    body = _given(word=word, vector=None if vector is None else [float(x) for x in vector],
                  positive=None if positive is None else list(positive),
                  negative=None if negative is None else list(negative), topn=topn, approximate=approximate,
                  model=model)
    return Call("POST", "/v1/neighbors", _json(Neighbors.from_json), body)


def analogy(a: str, b: str, c: str, topn: int | None, method: AnalogyMethod | None, model: str | None
            ) -> Call[Analogy]:
    return Call("POST", "/v1/analogy", _json(Analogy.from_json),
                _given(a=a, b=b, c=c, topn=topn, method=method, model=model))


def word_vectors(words: Sequence[str], normalize: bool | None, model: str | None) -> Call[WordVectors]:
    return Call("POST", "/v1/embeddings/words", _json(WordVectors.from_json),
                _given(words=list(words), normalize=normalize, model=model))


def text_vectors(texts: Sequence[str], normalize: bool | None, model: str | None) -> Call[TextVectors]:
    return Call("POST", "/v1/embeddings/texts", _json(TextVectors.from_json),
                _given(texts=list(texts), normalize=normalize, model=model))


def classify(texts: Sequence[str], model: str | None, *, sentiment: bool = False, explain: bool | None = None,
             explain_method: str | None = None) -> Call[Classification]:
    return Call("POST", "/v1/sentiment" if sentiment else "/v1/classify", _json(Classification.from_json),
                _given(texts=list(texts), model=model, explain=explain, explain_method=explain_method))


def translate(texts: Sequence[str], source: str | None, target: str | None, model: str | None,
              beam_size: int | None, max_length: int | None, length_penalty: float | None,
              return_attention: bool | None = None) -> Call[Translations]:
    return Call("POST", "/v1/translate", _json(Translations.from_json),
                _given(texts=list(texts), source=source, target=target, model=model, beam_size=beam_size,
                       max_length=max_length, length_penalty=length_penalty, return_attention=return_attention))


def generation_body(prompt: str, model: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    """TGI's request: ``inputs``, ``parameters`` (those given), ``model``."""
    return _given(inputs=prompt, parameters=_given(**parameters), model=model)


def generate(prompt: str, model: str | None, parameters: dict[str, Any]) -> Call[Generation]:
    return Call("POST", "/v1/generate", _json(Generation.from_json), generation_body(prompt, model, parameters))


GENERATE_STREAM_PATH = "/v1/generate_stream"
