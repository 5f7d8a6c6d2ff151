"""Text generation with GPT-2 models: our own decode engine (static KV cache, continuous batching).

Importing this package loads torch only: never gensim or spaCy (start-up time, and GPU hosts that
carry only what generation needs).
"""

from ._engine import GPT2Engine, Request, StepEvent
from ._model import KIND, GeneratorModel, import_generator, load_pretrained, save_generator
from ._sampling import SamplingParams
from ._train import GPT2TrainParams, train_gpt2

__all__ = [
    "KIND",
    "GPT2Engine",
    "GPT2TrainParams",
    "GeneratorModel",
    "Request",
    "SamplingParams",
    "StepEvent",
    "import_generator",
    "load_pretrained",
    "save_generator",
    "train_gpt2",
]
