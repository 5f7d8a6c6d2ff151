"""Service endpoints: health, readiness, information, the model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..._version import __version__
from ...artifacts import library_versions
from ..deps import LimitsDep, ModelsDep
from ..errors import GUARDED, error_responses

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


# What /ready answers, 200 or 503 (documentation only: the route builds the body itself).
_READY_BODY = {"type": "object", "required": ["status", "models", "failed"], "properties": {
    "status": {"type": "string", "enum": ["ready", "loading"]},
    "models": {"type": "array", "items": {"type": "string"}, "description": "Models loaded (so far)."},
    "failed": {"type": "array", "description": "Models that failed to load, with why.", "items": {
        "type": "object", "required": ["name", "error"],
        "properties": {"name": {"type": "string"}, "error": {"type": "string"}}}}}}


@router.get("/ready", response_class=JSONResponse, responses={
    200: {"description": "Models are loaded", "content": {"application/json": {"schema": _READY_BODY}}},
    503: {"description": "Models are still loading", "content": {"application/json": {"schema": _READY_BODY}}}},
            summary="Readiness: every configured model has been tried (503 until then)")
def ready(models: ModelsDep) -> JSONResponse:
    # 200 once loading is done, also when some models failed: they are listed with why (never served).
    done = models.ready  # read first: ``models`` and ``failed`` are complete once it is set
    body = {"status": "ready" if done else "loading", "models": sorted(models.models),
            "failed": models.failures()}
    return JSONResponse(body, status_code=200 if done else 503)


@router.get("/info", responses=error_responses(*GUARDED), summary="Version, libraries, limits and loaded models")
def info(models: ModelsDep, limits: LimitsDep) -> dict[str, Any]:
    # Versions and limits; no filesystem paths (the models folder is the operator's business).
    return {
        "service": "nlp-service",
        "version": __version__,
        "libraries": library_versions(),
        "models": sorted(models.models),
        "load_seconds": models.load_seconds,
        "limits": limits.describe(),
    }


@router.get("/v1/models", responses=error_responses(*GUARDED),
            summary="Loaded models with their parameters and metrics")
def models(manager: ModelsDep) -> dict[str, Any]:  # the name is the OpenAPI operation id: models_v1_models_get
    return manager.describe()


@router.get("/v1/models/{name}", responses=error_responses(*GUARDED, 404, 422),
            summary="One model's description")
def model(name: str, models: ModelsDep) -> dict[str, Any]:
    return models.describe_model(name)
