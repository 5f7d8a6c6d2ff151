"""Classification requests: the model, the request limits, and the model's micro-batcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..classify import ClassifierModel, Prediction
    from ..config import Settings
    from ._limits import Limits
    from ._manager import ModelManager


class Classification:
    def __init__(self, models: ModelManager, limits: Limits, settings: Settings) -> None:
        self.models, self.limits, self.settings = models, limits, settings

    def model(self, name: str | None, *, sentiment: bool = False) -> ClassifierModel:
        """The named classifier, else the default one (of ``/v1/sentiment`` when ``sentiment``)."""
        default = self.settings.default_sentiment_model if sentiment else self.settings.default_classifier_model
        return self.models.get("classifier", name, default)

    async def classify(self, model: ClassifierModel, texts: Sequence[str]) -> list[Prediction]:
        """Labels and probabilities, computed in a batch shared with concurrent requests."""
        self.limits.texts(texts)
        return await self.models.batcher(model.name).submit(list(texts))
