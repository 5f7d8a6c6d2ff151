"""The blocking client: one method an endpoint (see :mod:`._calls`), over one ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _calls as calls
from ._calls import AnalogyMethod, Call
from ._connection import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, connection_options
from ._errors import error_from_response
from ._stream import EventReader
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
    StreamEvent,
    TextVectors,
    Translations,
    WordVectors,
)

T = TypeVar("T")


class Client:
    """The service over HTTP: ``Client("http://127.0.0.1:8000", api_key=...)``. Each method is an endpoint and
    returns its answer as a dataclass; an error answer raises :class:`~nlp_service.client.ServiceError` (also an
    instance of ``nlp_service.ModelNotFound``, ``LimitExceeded``, ... by its kind), and a service that cannot
    be reached raises httpx's ``TransportError``. Arguments left as None take the server's defaults; ``model``
    None is the default model of the kind. Close it (or use it as a context manager) to free its connections.
    ``httpx_options`` go to ``httpx.Client`` (``verify``, ``proxy``, ``transport``, ...)."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None,
                 **httpx_options: Any) -> None:
        self._http = httpx.Client(**connection_options(base_url, api_key, timeout, headers), **httpx_options)

    def _send(self, call: Call[T]) -> T:
        return call.answer(self._http.request(call.method, call.path, json=call.body))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ---- the service ----------------------------------------------------------------------------

    def health(self) -> bool:
        """``GET /health``: True when the process answers."""
        return self._send(calls.health())

    def ready(self) -> Readiness:
        """``GET /ready``: whether the models are loaded (``.ready``), which, and those that failed."""
        return self._send(calls.ready())

    def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> Readiness:
        """Poll ``/ready`` until it answers 200 (also while nothing listens yet); TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                readiness = self.ready()
                if readiness.ready:
                    return readiness
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the service was not ready within {timeout} s")
            time.sleep(interval)

    def info(self) -> ServiceInfo:
        """``GET /info``: version, libraries, limits, loaded models."""
        return self._send(calls.info())

    def models(self) -> ModelList:
        """``GET /v1/models``: the loaded models, those that failed, those being built."""
        return self._send(calls.models())

    def model(self, name: str) -> ModelInfo:
        """``GET /v1/models/{name}``: one model's description."""
        return self._send(calls.model(name))

    # ---- word vectors ---------------------------------------------------------------------------

    def similarity(self, word1: str, word2: str, *, model: str | None = None) -> Similarity:
        """``POST /v1/similarity``: the cosine similarity of two words."""
        return self._send(calls.similarity(word1, word2, model))

    def neighbors(self, word: str | None = None, *, vector: Sequence[float] | None = None,
                  positive: Sequence[str] | None = None, negative: Sequence[str] | None = None,
                  topn: int | None = None, approximate: bool | None = None, model: str | None = None) -> Neighbors:
        """``POST /v1/neighbors``: the nearest words to one ``word``, one ``vector``, or the mean of ``positive``
        minus ``negative`` words (give one of the three); ``topn`` (10), ``approximate`` (the HNSW index)."""
        return self._send(calls.neighbors(word, vector, positive, negative, topn, approximate, model))

    def analogy(self, a: str, b: str, c: str, *, topn: int | None = None, method: AnalogyMethod | None = None,
                model: str | None = None) -> Analogy:
        """``POST /v1/analogy``: ``a`` is to ``b`` as ``c`` is to ...? ``method`` 3cosadd (default) or 3cosmul."""
        return self._send(calls.analogy(a, b, c, topn, method, model))

    def word_vectors(self, words: Sequence[str], *, normalize: bool | None = None, model: str | None = None
                     ) -> WordVectors:
        """``POST /v1/embeddings/words``: each word's vector (unit length with ``normalize``)."""
        return self._send(calls.word_vectors(words, normalize, model))

    def text_vectors(self, texts: Sequence[str], *, normalize: bool | None = None, model: str | None = None
                     ) -> TextVectors:
        """``POST /v1/embeddings/texts``: each text's vector, the mean of its token vectors (None when no token
        has one), with its tokens and the unknown ones."""
        return self._send(calls.text_vectors(texts, normalize, model))

    # ---- classification, translation ----------------------------------------------------------

    def classify(self, texts: Sequence[str], *, model: str | None = None, explain: bool | None = None,
                 explain_method: str | None = None
                 ) -> Classification:
        """``POST /v1/classify``: each text's label and class probabilities; ``explain``: each token's score
        too (``ClassResult.explanation``), by ``explain_method``: "occlusion" (default) or "cam" (CNN models)."""
        return self._send(calls.classify(texts, model, explain=explain,
                                        explain_method=explain_method))

    def sentiment(self, texts: Sequence[str], *, model: str | None = None, explain: bool | None = None,
                  explain_method: str | None = None
                  ) -> Classification:
        """``POST /v1/sentiment``: the same, with the default sentiment model unless ``model`` names one."""
        return self._send(calls.classify(texts, model, sentiment=True, explain=explain,
                                        explain_method=explain_method))

    def translate(self, texts: Sequence[str], *, source: str | None = None, target: str | None = None,
                  model: str | None = None, beam_size: int | None = None, max_length: int | None = None,
                  length_penalty: float | None = None, return_attention: bool | None = None) -> Translations:
        """``POST /v1/translate``: ``source``/``target`` language codes pick the translator (or ``model``);
        ``beam_size`` 1 is greedy decoding."""
        return self._send(calls.translate(texts, source, target, model, beam_size, max_length, length_penalty,
                                                 return_attention))

    # ---- generation -----------------------------------------------------------------------------

    def generate(self, prompt: str, *, model: str | None = None, max_new_tokens: int | None = None,
                 do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, repetition_penalty: float | None = None, seed: int | None = None,
                 stop: Sequence[str] | None = None, details: bool | None = None,
                 return_full_text: bool | None = None, **parameters: Any) -> Generation:
        """``POST /v1/generate`` (TGI's shape): the continuation of ``prompt``; greedy unless ``do_sample`` (or a
        temperature, top_k, top_p). ``details`` adds the finish reason, token count, seed and tokens. TGI's other
        ``parameters`` (``typical_p``, ``frequency_penalty``, ``truncate``, ``best_of``, ``top_n_tokens``,
        ``decoder_input_details``, ...) are sent as given."""
        return self._send(calls.generate(prompt, model, dict(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=repetition_penalty, seed=seed, stop=stop, details=details,
            return_full_text=return_full_text, **parameters)))

    def generate_stream(self, prompt: str, *, model: str | None = None, max_new_tokens: int | None = None,
                        do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
                        top_p: float | None = None, repetition_penalty: float | None = None,
                        seed: int | None = None, stop: Sequence[str] | None = None,
                        return_full_text: bool | None = None, **parameters: Any) -> Iterator[StreamEvent]:
        """``POST /v1/generate_stream``: :meth:`generate` as server-sent events, one :class:`StreamEvent` a
        token; the last has ``generated_text`` and ``details``. Leaving the loop early closes the connection,
        which stops the generation on the server."""
        body = calls.generation_body(prompt, model, dict(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=repetition_penalty, seed=seed, stop=stop, return_full_text=return_full_text,
            **parameters))
        with self._http.stream("POST", calls.GENERATE_STREAM_PATH, json=body) as response:
            if response.status_code != 200:
                response.read()
                raise error_from_response(response)
            reader = EventReader(response)
            for line in response.iter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event
            reader.end()
