"""The serving layer on its own, without HTTP: what a batch job or another front end would use."""

from __future__ import annotations

import asyncio

import pytest

from nlp_service.config import Settings
from nlp_service.errors import InvalidInput, LimitExceeded, ModelNotFound, NotFound, Unavailable
from nlp_service.serving import Service
from nlp_service.translate import DecodeOptions

from .helpers import modules_loaded_by


def test_importing_the_serving_layer_loads_no_web_framework() -> None:
    assert modules_loaded_by("import nlp_service.serving", ["fastapi", "starlette", "uvicorn"]) == []


def test_a_service_answers_each_capability(settings: Settings) -> None:
    async def scenario() -> None:
        service = Service(settings)
        service.start()
        try:
            assert service.wait_until_ready(300)
            vectors = service.vectors.model(None)
            assert vectors.name == settings.default_vectors_model
            found = service.vectors.neighbors(vectors, word="rey", topn=3)
            assert len(found) == 3 and all(n.word != "rey" for n in found)
            with pytest.raises(LimitExceeded) as limit:
                service.vectors.neighbors(vectors, word="rey", topn=settings.max_topn + 1)
            assert limit.value.details == {"limit": settings.max_topn, "got": settings.max_topn + 1,
                                           "setting": "NLP_MAX_TOPN"}

            sentiment = service.classification.model(None, sentiment=True)
            assert sentiment.name == settings.default_sentiment_model
            texts = ["Una película preciosa.", "Aburrida."]
            predictions = await service.classification.classify(sentiment, texts)
            assert [p.label for p in predictions] == [p.label for p in sentiment.predict(texts)]
            with pytest.raises(InvalidInput) as empty:
                await service.classification.classify(sentiment, ["bien", " "])
            assert empty.value.code == "empty_text" and empty.value.details == {"index": 1}

            translator = service.translation.model(None, source="es", target="en")
            options = DecodeOptions(beam_size=2)
            out = await service.translation.translate(translator, ["Guardar como"], options)
            assert out == translator.translate(["Guardar como"], beam_size=2)
            with pytest.raises(NotFound) as nowhere:
                service.translation.model(None, source="es", target="fr")
            assert nowhere.value.code == "no_translator_for_languages"
            with pytest.raises(LimitExceeded, match="beam_size 9 is over the limit of 8"):
                await service.translation.translate(translator, ["Guardar"], DecodeOptions(beam_size=9))

            with pytest.raises(ModelNotFound) as missing:
                service.vectors.model("nope")
            assert missing.value.details["available"] == ["ft-lee", "w2v-small"]
            with pytest.raises(Unavailable, match="no generator model is loaded"):
                service.generation.model(None)
            assert service.models.describe_model(sentiment.name)["batching"]["items"] >= 2
        finally:
            await service.close()

    asyncio.run(scenario())
