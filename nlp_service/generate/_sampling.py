"""The batched logits processing that applies each request's sampling parameters, row by row."""

from __future__ import annotations

from collections.abc import Sequence

import torch


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


_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 tensors holding 32-bit values, without int64 overflow."""
    low = x * (c & 0xFFFF)  # < 2**48
    high = (x * (c >> 16)) & 0xFFFF  # only its low 16 bits survive the shift into bits 16..31
    return (low + (high << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash with good avalanche (Wellons' "lowbias32")."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def seeded_uniform(seeds: Sequence[int], steps: Sequence[int], device: torch.device) -> torch.Tensor:
    """One uniform draw in (0, 1) per row, a pure function of (seeds[i], steps[i]): a counter-based
    generator, so a whole batch draws in one pass and a request's draws depend only on its seed and
    how many tokens it has made, never on what else is in the batch."""
    # Seeds are 64-bit unsigned (TGI's u64); a signed tensor keeps the same bits.
    seed = torch.tensor([s - (1 << 64) if s >= 1 << 63 else s for s in seeds], dtype=torch.long, device=device)
    step = torch.tensor(steps, dtype=torch.long, device=device) & _MASK32
    key = _mix32(_mix32(_mix32(seed & _MASK32) ^ ((seed >> 32) & _MASK32)) ^ step)
    bits = _mix32((key + 0x9E3779B9) & _MASK32)
    # 24 bits: exactly representable in float32 and strictly inside (0, 1).
    return ((bits >> 8).float() + 0.5) / float(1 << 24)


def scale_by_temperature(logits: torch.Tensor, temperatures: Sequence[float]) -> torch.Tensor:
    """``logits / temperature`` per row, in float32, and stable at any positive temperature: each row is
    shifted so its best logit is 0 first, so a tiny temperature tends to greedy decoding (the best token
    at 0, the rest at -inf) instead of overflowing to inf - inf = NaN."""
    rows = logits.float()
    rows = rows - rows.max(dim=-1, keepdim=True).values
    finite_max = torch.finfo(torch.float32).max
    inverse = torch.tensor([min(1.0 / t, finite_max) for t in temperatures], device=logits.device)
    return rows * inverse[:, None]


def sample_rows(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling, all rows at once: row i's token is where ``uniform[i]`` falls in its
    cumulative distribution (tokens of probability 0 are never picked)."""
    cdf = probs.float().cumsum(dim=-1)
    target = (uniform * cdf[:, -1])[:, None]  # scaled by the row's total: rounding never overshoots
    return torch.searchsorted(cdf, target, right=True)[:, 0].clamp_(max=probs.size(-1) - 1)


def apply_frequency_presence(logits: torch.Tensor, counts: torch.Tensor, frequency: torch.Tensor,
                             presence: torch.Tensor) -> torch.Tensor:
    """OpenAI's penalties: each token's logit minus ``frequency`` x how often the row generated it, minus
    ``presence`` if it generated it at all. ``counts`` (N, V); ``frequency``, ``presence`` (N, 1)."""
    return logits - counts * frequency - (counts > 0).to(logits.dtype) * presence


def filter_typical(logits: torch.Tensor, masses: Sequence[float]) -> torch.Tensor:
    """Typical decoding (Meister et al. 2022; transformers' ``TypicalLogitsWarper``): keep the tokens whose
    information is closest to the distribution's entropy until they hold ``mass`` of the probability; the
    others to -inf. Rows with mass 1 are left as they are."""
    rows = [i for i, m in enumerate(masses) if m < 1.0]
    if not rows:
        return logits
    index = torch.tensor(rows, device=logits.device)
    sub = logits[index]
    normalized = torch.log_softmax(sub, dim=-1)
    probs = normalized.exp()
    entropy = -(normalized * probs).nansum(-1, keepdim=True)
    shifted = ((-normalized) - entropy).abs()
    sorted_scores, order = torch.sort(shifted, descending=False)
    cumulative = sub.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
    mass = torch.tensor([masses[i] for i in rows], device=logits.device)[:, None]
    last = (cumulative < mass).sum(dim=1).clamp_(max=sorted_scores.size(-1) - 1)
    remove_sorted = sorted_scores > sorted_scores.gather(1, last[:, None])
    remove_sorted[:, :1] = False  # the most typical token always stays
    remove = remove_sorted.scatter(1, order, remove_sorted)
    out = logits.clone()
    out[index] = sub.masked_fill(remove, float("-inf"))
    return out


def apply_logit_bias(logits: torch.Tensor, rows: Sequence[int], biases: Sequence[Sequence[tuple[int, float]]]
                     ) -> torch.Tensor:
    """Each of ``rows`` gets its (token id, bias) pairs added to its logits (OpenAI's ``logit_bias``); ids past
    the vocabulary (refused by the serving layer's check) are ignored here."""
    vocab = logits.size(-1)
    r = [row for row, pairs in zip(rows, biases, strict=True) for tok, _ in pairs if tok < vocab]
    c = [tok for pairs in biases for tok, _ in pairs if tok < vocab]
    v = [bias for pairs in biases for tok, bias in pairs if tok < vocab]
    if not r:
        return logits
    out = logits.clone()
    dev = logits.device
    out.index_put_((torch.tensor(r, device=dev), torch.tensor(c, device=dev)),
                   torch.tensor(v, device=dev, dtype=out.dtype), accumulate=True)
    return out
