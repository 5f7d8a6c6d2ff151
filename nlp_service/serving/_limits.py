"""The service's request limits (``NLP_MAX_*`` settings), each checked here and nowhere else.

Every violation is one :class:`~nlp_service.errors.LimitExceeded` with the same details: ``limit``,
``got``, ``setting`` (the environment variable to change), and ``index`` for a limit on one text.
Limits that depend on a model (a translator's subword pieces, a generator's positions) are checked
by the model or its worker, with the same error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, LimitExceeded, Overloaded

if TYPE_CHECKING:
    from ..config import Settings


class QueueFull(Overloaded):
    """A worker's queue is at its limit (a model's waiting texts, or generations running and waiting):
    try again shortly (429 with Retry-After)."""


class Limits:
    def __init__(self, settings: Settings) -> None:
        self.max_words = settings.max_words
        self.max_texts = settings.max_texts
        self.max_text_chars = settings.max_text_chars
        self.max_topn = settings.max_topn
        self.max_beam_size = settings.max_beam_size
        self.max_body_bytes = settings.max_body_bytes
        self.translation_max_cost = settings.translation_max_cost

    def describe(self) -> dict[str, Any]:
        return {"max_body_bytes": self.max_body_bytes, "max_words": self.max_words, "max_texts": self.max_texts,
                "max_text_chars": self.max_text_chars, "max_topn": self.max_topn,
                "max_beam_size": self.max_beam_size, "translation_max_cost": self.translation_max_cost}

    def texts(self, texts: Sequence[str]) -> None:
        """At most ``max_texts`` texts, each of at most ``max_text_chars`` characters and not blank."""
        _most(len(texts), self.max_texts, "texts", "NLP_MAX_TEXTS")
        for i, text in enumerate(texts):
            if len(text) > self.max_text_chars:
                raise LimitExceeded(f"texts[{i}] has {len(text)} characters (at most {self.max_text_chars})",
                                    limit=self.max_text_chars, got=len(text), setting="NLP_MAX_TEXT_CHARS", index=i)
            if not text.strip():
                raise InvalidInput(f"texts[{i}] is empty or only whitespace", code="empty_text", index=i)

    def words(self, count: int) -> None:
        _most(count, self.max_words, "words", "NLP_MAX_WORDS")

    def topn(self, topn: int) -> None:
        _over(topn, self.max_topn, "topn", "NLP_MAX_TOPN")

    def beam_size(self, beam_size: int) -> None:
        _over(beam_size, self.max_beam_size, "beam_size", "NLP_MAX_BEAM_SIZE")

    def explain_tokens(self, count: int) -> None:
        """An explained classification: each token of each text costs one more prediction, so the tokens
        of all its texts count as the request's words."""
        if count > self.max_words:
            raise LimitExceeded(f"explaining these texts means predicting {count} variants, one per token (at most "
                                f"{self.max_words} tokens in all): send fewer or shorter texts",
                                limit=self.max_words, got=count, setting="NLP_MAX_WORDS")

    def translation_cost(self, cost: int) -> None:
        """A translation request's decoding work: texts x beam_size x max_length, summed over its texts."""
        if cost > self.translation_max_cost:
            raise LimitExceeded(f"this request asks for {cost} units of decoding work (texts x beam_size x "
                                f"max_length, summed; at most {self.translation_max_cost}): send fewer texts, a "
                                "smaller beam_size or max_length", limit=self.translation_max_cost, got=cost,
                                setting="NLP_TRANSLATION_MAX_COST")


def _most(count: int, limit: int, what: str, setting: str) -> None:
    if count > limit:
        raise LimitExceeded(f"too many {what}: {count} (at most {limit})", limit=limit, got=count, setting=setting)


def _over(value: int, limit: int, what: str, setting: str) -> None:
    if value > limit:
        raise LimitExceeded(f"{what} {value} is over the limit of {limit}", limit=limit, got=value, setting=setting)
