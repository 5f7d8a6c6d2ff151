"""Word-vector endpoints. Routes are plain ``def``: FastAPI runs them in its thread pool, so
BLAS work (which releases the GIL) never blocks the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends

from ...config import Settings
from ...vectors import Neighbor as StoreNeighbor
from ...vectors import NoAnnIndex, VectorsModel, WordNotFound
from ..deps import check_texts, get_manager, get_settings_dep, resolve_model
from ..errors import APIError
from ..models import ModelManager
from ..schemas.vectors import (
    AnalogyRequest,
    AnalogyResponse,
    Neighbor,
    NeighborsRequest,
    NeighborsResponse,
    SimilarityRequest,
    SimilarityResponse,
    TextVector,
    TextVectorsRequest,
    TextVectorsResponse,
    WordVector,
    WordVectorsRequest,
    WordVectorsResponse,
)

router = APIRouter(prefix="/v1", tags=["vectors"])

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]


def _model(manager: ModelManager, settings: Settings, name: str | None) -> VectorsModel:
    return resolve_model(manager, "vectors", name, settings.default_vectors_model or "w2v-es")


def _limit(count: int, limit: int, what: str, setting: str) -> None:
    if count > limit:
        raise APIError(422, "limit_exceeded", f"too many {what}: {count} (at most {limit})",
                       {"limit": limit, "got": count, "setting": f"NLP_{setting.upper()}"})


def _check_topn(topn: int, settings: Settings) -> None:
    if topn > settings.max_topn:
        raise APIError(422, "limit_exceeded", f"topn {topn} is over the limit of {settings.max_topn}",
                       {"limit": settings.max_topn, "got": topn, "setting": "NLP_MAX_TOPN"})


def _words_known(model: VectorsModel, words: Sequence[str]) -> None:
    try:
        model.store.check_words(words)
    except WordNotFound as exc:
        raise APIError(404, "word_not_found", f"{exc} (model {model.name!r})",
                       {"words": exc.words, "model": model.name}) from None


def _neighbors(items: list[StoreNeighbor]) -> list[Neighbor]:
    return [Neighbor(word=n.word, score=n.score) for n in items]


@router.post("/similarity", response_model=SimilarityResponse, summary="Cosine similarity of two words")
def similarity(body: SimilarityRequest, manager: ManagerDep, settings: SettingsDep) -> SimilarityResponse:
    model = _model(manager, settings, body.model)
    _words_known(model, [body.word1, body.word2])
    return SimilarityResponse(model=model.name, word1=body.word1, word2=body.word2,
                              similarity=model.store.similarity(body.word1, body.word2))


@router.post("/neighbors", response_model=NeighborsResponse,
             summary="Nearest neighbours of a word, a vector, or positive/negative word lists")
def neighbors(body: NeighborsRequest, manager: ManagerDep, settings: SettingsDep) -> NeighborsResponse:
    model = _model(manager, settings, body.model)
    _check_topn(body.topn, settings)
    store = model.store
    positive: list[str | np.ndarray]
    negative: list[str | np.ndarray] = list(body.negative)
    if body.vector is not None:
        if len(body.vector) != store.dim:
            raise APIError(422, "wrong_dimensions", f"vector has {len(body.vector)} values, model "
                           f"{model.name!r} has {store.dim} dimensions", {"expected": store.dim,
                                                                           "got": len(body.vector)})
        vec = np.asarray(body.vector, dtype=np.float32)
        if not np.all(np.isfinite(vec)) or not np.any(vec):
            raise APIError(422, "invalid_vector", "vector must be finite and not all zeros")
        positive = [vec]
    elif body.word is not None:
        positive = [body.word]
    else:
        positive = list(body.positive)
    words = [w for w in [*positive, *negative] if isinstance(w, str)]
    _limit(len(words), settings.max_words, "words", "max_words")
    _words_known(model, words)
    try:
        result = store.most_similar(positive, negative, topn=body.topn, approximate=body.approximate,
                                    ef=max(settings.ann_ef_search, body.topn))
    except NoAnnIndex as exc:
        raise APIError(422, "no_approximate_index", str(exc), {"model": model.name}) from None
    return NeighborsResponse(model=model.name, approximate=body.approximate, neighbors=_neighbors(result))


@router.post("/analogy", response_model=AnalogyResponse, summary="a is to b as c is to ? (3CosAdd or 3CosMul)")
def analogy(body: AnalogyRequest, manager: ManagerDep, settings: SettingsDep) -> AnalogyResponse:
    model = _model(manager, settings, body.model)
    _check_topn(body.topn, settings)
    _words_known(model, [body.a, body.b, body.c])
    answers = model.store.analogy(body.a, body.b, body.c, topn=body.topn, method=body.method)
    return AnalogyResponse(model=model.name, method=body.method, answers=_neighbors(answers))


@router.post("/embeddings/words", response_model=WordVectorsResponse, summary="Vectors of words")
def word_vectors(body: WordVectorsRequest, manager: ManagerDep, settings: SettingsDep) -> WordVectorsResponse:
    model = _model(manager, settings, body.model)
    _limit(len(body.words), settings.max_words, "words", "max_words")
    _words_known(model, body.words)
    out = []
    for word in body.words:
        vec, source = model.store.vector(word, normalized=body.normalize)
        out.append(WordVector(word=word, source=source, vector=vec.tolist()))
    return WordVectorsResponse(model=model.name, dimensions=model.store.dim, vectors=out)


@router.post("/embeddings/texts", response_model=TextVectorsResponse,
             summary="Vectors of texts: mean of their token vectors")
def text_vectors(body: TextVectorsRequest, manager: ManagerDep, settings: SettingsDep) -> TextVectorsResponse:
    model = _model(manager, settings, body.model)
    check_texts(body.texts, settings)
    out = []
    for text in body.texts:
        vec, tokens, oov = model.text_vector(text, normalized=body.normalize)
        out.append(TextVector(tokens=tokens, oov=oov, vector=None if vec is None else vec.tolist()))
    return TextVectorsResponse(model=model.name, dimensions=model.store.dim, embeddings=out)
