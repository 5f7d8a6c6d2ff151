"""Translation endpoint. An ``async`` route that awaits the model's micro-batching worker: decoding runs
in the worker's thread, batched across concurrent requests."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ...translate import DecodeOptions
from ..deps import TranslationDep
from ..errors import MODEL_QUERY, error_responses
from ..schemas.translate import Attention, TranslateRequest, TranslateResponse

router = APIRouter(prefix="/v1", tags=["translation"], responses=error_responses(*MODEL_QUERY))


# ``attention`` is absent (not null) unless asked for.
@router.post("/translate", response_model=TranslateResponse, response_model_exclude_none=True,
             summary="Translate texts (beam search or greedy)")
async def translate(body: TranslateRequest, translation: TranslationDep) -> TranslateResponse:
    model = translation.model(body.model, body.source, body.target)
    options = DecodeOptions(beam_size=body.beam_size, max_length=body.max_length, length_penalty=body.length_penalty)
    translations = await translation.translate_attended(model, body.texts, options, attention=body.return_attention)
    attention = ([Attention(**asdict(t.attention)) for t in translations if t.attention is not None]
                 if body.return_attention else None)
    return TranslateResponse(model=model.name, source=model.source_lang, target=model.target_lang,
                             translations=[t.text for t in translations], attention=attention)
