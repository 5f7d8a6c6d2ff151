"""A typed HTTP client of the service: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), one method
an endpoint (the OpenAI-compatible routes are for the ``openai`` package), results as dataclasses, error answers
as exceptions (:class:`ServiceError`, also ``nlp_service.ModelNotFound``, ``LimitExceeded``, ... by kind).

It needs httpx only: importing it loads neither the server (FastAPI) nor the models (torch, gensim, spaCy).
"""

from ._async import AsyncClient
from ._errors import AuthenticationError, ServiceError
from ._sync import Client
from ._types import (
    Analogy,
    BestOfSequence,
    Classification,
    ClassResult,
    FailedModel,
    Generation,
    GenerationDetails,
    ModelInfo,
    ModelList,
    Neighbor,
    Neighbors,
    Readiness,
    ServiceInfo,
    Similarity,
    StreamEvent,
    TextVector,
    TextVectors,
    Token,
    Translations,
    WordVector,
    WordVectors,
)

__all__ = [
    "Analogy",
    "AsyncClient",
    "AuthenticationError",
    "BestOfSequence",
    "ClassResult",
    "Classification",
    "Client",
    "FailedModel",
    "Generation",
    "GenerationDetails",
    "ModelInfo",
    "ModelList",
    "Neighbor",
    "Neighbors",
    "Readiness",
    "ServiceError",
    "ServiceInfo",
    "Similarity",
    "StreamEvent",
    "TextVector",
    "TextVectors",
    "Token",
    "Translations",
    "WordVector",
    "WordVectors",
]
