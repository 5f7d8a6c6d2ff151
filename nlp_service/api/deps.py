"""Dependencies shared by the routers: settings, the model manager, model lookup."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ..config import Settings
from .errors import APIError
from .models import ModelManager


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_manager(request: Request) -> ModelManager:
    return request.app.state.models


def resolve_model(manager: ModelManager, kind: str, name: str | None, default: str | None) -> Any:
    """The named model of ``kind``, or the default one; 404 naming what exists otherwise."""
    candidates = manager.of_kind(kind)
    if name is None:
        if default and default in candidates:
            return candidates[default]
        if not candidates:
            raise APIError(503, "no_model", f"no {kind} model is loaded", {"failed": manager.failed})
        return next(iter(candidates.values()))
    model = candidates.get(name)
    if model is None:
        detail: dict[str, Any] = {"model": name, "available": sorted(candidates)}
        if name in manager.failed:
            detail["load_error"] = manager.failed[name]
        raise APIError(404, "model_not_found", f"no {kind} model named {name!r}", detail)
    return model


def check_texts(texts: list[str], settings: Settings) -> None:
    """422 for too many texts, a text over the length limit, or an empty one (the first found)."""
    if len(texts) > settings.max_texts:
        raise APIError(422, "limit_exceeded", f"too many texts: {len(texts)} (at most {settings.max_texts})",
                       {"limit": settings.max_texts, "got": len(texts), "setting": "NLP_MAX_TEXTS"})
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            raise APIError(422, "limit_exceeded", f"texts[{i}] has {len(text)} characters "
                           f"(at most {settings.max_text_chars})",
                           {"index": i, "limit": settings.max_text_chars, "setting": "NLP_MAX_TEXT_CHARS"})
        if not text.strip():
            raise APIError(422, "empty_text", f"texts[{i}] is empty or only whitespace", {"index": i})
