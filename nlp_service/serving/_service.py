"""Everything the service does, without HTTP: the models and their workers, the limits, and one object
per capability. The HTTP API (``nlp_service.api``) only translates to and from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._classify import Classification
from ._generation import Generations
from ._limits import Limits
from ._manager import ModelManager
from ._translate import Translation
from ._vectors import VectorQueries

if TYPE_CHECKING:
    from ..config import Settings


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models = ModelManager(settings)
        self.limits = Limits(settings)
        self.vectors = VectorQueries(self.models, self.limits, settings)
        self.classification = Classification(self.models, self.limits, settings)
        self.translation = Translation(self.models, self.limits, settings)
        self.generation = Generations(self.models, settings)

    def start(self) -> None:
        """Load the configured models and start their workers."""
        self.models.load_all()

    async def close(self) -> None:
        await self.models.close()
