"""Text generation with GPT-2 models: our own decode engine (static KV cache, continuous batching).

Importing this package loads torch only: never gensim or spaCy (start-up time, and GPU hosts that
carry only what generation needs).
"""

from ._engine import GPT2Engine, Request, StepEvent
from ._sampling import SamplingParams

__all__ = ["GPT2Engine", "Request", "SamplingParams", "StepEvent"]
