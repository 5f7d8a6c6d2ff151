"""Word-vector endpoints. Routes are plain ``def``: FastAPI runs them in its thread pool, so BLAS work
(which releases the GIL) never blocks the event loop."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from ...vectors import Neighbor as FoundNeighbor
from ..deps import VectorsDep
from ..errors import MODEL_QUERY, error_responses
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

router = APIRouter(prefix="/v1", tags=["vectors"], responses=error_responses(*MODEL_QUERY))


def _neighbors(found: Sequence[FoundNeighbor]) -> list[Neighbor]:
    return [Neighbor(word=n.word, score=n.score) for n in found]


@router.post("/similarity", response_model=SimilarityResponse, summary="Cosine similarity of two words")
def similarity(body: SimilarityRequest, vectors: VectorsDep) -> SimilarityResponse:
    model = vectors.model(body.model)
    return SimilarityResponse(model=model.name, word1=body.word1, word2=body.word2,
                              similarity=model.similarity(body.word1, body.word2))


@router.post("/neighbors", response_model=NeighborsResponse,
             summary="Nearest neighbours of a word, a vector, or positive/negative word lists")
def neighbors(body: NeighborsRequest, vectors: VectorsDep) -> NeighborsResponse:
    model = vectors.model(body.model)
    found = vectors.neighbors(model, word=body.word, vector=body.vector, positive=body.positive,
                              negative=body.negative, topn=body.topn, approximate=body.approximate)
    return NeighborsResponse(model=model.name, approximate=body.approximate, neighbors=_neighbors(found))


@router.post("/analogy", response_model=AnalogyResponse, summary="a is to b as c is to ? (3CosAdd or 3CosMul)")
def analogy(body: AnalogyRequest, vectors: VectorsDep) -> AnalogyResponse:
    model = vectors.model(body.model)
    answers = vectors.analogy(model, body.a, body.b, body.c, topn=body.topn, method=body.method)
    return AnalogyResponse(model=model.name, method=body.method, answers=_neighbors(answers))


@router.post("/embeddings/words", response_model=WordVectorsResponse, summary="Vectors of words")
def word_vectors(body: WordVectorsRequest, vectors: VectorsDep) -> WordVectorsResponse:
    model = vectors.model(body.model)
    found = vectors.word_vectors(model, body.words, normalized=body.normalize)
    return WordVectorsResponse(model=model.name, dimensions=model.store.dim, vectors=[
        WordVector(word=word, source=source, vector=vec.tolist())
        for word, (vec, source) in zip(body.words, found, strict=True)])


@router.post("/embeddings/texts", response_model=TextVectorsResponse,
             summary="Vectors of texts: mean of their token vectors")
def text_vectors(body: TextVectorsRequest, vectors: VectorsDep) -> TextVectorsResponse:
    model = vectors.model(body.model)
    found = vectors.text_vectors(model, body.texts, normalized=body.normalize)
    return TextVectorsResponse(model=model.name, dimensions=model.store.dim, embeddings=[
        TextVector(tokens=tokens, oov=oov, vector=None if vec is None else vec.tolist()) for vec, tokens, oov in found])
