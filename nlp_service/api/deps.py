"""What routes receive through ``Depends``: the service's parts, found on the application."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..serving import Classification, Generations, Limits, ModelManager, Service, Translation, VectorQueries


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_settings(service: ServiceDep) -> Settings:
    return service.settings


def get_models(service: ServiceDep) -> ModelManager:
    return service.models


def get_limits(service: ServiceDep) -> Limits:
    return service.limits


def get_vectors(service: ServiceDep) -> VectorQueries:
    return service.vectors


def get_classification(service: ServiceDep) -> Classification:
    return service.classification


def get_translation(service: ServiceDep) -> Translation:
    return service.translation


def get_generation(service: ServiceDep) -> Generations:
    return service.generation


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelsDep = Annotated[ModelManager, Depends(get_models)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
VectorsDep = Annotated[VectorQueries, Depends(get_vectors)]
ClassificationDep = Annotated[Classification, Depends(get_classification)]
TranslationDep = Annotated[Translation, Depends(get_translation)]
GenerationDep = Annotated[Generations, Depends(get_generation)]
