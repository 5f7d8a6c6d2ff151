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
    """Logits outside each row's top-k, then outside its nucleus, set to -inf; transformers' rules
    (``TopKLogitsWarper`` keeps ties with the k-th value, ``TopPLogitsWarper`` always keeps the most
    likely token). One batched pass for all rows, each with its own k and p (0 / 1: off), rather than
    a dozen small kernels per row."""
    vocab = logits.size(-1)
    dev = logits.device
    out = logits
    if any(0 < k < vocab for k in top_k):
        k = torch.tensor([k if 0 < k < vocab else vocab for k in top_k], device=dev)
        kth = torch.sort(out, dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
        out = out.masked_fill(out < kth, float("-inf"))  # a row without top-k: kth is its minimum
    if any(p < 1.0 for p in top_p):
        # Ascending order: drop the least likely tokens while their total stays within 1 - p.
        limit = torch.tensor([1 - p if p < 1.0 else -1.0 for p in top_p], device=dev)
        sorted_logits, order = torch.sort(out, dim=-1, descending=False)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= limit[:, None]
        remove_sorted[:, -1] = False  # always keep the most likely token
        remove = torch.zeros_like(remove_sorted).scatter(1, order, remove_sorted)
        out = out.masked_fill(remove, float("-inf"))
    return out
