"""Service and toolkit settings: one pydantic-settings class, environment prefix ``NLP_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
# How the default models are built (nlp_service.defaults): each profile but demo has config files of its own.
DefaultsProfile = Literal["demo", "pretrained"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "nlp-service"


class Settings(BaseSettings):
    """Every knob of the toolkit and the service.

    Each field can be set from the environment as ``NLP_<FIELD>`` (for example
    ``NLP_MODELS_DIR=/srv/models``) or from a ``.env`` file in the working directory.
    """

    model_config = SettingsConfigDict(env_prefix="NLP_", env_file=".env", extra="ignore")

    models_dir: Path = Field(Path("models"), description="Folder holding one sub-folder per named model.")
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloads and tokenized-corpus caches.",
    )
    models: list[str] | None = Field(
        None,
        description="Names of the models to load at start-up (JSON list); default: every model in models_dir.",
    )
    # The default model of each kind: the name `nlp-service defaults` builds it under, and the model a
    # request (or `nlp-service translate/generate`) uses when it names none. When that model is not
    # loaded, such a request gets 503: never another model (it could be another language's).
    default_vectors_model: str = Field("w2v-es", description="Vectors model used when a request names none.")
    default_classifier_model: str = Field("bow-es", description="Model of /v1/classify when a request names none.")
    default_sentiment_model: str = Field("sentiment-es", description="Model of /v1/sentiment when a request names "
                                         "none.")
    default_translator_model: str = Field(
        "translate-es-en", description="Translator used when a request names no model and it translates the "
        "request's languages.")
    default_generator_model: str = Field("gpt2-es", description="Generator used when a request names none.")
    defaults: DefaultsProfile = Field(
        "demo", description="What the missing default models are built from: demo (the shipped data) or pretrained "
        "(Hugging Face Hub models where there are; the demo when the Hub cannot be reached).")
    device: Device = Field("auto", description="Where tensor models run.")
    batch_max_size: int = Field(64, description="Micro-batching: most texts in one forward pass.")
    batch_max_wait_ms: float = Field(5.0, description="Micro-batching: longest wait for a batch to fill (ms).")
    batch_workers: int = Field(
        1, ge=1, description="Micro-batching: batches a model runs at once, each on a thread of its own (on a "
        "CPU, with torch_threads 1, more than one uses more cores for small models).")
    torch_threads: int | None = Field(
        None, ge=1, description="Threads a forward pass uses on the CPU (torch's intra-op threads); unset: "
        "torch's default, one a core.")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1, description="Server processes (`serve --workers`).")
    log_level: str = "info"

    # Request limits: anything over them is a 4xx that says which limit was hit.
    max_body_bytes: int = Field(1_000_000, description="Largest request body accepted (bytes).")
    max_words: int = Field(1_000, description="Most words in one request (lists, analogies, embeddings; the tokens "
                           "of all the texts of a classification with `explain`).")
    max_texts: int = Field(256, description="Most texts in one request.")
    max_text_chars: int = Field(20_000, description="Longest text accepted (characters).")
    max_topn: int = Field(1_000, description="Largest topn for neighbour queries.")
    max_beam_size: int = Field(8, description="Largest beam width of a translation request.")

    generation_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weights of generation models: auto is float16 on CUDA, float32 on CPU."
    )
    generation_max_batch: int = Field(64, ge=1, description="Generation: requests decoded together (engine slots).")
    generation_max_queue: int = Field(256, ge=0, description="Generation: requests waiting for a slot; beyond: 429.")
    generation_max_input_tokens: int = Field(1024, ge=1, description="Generation: longest prompt (tokens).")
    generation_max_total_tokens: int = Field(2048, ge=2, description="Generation: prompt + new tokens, at most.")

    generation_max_stop_sequences: int = Field(8, ge=0, description="Generation: most stop sequences in a request.")
    generation_max_stop_chars: int = Field(256, ge=1, description="Generation: longest stop sequence (characters).")
    translation_max_cost: int = Field(
        32_768, ge=1, description="Translation: most decoding work in one request, as texts x beam_size x "
        "max_length summed over its texts (measured on 2 cores: about 6,500 units a second).")
    batch_max_queue: int = Field(
        1_024, ge=1, description="Micro-batched models (classifiers, translators): most texts waiting per model; "
        "beyond: 429.")

    # Operation: timeouts, access, observability.
    request_timeout_s: float = Field(
        60.0, gt=0, description="Longest a request may take, streams included; its work is then cancelled (504).")
    read_timeout_s: float = Field(
        30.0, gt=0, description="Longest a client may take to send a request's headers and body; then the "
        "connection is closed.")
    keep_alive_s: int = Field(5, ge=1, description="Idle keep-alive connections are closed after this long.")
    api_keys: str | None = Field(
        None, description="Comma-separated API keys: when set (or api_keys_file), every route but /health and "
        "/ready needs `Authorization: Bearer <key>`.")
    api_keys_file: Path | None = Field(
        None, description="File of accepted keys' SHA-256 hex digests, one per line, each optionally followed "
        "by a label (`nlp-service hash-key` prints such a line).")
    rate_limit_per_minute: int | None = Field(
        None, ge=1, description="Requests a minute per API key (per client address without keys); beyond: 429.")
    cors_origins: str | None = Field(
        None, description="Comma-separated origins allowed by CORS (`*` for any); unset: CORS is off.")
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as JSON objects.")
    verify_checksums: bool = Field(
        True, description="Check every model file against its manifest's SHA-256 at load (off: faster start "
        "for very large models).")

    ann_ef_search: int = Field(64, description="HNSW ef at query time (higher: better recall, slower).")
    blas_threads: int = Field(
        1, description="BLAS threads per request: requests already run in parallel, and more threads each "
        "oversubscribe the cores (measured: 20 vs 340 neighbour requests/s on 2 cores).",
    )
    preload_ann: bool = Field(
        True, description="Load approximate-search indexes in the background at start-up (else on first use)."
    )


def device_for(device: str | None, settings: Settings | None) -> str:
    """The device asked for, else the settings' (``NLP_DEVICE``), else ``auto``."""
    return device or (settings.device if settings is not None else "auto")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
