"""Text embeddings in OpenAI's shape (``POST /v1/embeddings``), from a vectors model: the official ``openai``
client and the libraries built on it (LangChain's ``OpenAIEmbeddings``...) work against the service. A plain
``def``: FastAPI runs it in its thread pool, so the vector sums never block the event loop."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import VectorsDep
from ..errors import MODEL_QUERY, error_responses
from ..protocols.openai import embeddings as openai

router = APIRouter(prefix="/v1", tags=["vectors"], responses=error_responses(*MODEL_QUERY))


@router.post(
    "/embeddings", response_model=openai.EmbeddingResponse, summary="OpenAI-compatible embeddings of texts",
    description="One vector per text of `input` (a string or a list of strings), from a vectors model (`model`; the "
    "default one if omitted): the mean of its token vectors, exactly as `POST /v1/embeddings/texts` computes it, with "
    "the same limits (NLP_MAX_TEXTS texts of at most NLP_MAX_TEXT_CHARS characters). Vectors are not unit-length "
    "unless `normalize` (an extension) is set. A text none of whose tokens the model knows gets a **zero vector** "
    "(OpenAI's shape has no null; `/v1/embeddings/texts` answers `vector: null` and lists the unknown tokens). "
    "`encoding_format: base64` gives the little-endian float32 bytes, base64-encoded. `dimensions` is refused (422) "
    "unless it is the model's own. Token-id inputs are refused (422): only text is supported. "
    "`usage.prompt_tokens` counts the tokens as the model's tokenizer splits the texts.")
def embeddings(body: openai.EmbeddingRequest, vectors: VectorsDep) -> openai.EmbeddingResponse:
    model = vectors.model(body.model)
    openai.check_dimensions(body, model.name, model.store.dim)
    found = vectors.text_vectors(model, body.texts, normalized=body.normalize)
    return openai.embedding_response(body, model.name, model.store.dim, found)
