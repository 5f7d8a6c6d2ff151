"""Translation endpoint. An ``async`` route that validates and awaits the model's micro-batching
worker: decoding runs in the worker's thread, batched across concurrent requests."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...config import Settings
from ...translate import InputTooLong, TranslationRequest, TranslatorModel
from ..deps import check_texts, resolve_model
from ..errors import APIError
from ..models import ModelManager
from ..schemas.translate import TranslateRequest, TranslateResponse

router = APIRouter(prefix="/v1", tags=["translation"])


def _pick(manager: ModelManager, settings: Settings, body: TranslateRequest) -> TranslatorModel:
    if body.model is not None:
        model: TranslatorModel = resolve_model(manager, "translator", body.model, None)
        for side, want, have in (("source", body.source, model.source_lang), ("target", body.target,
                                                                              model.target_lang)):
            if want is not None and want != have:
                raise APIError(422, "language_mismatch", f"model {model.name!r} translates "
                               f"{model.source_lang}->{model.target_lang}, not {side} {want!r}",
                               {"model": model.name, "source": model.source_lang, "target": model.target_lang})
        return model
    translators: dict[str, TranslatorModel] = manager.of_kind("translator")  # type: ignore[assignment]
    if not translators:
        raise APIError(503, "no_model", "no translator model is loaded", {"failed": manager.failed})
    matching = [m for m in translators.values()
                if (body.source in (None, m.source_lang)) and (body.target in (None, m.target_lang))]
    if not matching:
        pairs = sorted({f"{m.source_lang}->{m.target_lang}" for m in translators.values()})
        raise APIError(404, "no_translator_for_languages",
                       f"no translator for {body.source or '*'}->{body.target or '*'}; available: {', '.join(pairs)}",
                       {"source": body.source, "target": body.target, "available": pairs})
    preferred = settings.default_translator_model
    return next((m for m in matching if m.name == preferred), matching[0])


@router.post("/translate", response_model=TranslateResponse, summary="Translate texts (beam search or greedy)")
async def translate(body: TranslateRequest, request: Request) -> TranslateResponse:
    settings: Settings = request.app.state.settings
    manager: ModelManager = request.app.state.models
    model = _pick(manager, settings, body)
    check_texts(body.texts, settings)
    if body.beam_size > settings.max_beam_size:
        raise APIError(422, "limit_exceeded", f"beam_size {body.beam_size} is over the limit of "
                       f"{settings.max_beam_size}", {"limit": settings.max_beam_size, "setting": "NLP_MAX_BEAM_SIZE"})
    try:
        model.check_lengths(body.texts)
    except InputTooLong as exc:
        raise APIError(422, "limit_exceeded", f"{exc}; split long texts into sentences",
                       {"index": exc.index, "pieces": exc.pieces, "limit": exc.limit}) from None
    items = [TranslationRequest(text, body.beam_size, body.max_length, body.length_penalty) for text in body.texts]
    translations = await manager.batcher(model.name).submit(items)
    return TranslateResponse(model=model.name, source=model.source_lang, target=model.target_lang,
                             translations=translations)
