"""The serving layer, which knows nothing of HTTP: the models a service holds (:class:`ModelManager`)
and their workers (:class:`MicroBatcher`, :class:`GenerationWorker`), the request limits
(:class:`Limits`), and one object per capability, gathered in :class:`Service`.
"""

from ._batching import BatchStats, MicroBatcher
from ._classify import Classification
from ._generation import (
    Detokenizer,
    Generation,
    GenerationFailed,
    Generations,
    GenerationWorker,
    Piece,
    PromptTooLong,
    TokenLogprob,
    UnknownTokens,
    first_stop,
)
from ._limits import Limits, QueueFull
from ._manager import ModelManager
from ._service import Service
from ._translate import Translation
from ._vectors import VectorQueries

__all__ = [
    "BatchStats",
    "Classification",
    "Detokenizer",
    "Generation",
    "GenerationFailed",
    "GenerationWorker",
    "Generations",
    "Limits",
    "MicroBatcher",
    "ModelManager",
    "Piece",
    "PromptTooLong",
    "QueueFull",
    "Service",
    "TokenLogprob",
    "Translation",
    "UnknownTokens",
    "VectorQueries",
    "first_stop",
]
