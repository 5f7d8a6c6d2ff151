"""Service endpoints: health, readiness, information, the model list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..._version import __version__
from ...artifacts import library_versions
from ...config import Settings
from ..deps import get_manager, get_settings_dep
from ..errors import APIError
from ..models import ModelManager

router = APIRouter(tags=["service"])

ManagerDep = Annotated[ModelManager, Depends(get_manager)]


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: models are loaded (503 until then)")
def ready(manager: ManagerDep) -> JSONResponse:
    body = {"status": "ready" if manager.ready else "loading", "models": sorted(manager.models),
            "failed": sorted(manager.failed)}
    return JSONResponse(body, status_code=200 if manager.ready else 503)


@router.get("/info", summary="Version, libraries, limits and loaded models")
def info(manager: ManagerDep, settings: Annotated[Settings, Depends(get_settings_dep)]) -> dict[str, Any]:
    return {
        "service": "nlp-service",
        "version": __version__,
        "libraries": library_versions(),
        "models_dir": str(settings.models_dir),
        "models": sorted(manager.models),
        "load_seconds": manager.load_seconds,
        "limits": {k: getattr(settings, k) for k in
                   ("max_body_bytes", "max_words", "max_texts", "max_text_chars", "max_topn",
                    "max_beam_size")},
    }


@router.get("/v1/models", summary="Loaded models with their parameters and metrics")
def models(manager: ManagerDep) -> dict[str, Any]:
    return manager.describe()


@router.get("/v1/models/{name}", summary="One model's description")
def model(name: str, manager: ManagerDep) -> dict[str, Any]:
    if name not in manager.models:
        raise APIError(404, "model_not_found", f"no model named {name!r}",
                       {"available": sorted(manager.models), "load_error": manager.failed.get(name)})
    return manager.models[name].describe()
