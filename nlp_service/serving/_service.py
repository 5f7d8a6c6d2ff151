"""Everything the service does, without HTTP: the models and their workers, the limits, and one object
per capability. The HTTP API (``nlp_service.api``) only translates to and from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._classify import Classification
from ._generation import Generations
from ._limits import Limits
from ._manager import ModelBuilds, ModelManager
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

    def build_in_background(self, builds: ModelBuilds) -> None:
        """Serve the models ``builds`` makes (the missing default models, on a first start) as each is built,
        without a restart; until then their requests answer 503 ``model_building``. Call before
        :meth:`start`, which starts the builds."""
        self.models.build_in_background(builds)

    def start(self) -> None:
        """Start loading the configured models (and their workers) in a background thread and return at
        once: a server opens its port meanwhile, its /ready says 503 "loading" until every model is tried.
        It first removes the temporary folders that killed saves left in the models folder."""
        self.models.start()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until every configured model has been tried (loaded or failed); False on timeout.
        For callers that need the models before they go on (tests, batch jobs)."""
        return self.models.wait_until_ready(timeout)

    async def close(self) -> None:
        await self.models.close()
