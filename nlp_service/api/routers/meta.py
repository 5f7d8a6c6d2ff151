"""Service endpoints: health, readiness, information, the model list."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..._version import __version__
from ...artifacts import library_versions
from ...errors import NLPServiceError
from ..deps import GenerationDep, LimitsDep, ModelsDep, SettingsDep
from ..errors import GUARDED, error_responses
from ..protocols import tgi

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


# What /ready answers, 200 or 503 (documentation only: the route builds the body itself).
_READY_BODY = {"type": "object", "required": ["status", "models", "failed"], "properties": {
    "status": {"type": "string", "enum": ["ready", "loading", "building"],
               "description": "loading: the models found at start-up are loading; building: models are being "
               "built in the background (a first start), the others serve; ready: nothing more to come."},
    "models": {"type": "array", "items": {"type": "string"}, "description": "Models loaded (so far)."},
    "building": {"type": "array", "description": "Present while models are built in the background: each with "
                 "its state (waiting, building) and progress, in build order.", "items": {
                     "type": "object", "required": ["name", "state"], "properties": {
                         "name": {"type": "string"}, "kind": {"type": "string"},
                         "state": {"type": "string", "enum": ["waiting", "building"]},
                         "progress": {"type": ["number", "null"], "description": "0-1, an estimate."},
                         "stage": {"type": ["string", "null"]},
                         "elapsed_seconds": {"type": "number"},
                         "expected_seconds": {"type": ["number", "null"]},
                         "remaining_seconds": {"type": ["number", "null"]},
                         "after": {"type": "array", "items": {"type": "string"}},
                         "warning": {"type": "string", "description": "Present when the build could not have "
                                     "its pretrained model (NLP_DEFAULTS=pretrained, Hub unreachable) and builds "
                                     "the demo instead: why, and the command that retries."}}}},
    "failed": {"type": "array", "description": "Models that failed to load (or to build), with why.", "items": {
        "type": "object", "required": ["name", "error"],
        "properties": {"name": {"type": "string"}, "error": {"type": "string"}}}}}}


@router.get("/ready", response_class=JSONResponse, responses={
    200: {"description": "The service can answer: the models found at start-up are loaded (some may still be "
          "building)", "content": {"application/json": {"schema": _READY_BODY}}},
    503: {"description": "Models are still loading, or none is loaded yet and some are building",
          "content": {"application/json": {"schema": _READY_BODY}}}},
            summary="Readiness: the models found are loaded and one at least serves (503 until then)")
def ready(models: ModelsDep) -> JSONResponse:
    # 200 once loading is done, also when some models failed: they are listed with why (never served). While
    # models are built in the background (a first start), 200 as soon as one serves: a load balancer sends
    # traffic, and a request for a model still building gets 503 model_building with a Retry-After. Until the
    # first is built nothing could answer: 503.
    done = models.ready  # read first: ``models`` and ``failed`` are complete once it is set
    building = models.builds()
    loaded = sorted(models.models)
    status = "loading" if not done else "building" if building else "ready"
    body: dict[str, Any] = {"status": status, "models": loaded, "failed": models.failures()}
    if building:
        body["building"] = building
    return JSONResponse(body, status_code=200 if done and (loaded or not building) else 503)


@router.get("/info", responses=error_responses(*GUARDED), summary="Version, libraries, limits and loaded models")
def info(models: ModelsDep, limits: LimitsDep, generation: GenerationDep, settings: SettingsDep) -> dict[str, Any]:
    # Versions and limits; no filesystem paths (the models folder is the operator's business).
    body = {
        "service": "nlp-service",
        "version": __version__,
        "libraries": library_versions(),
        "models": sorted(models.models),
        "load_seconds": models.load_seconds,
        "limits": limits.describe(),
    }
    # TGI's fields too (its clients read /info), when the default generator is loaded.
    with contextlib.suppress(NLPServiceError):
        body.update(tgi.info(generation.model(None), settings))
    return body


@router.get("/v1/models", responses=error_responses(*GUARDED),
            summary="Loaded models with their parameters and metrics")
def models(manager: ModelsDep) -> dict[str, Any]:  # the name is the OpenAPI operation id: models_v1_models_get
    return manager.describe()


@router.get("/v1/models/{name}", responses=error_responses(*GUARDED, 404, 422),
            summary="One model's description")
def model(name: str, models: ModelsDep) -> dict[str, Any]:
    return models.describe_model(name)


# A plain (sync) route: reading the file runs in the thread pool, not on the event loop.
@router.get("/v1/models/{name}/curves", response_class=Response, responses={
    200: {"description": "The model's training curves (loss and validation metrics by epoch or step), as drawn "
          "when it was trained", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
    **error_responses(*GUARDED, 404, 422)},
            summary="A model's training curves (PNG); 404 no_training_curve for a model trained without")
def curves(name: str, models: ModelsDep) -> Response:
    return Response(models.training_curve(name), media_type="image/png")
