"""Classification endpoints. ``async`` routes that await the model's micro-batching worker: the forward
passes run in its thread, batched across requests."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from ...classify import ClassifierModel, Prediction
from ..deps import ClassificationDep
from ..errors import MODEL_QUERY, error_responses
from ..schemas.classify import ClassifyRequest, ClassifyResponse, ClassResult

router = APIRouter(prefix="/v1", tags=["classification"], responses=error_responses(*MODEL_QUERY))


def _response(model: ClassifierModel, predictions: Sequence[Prediction]) -> ClassifyResponse:
    return ClassifyResponse(model=model.name, results=[ClassResult(label=p.label, probabilities=p.probabilities)
                                                      for p in predictions])


@router.post("/classify", response_model=ClassifyResponse, summary="Label and class probabilities of texts")
async def classify(body: ClassifyRequest, classification: ClassificationDep) -> ClassifyResponse:
    model = classification.model(body.model)
    return _response(model, await classification.classify(model, body.texts))


@router.post("/sentiment", response_model=ClassifyResponse,
             summary="Sentiment (pos/neg) of texts, with the default sentiment model")
async def sentiment(body: ClassifyRequest, classification: ClassificationDep) -> ClassifyResponse:
    model = classification.model(body.model, sentiment=True)
    return _response(model, await classification.classify(model, body.texts))
