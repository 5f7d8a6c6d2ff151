"""Word-vector queries: the model a request names (or the default one), the request limits, the search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings
    from ..vectors import Neighbor, Source, VectorsModel
    from ._limits import Limits
    from ._manager import ModelManager

TextVector = tuple[np.ndarray | None, list[str], list[str]]  # vector (None: no token has one), tokens, unknown


class VectorQueries:
    def __init__(self, models: ModelManager, limits: Limits, settings: Settings) -> None:
        self.models, self.limits, self.settings = models, limits, settings

    def model(self, name: str | None) -> VectorsModel:
        return self.models.get("vectors", name, self.settings.default_vectors_model)

    def neighbors(self, model: VectorsModel, *, word: str | None = None, vector: Sequence[float] | None = None,
                  positive: Sequence[str] = (), negative: Sequence[str] = (), topn: int = 10,
                  approximate: bool = False) -> list[Neighbor]:
        """Neighbours of one word, one vector, or the mean of positive minus negative words."""
        self.limits.topn(topn)
        query: list[str | Sequence[float]] = [vector] if vector is not None else [word] if word is not None \
            else list(positive)
        self.limits.words(sum(isinstance(q, str) for q in query) + len(negative))
        # The search breadth is at least topn: fewer candidates could not fill the answer.
        return model.neighbors(query, negative, topn=topn, approximate=approximate,
                               ef=max(self.settings.ann_ef_search, topn))

    def analogy(self, model: VectorsModel, a: str, b: str, c: str, *, topn: int,
                method: Literal["3cosadd", "3cosmul"]) -> list[Neighbor]:
        self.limits.topn(topn)
        return model.analogy(a, b, c, topn=topn, method=method)

    def word_vectors(self, model: VectorsModel, words: Sequence[str], *, normalized: bool
                     ) -> list[tuple[np.ndarray, Source]]:
        self.limits.words(len(words))
        return model.word_vectors(words, normalized=normalized)

    def text_vectors(self, model: VectorsModel, texts: Sequence[str], *, normalized: bool) -> list[TextVector]:
        self.limits.texts(texts)
        return model.text_vectors(texts, normalized=normalized)
