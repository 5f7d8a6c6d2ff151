"""Classification endpoints. ``async`` routes that await the model's micro-batching worker: the forward
passes run in its thread, batched across requests."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ...classify import ClassifierModel
from ..deps import ClassificationDep
from ..errors import MODEL_QUERY, error_responses
from ..schemas.classify import ClassifyRequest, ClassifyResponse, ClassResult, TokenScore

router = APIRouter(prefix="/v1", tags=["classification"], responses=error_responses(*MODEL_QUERY))


async def _answer(body: ClassifyRequest, model: ClassifierModel, classification: ClassificationDep
                  ) -> ClassifyResponse:
    if not body.explain:
        return ClassifyResponse(model=model.name, results=[ClassResult(label=p.label, probabilities=p.probabilities)
                                                           for p in await classification.classify(model, body.texts)])
    explained = await classification.explain(model, body.texts, body.explain_method or "occlusion")
    return ClassifyResponse(model=model.name, results=[
        ClassResult(label=p.label, probabilities=p.probabilities,
                    explanation=[TokenScore(**asdict(s)) for s in scores]) for p, scores in explained])


# ``explanation`` is absent (not null) unless asked for.
@router.post("/classify", response_model=ClassifyResponse, response_model_exclude_none=True,
             summary="Label and class probabilities of texts")
async def classify(body: ClassifyRequest, classification: ClassificationDep) -> ClassifyResponse:
    return await _answer(body, classification.model(body.model), classification)


@router.post("/sentiment", response_model=ClassifyResponse, response_model_exclude_none=True,
             summary="Sentiment (pos/neg) of texts, with the default sentiment model")
async def sentiment(body: ClassifyRequest, classification: ClassificationDep) -> ClassifyResponse:
    return await _answer(body, classification.model(body.model, sentiment=True), classification)
