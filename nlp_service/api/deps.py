"""What routes receive through ``Depends``: the parts of the service the application holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from ..config import Settings
from ..serving import Classification, Generations, Limits, ModelManager, Service, Translation, VectorQueries


def get_service(request: Request) -> Service:
    return request.app.state.service


def _part(name: str) -> Callable[[Request], Any]:
    """A dependency giving ``service.<name>``."""

    def part(request: Request) -> Any:
        return getattr(get_service(request), name)

    part.__name__ = f"get_{name}"
    return part


SettingsDep = Annotated[Settings, Depends(_part("settings"))]
ModelsDep = Annotated[ModelManager, Depends(_part("models"))]
LimitsDep = Annotated[Limits, Depends(_part("limits"))]
VectorsDep = Annotated[VectorQueries, Depends(_part("vectors"))]
ClassificationDep = Annotated[Classification, Depends(_part("classification"))]
TranslationDep = Annotated[Translation, Depends(_part("translation"))]
GenerationDep = Annotated[Generations, Depends(_part("generation"))]
