"""Classification endpoints. ``async`` routes that only validate and await the model's
micro-batching worker: the forward passes run in its thread, batched across requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ...classify import ClassifierModel
from ...config import Settings
from ..deps import check_texts, get_manager, get_settings_dep, resolve_model
from ..models import ModelManager
from ..schemas.classify import ClassifyRequest, ClassifyResponse, ClassResult

router = APIRouter(prefix="/v1", tags=["classification"])

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]


async def _classify(request: Request, body: ClassifyRequest, default: str | None) -> ClassifyResponse:
    settings: Settings = request.app.state.settings
    manager: ModelManager = request.app.state.models
    model: ClassifierModel = resolve_model(manager, "classifier", body.model, default)
    check_texts(body.texts, settings)
    predictions = await manager.batcher(model.name).submit(body.texts)
    return ClassifyResponse(model=model.name, results=[ClassResult(label=p.label, probabilities=p.probabilities)
                                                      for p in predictions])


@router.post("/classify", response_model=ClassifyResponse, summary="Label and class probabilities of texts")
async def classify(body: ClassifyRequest, request: Request, settings: SettingsDep) -> ClassifyResponse:
    return await _classify(request, body, settings.default_classifier_model or "bow-es")


@router.post("/sentiment", response_model=ClassifyResponse,
             summary="Sentiment (pos/neg) of texts, with the default sentiment model")
async def sentiment(body: ClassifyRequest, request: Request, settings: SettingsDep) -> ClassifyResponse:
    return await _classify(request, body, settings.default_sentiment_model)



