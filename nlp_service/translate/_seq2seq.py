"""Encoder-decoder with attention (PyTorch): a bidirectional LSTM encoder, an LSTM decoder, and
attention over the encoder states; greedy and beam-search decoding, batched.

Attention is applied Luong-style, on top of the decoder LSTM (no input feeding): with teacher
forcing the whole target side then runs as one LSTM call and one output projection, several times
faster on a CPU than stepping an LSTM cell in Python. The score is Luong's ``general``
(``h W s``) or Bahdanau's additive one (``v tanh(W h + U s)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ._params import Seq2SeqParams
from ._subwords import BOS, EOS, PAD, UNK


class Seq2Seq(nn.Module):
    def __init__(self, source_vocab: int, target_vocab: int, p: Seq2SeqParams, *, share_embeddings: bool = False
                 ) -> None:
        super().__init__()
        e, h = p.embedding_dim, p.hidden_size
        self.decoder_layers = p.decoder_layers
        self.attention_kind = p.attention
        self.source_embed = nn.Embedding(source_vocab, e, padding_idx=PAD)
        # A joint vocabulary can share one matrix between encoder, decoder and output.
        self.target_embed = self.source_embed if share_embeddings else nn.Embedding(target_vocab, e, padding_idx=PAD)
        self.encoder = nn.LSTM(e, h // 2, num_layers=p.encoder_layers, batch_first=True, bidirectional=True,
                               dropout=p.dropout if p.encoder_layers > 1 else 0.0)
        self.bridge = nn.Linear(h, 2 * h * p.decoder_layers)  # top encoder layer -> decoder (h0, c0) per layer
        self.decoder = nn.LSTM(e, h, num_layers=p.decoder_layers, batch_first=True,
                               dropout=p.dropout if p.decoder_layers > 1 else 0.0)
        if p.attention == "luong":
            self.attn_query = nn.Linear(h, h, bias=False)
        else:
            self.attn_query = nn.Linear(h, h, bias=False)
            self.attn_key = nn.Linear(h, h, bias=True)
            self.attn_v = nn.Linear(h, 1, bias=False)
        self.combine = nn.Linear(2 * h, e, bias=False)  # [context; state] -> attentional vector
        self.dropout = nn.Dropout(p.dropout)
        self.out = nn.Linear(e, target_vocab, bias=True)
        if p.tie_embeddings:
            self.out.weight = self.target_embed.weight

    # -- encoder -----------------------------------------------------------------------------

    def encode(self, src: torch.Tensor, src_len: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """Encoder states (N, S, H), the pad mask (N, S), the decoder's initial state, attention keys."""
        emb = self.dropout(self.source_embed(src))
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.encoder(packed)
        enc, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        top = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # last layer, forward and backward
        n, layers = src.size(0), self.decoder_layers
        init = torch.tanh(self.bridge(top)).view(n, 2, layers, -1)
        state = (init[:, 0].transpose(0, 1).contiguous(), init[:, 1].transpose(0, 1).contiguous())
        mask = src == PAD
        keys = self.attn_key(enc) if self.attention_kind == "bahdanau" else None
        return enc, mask, state, keys

    # -- attention + output --------------------------------------------------------------------

    def attention(self, dec: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor | None
                  ) -> torch.Tensor:
        """Attention weights (N, T, S) of decoder states (N, T, H) over encoder states (N, S, H)."""
        if self.attention_kind == "luong":
            scores = torch.bmm(self.attn_query(dec), enc.transpose(1, 2))  # (N, T, S)
        else:
            assert keys is not None
            q = self.attn_query(dec)  # (N, T, H)
            scores = self.attn_v(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        scores = scores.masked_fill(mask.unsqueeze(1), float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(enc.dtype)

    def attend(self, dec: torch.Tensor, enc: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor | None
               ) -> torch.Tensor:
        """Logits (N, T, V) from decoder states (N, T, H) and encoder states (N, S, H)."""
        weights = self.attention(dec, enc, mask, keys)
        context = torch.bmm(weights, enc)
        attentional = torch.tanh(self.combine(torch.cat([context, dec], dim=-1)))
        return self.out(self.dropout(attentional))

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (N, T, V): ``tgt_in`` is the target shifted right (starts with ``<s>``)."""
        enc, mask, state, keys = self.encode(src, src_len)
        dec, _ = self.decoder(self.dropout(self.target_embed(tgt_in)), state)
        return self.attend(dec, enc, mask, keys)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], enc: torch.Tensor,
             mask: torch.Tensor, keys: torch.Tensor | None, *, allow_eos: bool = True
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoding step: log-probabilities (N, V) of the next token after ``tokens`` (N,).

        ``<pad>``, ``<unk>`` and ``<s>`` are never produced; ``</s>`` only when ``allow_eos``.
        """
        dec, state = self.decoder(self.target_embed(tokens).unsqueeze(1), state)
        logits = self.attend(dec, enc, mask, keys).squeeze(1).float()
        logits[:, [PAD, UNK, BOS]] = float("-inf")
        if not allow_eos:
            logits[:, EOS] = float("-inf")
        return torch.log_softmax(logits, dim=-1), state


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length normalisation ((5 + len) / 6) ** alpha; alpha 0 ranks by total log-probability."""
    return ((5.0 + length) / 6.0) ** alpha


def _limits(max_length: int | Sequence[int], n: int) -> list[int]:
    limits = [max_length] * n if isinstance(max_length, int) else [int(x) for x in max_length]
    if len(limits) != n or min(limits, default=1) < 1:
        raise ValueError("max_length must be at least 1, one value or one per sentence")
    return limits


def _select_state(state: tuple[torch.Tensor, torch.Tensor], rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return state[0][:, rows], state[1][:, rows]


@torch.inference_mode()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_length: int | Sequence[int]
                  ) -> tuple[list[list[int]], list[float]]:
    """Most probable next piece at each step, for a batch; returns pieces (without ``</s>``) and log-probs.

    ``max_length`` (pieces, ``</s>`` included) is one number or one per sentence: a sentence's
    result never depends on what else is in the batch.
    """
    enc, mask, state, keys = model.encode(src, src_len)
    n = src.size(0)
    limits = _limits(max_length, n)
    limit_t = torch.tensor(limits, device=src.device)
    tokens = torch.full((n,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    scores = torch.zeros(n, device=src.device)
    out: list[torch.Tensor] = []
    for t in range(max(limits)):
        logp, state = model.step(tokens, state, enc, mask, keys, allow_eos=t > 0)
        best = logp.argmax(dim=-1)
        scores += torch.where(done, torch.zeros_like(scores), logp.gather(1, best[:, None]).squeeze(1))
        best = torch.where(done, torch.full_like(best, PAD), best)
        out.append(best)
        done |= (best == EOS) | (limit_t <= t + 1)
        tokens = best
        if bool(done.all()):
            break
    steps = torch.stack(out, dim=1).tolist()
    pieces = [[tok for tok in row if tok not in (EOS, PAD)] for row in steps]
    return pieces, scores.tolist()


@dataclass
class Hypothesis:
    tokens: list[int]  # without </s>
    score: float  # total log-probability, </s> included when the hypothesis ended with it
    normalized: float  # score / length_penalty(length)
    finished: bool  # ended with </s> (else: cut at max_length)


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, *, beam_size: int = 5,
                max_length: int | Sequence[int] = 100, alpha: float = 0.6, n_best: int = 1
                ) -> list[list[Hypothesis]]:
    """Beam search for a batch of sentences; each gets its ``n_best`` hypotheses, best first.

    A sentence stops when no open beam can still beat its best finished hypothesis: log-probs only
    fall as a hypothesis grows, so an open beam's best reachable normalised score is its score
    divided by the largest length penalty. With a beam as wide as the search space this is exact
    search (tested against enumeration).
    """
    if beam_size < 1 or n_best < 1 or n_best > beam_size:
        raise ValueError("need 1 <= n_best <= beam_size")
    n, k, dev = src.size(0), beam_size, src.device
    enc, mask, state, keys = model.encode(src, src_len)
    rows = torch.arange(n, device=dev).repeat_interleave(k)  # beam row -> sentence
    enc, mask = enc[rows], mask[rows]
    keys = keys[rows] if keys is not None else None
    state = _select_state(state, rows)
    scores = torch.full((n, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: only the first one is live
    tokens = torch.full((n * k,), BOS, dtype=torch.long, device=dev)
    history: list[list[int]] = [[] for _ in range(n * k)]
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    active = list(range(n))  # sentences still searching
    limits = _limits(max_length, n)  # per sentence: its result never depends on the rest of the batch
    bounds = [length_penalty(limit, alpha) for limit in limits]
    for t in range(max(limits)):
        logp, state = model.step(tokens, state, enc, mask, keys, allow_eos=t > 0)
        vocab = logp.size(-1)
        cand = (scores.view(n * k, 1) + logp).view(n, k * vocab)
        top_scores, top_ids = cand.topk(min(2 * k, k * vocab), dim=1)
        top_scores, top_ids = top_scores.tolist(), top_ids.tolist()
        neg_inf = float("-inf")
        new_scores = [[neg_inf] * k for _ in range(n)]
        new_tokens = [PAD] * (n * k)
        parents = list(range(n * k))
        new_history: list[list[int]] = [[] for _ in range(n * k)]
        still = []
        for b in active:
            slot = 0
            last = t == limits[b] - 1
            for score, flat in zip(top_scores[b], top_ids[b], strict=True):
                if score == neg_inf or slot == k:
                    break
                beam, token = divmod(flat, vocab)
                prefix = history[b * k + beam]
                if token == EOS or last:  # closed by </s>, or out of room (kept, marked unfinished)
                    pieces = prefix if token == EOS else [*prefix, token]
                    finished[b].append(Hypothesis(pieces, score, score / length_penalty(len(prefix) + 1, alpha),
                                                  token == EOS))
                    continue
                row = b * k + slot
                new_scores[b][slot] = score
                new_tokens[row] = token
                parents[row] = b * k + beam
                new_history[row] = [*prefix, token]
                slot += 1
            best_done = max((h.normalized for h in finished[b]), default=neg_inf)
            open_best = max(new_scores[b])
            if (slot and len(finished[b]) < n_best) or open_best / bounds[b] > best_done:
                still.append(b)
        active = still
        if not active:
            break
        # Sentences that are done keep their rows in the batch (cheap) but never expand again.
        keep = set(active)
        scores = torch.tensor([row if b in keep else [neg_inf] * k for b, row in enumerate(new_scores)], device=dev)
        state = _select_state(state, torch.tensor(parents, device=dev))
        tokens = torch.tensor(new_tokens, device=dev)
        history = new_history
    results = []
    for b in range(n):
        ranked = sorted(finished[b], key=lambda h: h.normalized, reverse=True)
        results.append(ranked[:n_best])
    return results


@torch.inference_mode()
def score_sequences(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, targets: list[list[int]]) -> list[float]:
    """Total log-probability of each target (pieces, ``</s>`` included when given) under the decoding
    rules of :meth:`Seq2Seq.step`: the reference for the search tests. ``src`` holds one row per
    target, or a single row shared by all of them."""
    enc, mask, state, keys = model.encode(src, src_len)
    scores = []
    for j, target in enumerate(targets):
        i = j if src.size(0) > 1 else 0
        st = (state[0][:, i : i + 1], state[1][:, i : i + 1])
        tok = torch.tensor([BOS], device=src.device)
        total = 0.0
        for t, nxt in enumerate(target):
            logp, st = model.step(tok, st, enc[i : i + 1], mask[i : i + 1],
                                  keys[i : i + 1] if keys is not None else None, allow_eos=t > 0)
            total += float(logp[0, nxt])
            tok = torch.tensor([nxt], device=src.device)
        scores.append(total)
    return scores



@torch.inference_mode()
def attention_of(model: Seq2Seq, source: list[int], target: list[int], *, device: torch.device | None = None
                 ) -> torch.Tensor:
    """The attention (T, S), float32 on the CPU, of each piece of ``target`` (the decoder's output, ``</s>``
    included when it ended so) over the pieces of ``source`` (``</s>`` included).

    The decoder has no input feeding: its state at step t depends only on the pieces before t, so one
    teacher-forced pass over the chosen hypothesis gives the attention its search computed step by step
    (a beam's history included), without recording anything during the search.
    """
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    src, src_len = collate([source], dev)
    enc, mask, state, keys = model.encode(src, src_len)
    tgt_in = torch.tensor([[BOS, *target[:-1]]], dtype=torch.long, device=dev)
    dec, _ = model.decoder(model.target_embed(tgt_in), state)
    weights = model.attention(dec, enc, mask, keys)[0].float().cpu()
    model.train(was_training)
    return weights


def collate(seqs: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, L) and lengths (N,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids.to(device, non_blocking=True), lengths


def decode_many(model: Seq2Seq, sources: list[list[int]], *, beam_size: int = 1, max_length: int | None = None,
                alpha: float = 0.6, batch_size: int = 64, device: torch.device | None = None) -> list[list[int]]:
    """Translate encoded sources (each ending in ``</s>``): batches of similar length, order restored.

    ``max_length`` caps output pieces; by default :meth:`DecodeOptions.length_limit` of the source.
    """
    from ._params import DecodeOptions

    limits = DecodeOptions(max_length=max_length)
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    # Beam search multiplies the rows; keep the work per forward pass about the same.
    step = max(1, batch_size // beam_size)
    out: list[list[int]] = [[] for _ in sources]
    for lo in range(0, len(order), step):
        rows = order[lo : lo + step]
        src, src_len = collate([sources[r] for r in rows], dev)
        limit = [limits.length_limit(int(x)) for x in src_len]
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            if beam_size == 1:
                pieces, _ = greedy_decode(model, src, src_len, limit)
            else:
                pieces = [h[0].tokens for h in beam_search(model, src, src_len, beam_size=beam_size,
                                                           max_length=limit, alpha=alpha)]
        for r, p in zip(rows, pieces, strict=True):
            out[r] = p
    model.train(was_training)
    return out
