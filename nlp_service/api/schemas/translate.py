"""Request and response bodies of the translation endpoint."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ...options import bounds, default_of
from ...translate import DecodeOptions
from ._base import RequestBody


class TranslateRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"texts": ["Pulse el icono para más información.", "Y dijo Dios: Sea la luz."],
                      "source": "es", "target": "en", "beam_size": 5}]})

    texts: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        min_length=1, description="Texts to translate (at most NLP_MAX_TEXTS).")
    source: str | None = Field(None, description="Source language code; with `target`, picks the model.",
                               examples=["es"])
    target: str | None = Field(None, description="Target language code.", examples=["en"])
    model: str | None = Field(None, description="Translator name (GET /v1/models); overrides source/target.")
    # Defaults and bounds are the library's DecodeOptions': the schema checks them first, so that a bad
    # value is answered as a field error in the request.
    beam_size: int = Field(default_of(DecodeOptions, "beam_size"), **bounds(DecodeOptions, "beam_size"),
                           description="Beam width; 1 is greedy decoding (at most NLP_MAX_BEAM_SIZE).")
    max_length: int | None = Field(None, **bounds(DecodeOptions, "max_length"),
                                   description="Most subword pieces per translation (default: 2 x source + 10).")
    length_penalty: float = Field(default_of(DecodeOptions, "length_penalty"),
                                  **bounds(DecodeOptions, "length_penalty"),
                                  description="Beam search length normalisation (GNMT alpha); 0 favours short output.")
    return_attention: bool = Field(
        False, description="Also return each translation's attention matrix (`attention`): seq2seq translators "
        "only; a Marian model answers 422 attention_not_supported.")


class Attention(BaseModel):
    source_tokens: list[str] = Field(description="The text's subword pieces (`▁` marks a space before a piece), "
                                     "ending with `</s>`.")
    target_tokens: list[str] = Field(description="The translation's pieces, ending with `</s>` unless the "
                                     "translation was cut at its length limit.")
    weights: list[list[float]] = Field(description="`weights[t][s]`: attention of target piece t on source piece "
                                       "s; one row per target piece, each summing to 1.")


class TranslateResponse(BaseModel):
    model: str
    source: str
    target: str
    translations: list[str]
    attention: list[Attention] | None = Field(
        None, description="Only with `return_attention`: one matrix per text, in order, for the translation "
        "returned (the chosen beam's).")
