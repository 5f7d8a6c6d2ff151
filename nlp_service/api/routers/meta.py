"""Service endpoints: health, readiness, information, the model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..._version import __version__
from ...artifacts import library_versions
from ..deps import LimitsDep, ModelsDep, SettingsDep

router = APIRouter(tags=["service"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: models are loaded (503 until then)")
def ready(models: ModelsDep) -> JSONResponse:
    body = {"status": "ready" if models.ready else "loading", "models": sorted(models.models),
            "failed": sorted(models.failed)}
    return JSONResponse(body, status_code=200 if models.ready else 503)


@router.get("/info", summary="Version, libraries, limits and loaded models")
def info(models: ModelsDep, limits: LimitsDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        "service": "nlp-service",
        "version": __version__,
        "libraries": library_versions(),
        "models_dir": str(settings.models_dir),
        "models": sorted(models.models),
        "load_seconds": models.load_seconds,
        "limits": limits.describe(),
    }


@router.get("/v1/models", summary="Loaded models with their parameters and metrics")
def models(manager: ModelsDep) -> dict[str, Any]:  # the name is the OpenAPI operation id: models_v1_models_get
    return manager.describe()


@router.get("/v1/models/{name}", summary="One model's description")
def model(name: str, models: ModelsDep) -> dict[str, Any]:
    return models.describe_model(name)
