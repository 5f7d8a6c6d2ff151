"""Text generation with GPT-2 models: our own decode engine (static KV cache, continuous batching,
CUDA graphs), training and fine-tuning, and the ``generator`` model kind.

Importing this package loads neither gensim nor spaCy (start-up time, and GPU hosts that carry only
what generation needs); torch loads when a name that needs it is first used.
"""

from .._lazy import lazy_attributes
from ._params import MAX_LOGPROBS, GPT2Run, GPT2TrainParams, SamplingParams, first_stop
from ._pipeline import GPT2_TRAINER, SAMPLE_PROMPTS, build_gpt2, sample_texts

__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(("GPT2Engine", "Request", "StepEvent"), "._engine"),
    **dict.fromkeys(("KIND", "GeneratorModel", "generator_manifest", "import_generator", "load_pretrained",
                     "resolve_dtype", "save_generator"), "._model"),
    **dict.fromkeys(("GPT2TrainResult", "lr_at", "pack", "perplexity", "train_byte_bpe", "train_gpt2"), "._train"),
    **dict.fromkeys(("filter_top_k_top_p", "sample_rows", "seeded_uniform"), "._sampling"),
})

__all__ = [
    "GPT2_TRAINER",
    "KIND",
    "MAX_LOGPROBS",
    "SAMPLE_PROMPTS",
    "GPT2Engine",
    "GPT2Run",
    "GPT2TrainParams",
    "GPT2TrainResult",
    "GeneratorModel",
    "Request",
    "SamplingParams",
    "StepEvent",
    "build_gpt2",
    "filter_top_k_top_p",
    "first_stop",
    "generator_manifest",
    "import_generator",
    "load_pretrained",
    "lr_at",
    "pack",
    "perplexity",
    "resolve_dtype",
    "sample_rows",
    "sample_texts",
    "save_generator",
    "seeded_uniform",
    "train_byte_bpe",
    "train_gpt2",
]
