"""The asyncio client: :class:`~nlp_service.client.Client`'s methods, awaited, over one ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
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


class AsyncClient:
    """:class:`~nlp_service.client.Client` for asyncio: the same methods, to await (``generate_stream`` is an
    async iterator), over one ``httpx.AsyncClient``; ``async with AsyncClient(...) as client:`` closes it.
    Leaving a stream early: close it (``contextlib.aclosing``) to stop the generation on the server at once."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None,
                 **httpx_options: Any) -> None:
        self._http = httpx.AsyncClient(**connection_options(base_url, api_key, timeout, headers), **httpx_options)

    async def _send(self, call: Call[T]) -> T:
        return call.answer(await self._http.request(call.method, call.path, json=call.body))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    # ---- the service ----------------------------------------------------------------------------

    async def health(self) -> bool:
        """``GET /health``: True when the process answers."""
        return await self._send(calls.health())

    async def ready(self) -> Readiness:
        """``GET /ready``: whether the models are loaded (``.ready``), which, and those that failed."""
        return await self._send(calls.ready())

    async def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> Readiness:
        """Poll ``/ready`` until it answers 200 (also while nothing listens yet); TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                readiness = await self.ready()
                if readiness.ready:
                    return readiness
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the service was not ready within {timeout} s")
            await asyncio.sleep(interval)

    async def info(self) -> ServiceInfo:
        """``GET /info``: version, libraries, limits, loaded models."""
        return await self._send(calls.info())

    async def models(self) -> ModelList:
        """``GET /v1/models``: the loaded models, those that failed, those being built."""
        return await self._send(calls.models())

    async def model(self, name: str) -> ModelInfo:
        """``GET /v1/models/{name}``: one model's description."""
        return await self._send(calls.model(name))

    # ---- word vectors ---------------------------------------------------------------------------

    async def similarity(self, word1: str, word2: str, *, model: str | None = None) -> Similarity:
        """``POST /v1/similarity``: the cosine similarity of two words."""
        return await self._send(calls.similarity(word1, word2, model))

    async def neighbors(self, word: str | None = None, *, vector: Sequence[float] | None = None,
                        positive: Sequence[str] | None = None, negative: Sequence[str] | None = None,
                        topn: int | None = None, approximate: bool | None = None, model: str | None = None
                        ) -> Neighbors:
        """``POST /v1/neighbors``: the nearest words to one ``word``, one ``vector``, or the mean of ``positive``
        minus ``negative`` words (give one of the three); ``topn`` (10), ``approximate`` (the HNSW index)."""
        return await self._send(calls.neighbors(word, vector, positive, negative, topn, approximate, model))

    async def analogy(self, a: str, b: str, c: str, *, topn: int | None = None, method: AnalogyMethod | None = None,
                      model: str | None = None) -> Analogy:
        """``POST /v1/analogy``: ``a`` is to ``b`` as ``c`` is to ...? ``method`` 3cosadd (default) or 3cosmul."""
        return await self._send(calls.analogy(a, b, c, topn, method, model))

    async def word_vectors(self, words: Sequence[str], *, normalize: bool | None = None, model: str | None = None
                           ) -> WordVectors:
        """``POST /v1/embeddings/words``: each word's vector (unit length with ``normalize``)."""
        return await self._send(calls.word_vectors(words, normalize, model))

    async def text_vectors(self, texts: Sequence[str], *, normalize: bool | None = None, model: str | None = None
                           ) -> TextVectors:
        """``POST /v1/embeddings/texts``: each text's vector, the mean of its token vectors (None when no token
        has one), with its tokens and the unknown ones."""
        return await self._send(calls.text_vectors(texts, normalize, model))

    # ---- classification, translation ----------------------------------------------------------

    async def classify(self, texts: Sequence[str], *, model: str | None = None, explain: bool | None = None,
                       explain_method: str | None = None
                 ) -> Classification:
        """``POST /v1/classify``: each text's label and class probabilities; ``explain``: each token's score
        too (``ClassResult.explanation``), by ``explain_method``: "occlusion" (default) or "cam" (CNN models)."""
        return await self._send(calls.classify(texts, model, explain=explain,
                                        explain_method=explain_method))

    async def sentiment(self, texts: Sequence[str], *, model: str | None = None, explain: bool | None = None,
                        explain_method: str | None = None
                  ) -> Classification:
        """``POST /v1/sentiment``: the same, with the default sentiment model unless ``model`` names one."""
        return await self._send(calls.classify(texts, model, sentiment=True, explain=explain,
                                        explain_method=explain_method))

    async def translate(self, texts: Sequence[str], *, source: str | None = None, target: str | None = None,
                        model: str | None = None, beam_size: int | None = None, max_length: int | None = None,
                        length_penalty: float | None = None, return_attention: bool | None = None) -> Translations:
        """``POST /v1/translate``: ``source``/``target`` language codes pick the translator (or ``model``);
        ``beam_size`` 1 is greedy decoding."""
        return await self._send(calls.translate(texts, source, target, model, beam_size, max_length, length_penalty,
                                                 return_attention))

    # ---- generation -----------------------------------------------------------------------------

    async def generate(self, prompt: str, *, model: str | None = None, max_new_tokens: int | None = None,
                       do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
                       top_p: float | None = None, repetition_penalty: float | None = None, seed: int | None = None,
                       stop: Sequence[str] | None = None, details: bool | None = None,
                       return_full_text: bool | None = None, **parameters: Any) -> Generation:
        """``POST /v1/generate`` (TGI's shape): the continuation of ``prompt``; greedy unless ``do_sample`` (or a
        temperature, top_k, top_p). ``details`` adds the finish reason, token count, seed and tokens. TGI's other
        ``parameters`` (``typical_p``, ``frequency_penalty``, ``truncate``, ``best_of``, ``top_n_tokens``,
        ``decoder_input_details``, ...) are sent as given."""
        return await self._send(calls.generate(prompt, model, dict(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=repetition_penalty, seed=seed, stop=stop, details=details,
            return_full_text=return_full_text, **parameters)))

    async def generate_stream(self, prompt: str, *, model: str | None = None, max_new_tokens: int | None = None,
                              do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
                              top_p: float | None = None, repetition_penalty: float | None = None,
                              seed: int | None = None, stop: Sequence[str] | None = None,
                              return_full_text: bool | None = None, **parameters: Any) -> AsyncIterator[StreamEvent]:
        """``POST /v1/generate_stream``: :meth:`generate` as server-sent events, one :class:`StreamEvent` a
        token; the last has ``generated_text`` and ``details``. Closing it early (``aclose()``, or
        ``contextlib.aclosing``) closes the connection, which stops the generation on the server."""
        body = calls.generation_body(prompt, model, dict(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=repetition_penalty, seed=seed, stop=stop, return_full_text=return_full_text,
            **parameters))
        async with self._http.stream("POST", calls.GENERATE_STREAM_PATH, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_response(response)
            reader = EventReader(response)
            async for line in response.aiter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event
            reader.end()
