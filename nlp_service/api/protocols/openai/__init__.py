"""OpenAI's shapes, a module per endpoint as in OpenAI's API: ``completions`` (``/v1/completions``), ``chat``
(``/v1/chat/completions``), ``embeddings`` (``/v1/embeddings``); the request fields every generation endpoint
shares, and how they become sampling parameters, in ``_common``."""

from . import chat, completions, embeddings
from ._common import (
    FINISH_REASONS,
    MAX_CHOICES,
    SamplingFields,
    StreamOptions,
    Usage,
    new_id,
    sampling_params,
    unsupported,
)

__all__ = ["FINISH_REASONS", "MAX_CHOICES", "SamplingFields", "StreamOptions", "Usage", "chat", "completions",
           "embeddings", "new_id", "sampling_params", "unsupported"]
