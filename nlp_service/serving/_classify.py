"""Classification requests: the model, the request limits, and the model's micro-batcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..classify import activation_inputs, activation_scores, occlusion_inputs, occlusion_scores
from ..errors import InvalidInput

if TYPE_CHECKING:
    from ..classify import ClassifierModel, Prediction, TokenScore
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

    async def explain(self, model: ClassifierModel, texts: Sequence[str], method: str = "occlusion"
                      ) -> list[tuple[Prediction, list[TokenScore]]]:
        """Labels and probabilities with each token's score (:mod:`nlp_service.classify._explain`).
        ``occlusion``: every text and all its one-token-removed variants go to the micro-batcher as one
        request, so they share a forward pass in its worker thread. ``cam`` (convolutional models): one
        class-activation item per text, through the same micro-batcher."""
        self.limits.texts(texts)
        if method == "cam" and not model.has_class_activation:
            raise InvalidInput(f"explain_method 'cam' needs a convolutional classifier (trained with --cell cnn); "
                               f"{model.name!r} is not one: use 'occlusion'")
        batcher = self.models.batcher(model.name)
        batcher.check_room(len(texts))  # before tokenizing: under overload, refusals must be cheap
        spans = [model.tokenizer.spans(text) for text in texts]
        if method == "cam":
            answers = await batcher.submit(activation_inputs(spans))
            return [activation_scores(s, p) for s, p in zip(spans, answers, strict=True)]
        self.limits.explain_tokens(sum(len(s) for s in spans))
        inputs = [occlusion_inputs([token for token, _, _ in s]) for s in spans]
        predictions = await batcher.submit([item for group in inputs for item in group])
        out, offset = [], 0
        for text_spans, group in zip(spans, inputs, strict=True):
            out.append(occlusion_scores(text_spans, predictions[offset : offset + len(group)]))
            offset += len(group)
        return out
