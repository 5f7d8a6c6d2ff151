"""The options of generation: GPT-2 training runs (corpus, output), their hyper-parameters, and how one
request picks its tokens.

Declared once, as :func:`~nlp_service.options.option` fields: ``nlp-service train gpt2``,
``nlp-service generate`` and config files are derived from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Device
from ..options import check, fingerprint, option
from ..training import clip_norm_option, device_option, max_minutes_option, name_option, overwrite_option

MAX_LOGPROBS = 20  # likeliest alternatives reported per token, at most


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its next tokens. ``do_sample=False`` is greedy decoding."""

    max_new_tokens: int = option(50, "Most tokens to generate.", min=1)
    do_sample: bool = option(False, "Sample instead of greedy decoding.", flag="--sample")
    temperature: float = option(1.0, "Sampling temperature.", above=0)
    top_k: int = option(0, "Sample among the k most likely tokens (0: all).", min=0)
    top_p: float = option(1.0, "Nucleus sampling: the smallest set of tokens with this much probability (1: all).",
                          above=0, max=1)
    # Beyond these bounds a penalty only overflows the logits (inf, then NaN probabilities).
    repetition_penalty: float = option(1.0, "transformers' repetition penalty (CTRL paper; 1: none).", min=0.01,
                                       max=100)
    # 64 bits, as TGI's seed (u64): the engine keeps the bit pattern in a signed 64-bit tensor.
    seed: int | None = option(None, "Sampling seed: the same seed gives the same text.", min=0, max=2**64 - 1)
    typical_p: float = option(1.0, "Typical decoding (Meister et al.): sample among the tokens closest to the "
                              "expected information, this much probability of them (1: off).", above=0, max=1)
    # OpenAI's: a token's logit minus frequency_penalty x its count in the output so far, minus presence_penalty
    # if it is there at all (TGI's frequency_penalty is the first).
    frequency_penalty: float = option(0.0, "Penalty a generated token's logit takes per time it was generated "
                                      "(OpenAI's; 0: none).", min=-2, max=2)
    presence_penalty: float = option(0.0, "Penalty a generated token's logit takes once it was generated (OpenAI's; "
                                     "0: none).", min=-2, max=2)
    # API-only (no command-line flag): (token id, bias) pairs added to the logits at every step (OpenAI's
    # logit_bias; -100 bans a token); log-probabilities in the output: of each generated token and of its
    # `logprobs` likeliest alternatives (None: none), of each prompt token given those before it.
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: int | None = None
    prompt_logprobs: bool = False
    # Applied by the caller that detokenizes (the serving worker), not by the engine.
    stop: tuple[str, ...] = option((), "Stop sequence: the text ends before it (repeat for several).")
    ignore_eos: bool = option(False, "Keep generating past the end-of-text token.")

    def validate(self) -> None:
        check(self)
        for token, bias in self.logit_bias:
            if token < 0 or not -100 <= bias <= 100:
                raise ValueError(f"logit_bias: token {token} with bias {bias}: ids are >= 0, biases in [-100, 100]")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise ValueError(f"logprobs must be in [0, {MAX_LOGPROBS}]")


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Start of the earliest stop sequence in ``text`` (the text is cut there), or None; an empty stop
    sequence stops nothing."""
    found = [i for i in (text.find(stop) for stop in stops if stop) if i >= 0]
    return min(found) if found else None


@dataclass(kw_only=True)
class GPT2Run:
    """The corpus, the held-out split, the starting checkpoint and where the model goes."""

    corpus: list[Path] | None = option(
        None, "Text files (.txt one text per line, .jsonl/.csv/.tsv with --column; .gz/.bz2 ok).", argument=True,
        default_help="the shipped Spanish corpus")
    name: str | None = name_option(None, default_help="NLP_DEFAULT_GENERATOR_MODEL")
    column: str | None = option(None, "Text column/field of CSV, TSV or JSONL files.")
    # A folder or a hub name, so not a path option: a relative folder is taken from the working directory.
    init: str | None = option(
        None, "Fine-tune this checkpoint (a save_pretrained folder, a generator model folder's hf/, or a hub name "
        "with internet) instead of training from scratch; its tokenizer and size are kept.")
    validation: float = option(0.02, "Held-out share of the texts.", min=0.001, max=0.5)
    split_seed: int = option(13, "Seed of the held-out split.")
    device: Device | None = device_option()
    overwrite: bool = overwrite_option()


@dataclass
class GPT2TrainParams:
    # tokenizer (ignored when fine-tuning an existing checkpoint: its tokenizer is kept)
    vocab_size: int = option(8000, "Byte-level BPE vocabulary size (from scratch).", min=300)
    # model (ignored when fine-tuning)
    n_layer: int = option(4, "Transformer blocks (from scratch).", min=1)
    n_head: int = option(4, "Attention heads (from scratch).", min=1)
    n_embd: int = option(256, "Width (from scratch).", min=1)
    block_size: int = option(128, "Tokens per training sequence (the model's context).", min=1)
    dropout: float = option(0.1, "Dropout (from scratch).", min=0, below=1)
    # optimisation
    batch_size: int = option(16, "Sequences per step.", min=1)
    learning_rate: float = option(1e-3, "Peak AdamW learning rate.", above=0)
    weight_decay: float = option(0.1, "AdamW weight decay (matrices only).", min=0)
    warmup_steps: int = option(100, "Linear warm-up steps, then cosine decay.", min=0)
    max_steps: int = option(2000, "Optimizer steps.", min=1)
    clip_norm: float = clip_norm_option()
    max_minutes: float | None = max_minutes_option()
    eval_every: int = option(200, "Held-out perplexity every this many steps.", min=1)
    eval_batches: int = option(20, "Batches of that held-out perplexity.", min=1)
    checkpoint_every: int = option(200, "Checkpoint every this many steps.", min=1)
    seed: int = option(13, "Seed of initialisation and batches.")

    def validate(self) -> None:
        check(self)
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of n_head")

    def fingerprint(self) -> str:
        """Identifies a training run for resuming: the settings that change its course, not when it stops."""
        return fingerprint(self, exclude=("max_minutes", "max_steps"))
