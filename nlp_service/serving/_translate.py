"""Translation requests: which translator (by name, or by languages), the limits, the micro-batcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import InvalidInput, NotFound, Unavailable
from ..translate import DecodeOptions, TranslationRequest

if TYPE_CHECKING:
    from ..config import Settings
    from ..translate import Translation as TranslationResult
    from ..translate import TranslatorModel
    from ._limits import Limits
    from ._manager import ModelManager


class Translation:
    def __init__(self, models: ModelManager, limits: Limits, settings: Settings) -> None:
        self.models, self.limits, self.settings = models, limits, settings

    def model(self, name: str | None = None, source: str | None = None, target: str | None = None) -> TranslatorModel:
        """The named translator (which must translate ``source``/``target`` when given); else one that
        translates the languages given: the default translator if it does, else the first loaded that does;
        with neither a name nor languages, the default translator (never another: it could translate other
        languages)."""
        if name is None and source is None and target is None:
            return self.models.get("translator", None, self.settings.default_translator_model)
        if name is not None:
            model: TranslatorModel = self.models.get("translator", name)
            for side, want, have in (("source", source, model.source_lang), ("target", target, model.target_lang)):
                if want is not None and want != have:
                    raise InvalidInput(f"model {model.name!r} translates {model.source_lang}->{model.target_lang}, "
                                       f"not {side} {want!r}", code="language_mismatch", model=model.name,
                                       source=model.source_lang, target=model.target_lang)
            return model
        translators: dict[str, TranslatorModel] = self.models.of_kind("translator")  # type: ignore[assignment]
        if not translators:
            raise Unavailable("no translator model is loaded", failed=self.models.failed)
        matching = [m for m in translators.values()
                    if source in (None, m.source_lang) and target in (None, m.target_lang)]
        if not matching:
            pairs = sorted({f"{m.source_lang}->{m.target_lang}" for m in translators.values()})
            raise NotFound(f"no translator for {source or '*'}->{target or '*'}; available: {', '.join(pairs)}",
                           code="no_translator_for_languages", source=source, target=target, available=pairs)
        preferred = self.settings.default_translator_model
        return next((m for m in matching if m.name == preferred), matching[0])

    async def translate(self, model: TranslatorModel, texts: Sequence[str], options: DecodeOptions) -> list[str]:
        """Translations in order, decoded in batches shared with concurrent requests."""
        return [t.text for t in await self.translate_attended(model, texts, options, attention=False)]

    async def translate_attended(self, model: TranslatorModel, texts: Sequence[str], options: DecodeOptions, *,
                                 attention: bool) -> list[TranslationResult]:
        """:meth:`translate`, with each translation's attention weights when ``attention`` (computed in the
        worker's thread too)."""
        if attention:
            model.check_attention()
        self.limits.texts(texts)
        self.limits.beam_size(options.beam_size)
        batcher = self.models.batcher(model.name)
        batcher.check_room(len(texts))  # before tokenizing: under overload, refusals must be cheap
        counts = model.check_lengths(texts)
        self.limits.translation_cost(sum(options.cost(n) for n in counts))
        return await batcher.submit([TranslationRequest(t, options, attention) for t in texts])
