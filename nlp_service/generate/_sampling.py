"""Per-request decoding parameters and the batched logits processing that applies them row by row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How one request picks its next tokens. ``do_sample=False`` is greedy decoding."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1: no nucleus filter
    repetition_penalty: float = 1.0  # 1: none; as in transformers (CTRL paper)
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop sequences (text), applied by the caller that detokenizes
    ignore_eos: bool = False

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive (use do_sample=false for greedy decoding)")
        if self.top_k < 0:
            raise ValueError("top_k must be 0 (off) or positive")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be positive")


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """transformers' rule: a seen token's logit is divided by the penalty when positive, multiplied when negative.

    ``seen`` (N, V) bool marks tokens of each row's prompt and output; ``penalty`` (N, 1).
    """
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def filter_top_k_top_p(logits: torch.Tensor, top_k: Sequence[int], top_p: Sequence[float]) -> torch.Tensor:
    """Logits outside each row's top-k / nucleus set to -inf (rows with neither are left alone)."""
    out = logits
    for row, (k, p) in enumerate(zip(top_k, top_p, strict=True)):
        if k <= 0 and p >= 1.0:
            continue
        x = out[row]
        if 0 < k < x.numel():
            kth = torch.topk(x, k).values[-1]
            x = x.masked_fill(x < kth, float("-inf"))
        if p < 1.0:
            sorted_logits, order = torch.sort(x, descending=False)
            cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
            remove_sorted = cumulative <= (1 - p)
            remove_sorted[-1] = False  # always keep the most likely token
            remove = torch.zeros_like(remove_sorted).scatter(0, order, remove_sorted)
            x = x.masked_fill(remove, float("-inf"))
        if out is logits:
            out = logits.clone()
        out[row] = x
    return out
