"""Training loop of the seq2seq translator: teacher forcing, label smoothing, Adam + clipping,
token-budget batches grouped by length, early stopping on validation BLEU, a checkpoint every
epoch that a restarted run resumes from, a time budget, mixed precision on CUDA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..torch_utils import pick_device, seed_everything
from ..training import ResumableRun
from ._params import Seq2SeqParams
from ._seq2seq import Seq2Seq, collate, decode_many
from ._subwords import BOS, PAD


@dataclass
class TrainResult:
    model: Seq2Seq
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_bleu: float
    resumed_from_epoch: int
    seconds: float
    device: str
    stopped: str  # "epochs" | "early_stopping" | "time_budget"
    run: ResumableRun  # finish() it once the model is saved


def token_batches(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], batch_tokens: int,
                  gen: torch.Generator) -> list[list[int]]:
    """Shuffled batches of pairs of similar length, each with at most ``batch_tokens`` padded tokens
    on its longer side: windows of the shuffled data are sorted by length and cut, the batches shuffled."""
    order = torch.randperm(len(src), generator=gen).tolist()
    window = 100 * max(1, batch_tokens // 20)
    batches: list[list[int]] = []
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda i: (len(tgt[i]), len(src[i])))
        batch: list[int] = []
        longest = 0
        for i in chunk:
            size = max(len(src[i]), len(tgt[i]) + 1)
            if batch and max(longest, size) * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, size)
        if batch:
            batches.append(batch)
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in perm]


def _teacher_forcing(tgt: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder input (``<s>`` + target without its last piece) and the expected output, padded."""
    inp, _ = collate([[BOS, *t[:-1]] for t in tgt], device)
    out, _ = collate([list(t) for t in tgt], device)
    return inp, out


def train_seq2seq(
    train_src: Sequence[Sequence[int]], train_tgt: Sequence[Sequence[int]], val_src: Sequence[Sequence[int]],
    val_refs: Sequence[str], *, source_vocab: int, target_vocab: int, params: Seq2SeqParams,
    detokenize: Callable[[list[list[int]]], list[str]], share_embeddings: bool = False,
    checkpoint_dir: Path | None = None, device: str = "auto", progress: bool = True,
) -> TrainResult:
    """Train; keep the weights of the epoch with the best validation BLEU (greedy decoding)."""
    import sacrebleu
    from tqdm.auto import tqdm

    params.validate()
    dev = pick_device(device)
    seed_everything(params.seed)
    model = Seq2Seq(source_vocab, target_vocab, params, share_embeddings=share_embeddings).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD, label_smoothing=params.label_smoothing)
    run = ResumableRun(checkpoint_dir, model, optimizer, scaler, dev)
    state = run.progress
    val_rows = list(range(min(len(val_src), params.val_sentences)))
    stopped = "epochs"
    for epoch in range(state.done + 1, params.epochs + 1):
        if stopped != "epochs":
            break
        if run.since_best >= params.patience:
            stopped = "early_stopping"
            break
        if run.over_budget(params.max_minutes):
            stopped = "time_budget"
            break
        model.train()
        gen = torch.Generator().manual_seed(params.seed * 1000 + epoch)  # resumed run == uninterrupted run
        batches = token_batches(train_src, train_tgt, params.batch_tokens, gen)
        total_loss, total_tokens, epoch_start = 0.0, 0, time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch}/{params.epochs}", unit="batch", disable=not progress, leave=False)
        for rows in bar:
            src, src_len = collate([train_src[r] for r in rows], dev)
            tgt_in, tgt_out = _teacher_forcing([train_tgt[r] for r in rows], dev)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(src, src_len, tgt_in)
                loss = loss_fn(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1))
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), params.clip_norm)
            scaler.step(optimizer)
            scaler.update()
            n_tokens = int((tgt_out != PAD).sum())
            total_loss += float(loss.detach()) * n_tokens
            total_tokens += n_tokens
            bar.set_postfix(loss=f"{total_loss / total_tokens:.3f}",
                            tok_s=f"{total_tokens / (time.perf_counter() - epoch_start):.0f}")
            if run.over_budget(params.max_minutes):
                stopped = "time_budget"
                break
        bar.close()
        hyps = detokenize(decode_many(model, [val_src[i] for i in val_rows], beam_size=1, device=dev))
        bleu = sacrebleu.corpus_bleu(hyps, [[val_refs[i] for i in val_rows]]).score if val_rows else 0.0
        record: dict[str, Any] = {
            "epoch": epoch, "train_loss": round(total_loss / max(1, total_tokens), 4), "val_bleu": round(bleu, 2),
            "learning_rate": optimizer.param_groups[0]["lr"], "target_tokens": total_tokens,
            "tokens_per_second": round(total_tokens / (time.perf_counter() - epoch_start)),
            "seconds": round(run.elapsed, 1),
        }
        state.done = epoch
        best = run.improved(bleu)
        if not best:
            for group in optimizer.param_groups:
                group["lr"] *= params.lr_decay
        if stopped != "epochs":
            record["stopped"] = stopped
        state.history.append(record)
        if progress:
            tqdm.write(f"epoch {epoch}: train_loss={record['train_loss']:.3f} val_bleu={bleu:.2f} "
                       f"({record['tokens_per_second']} tok/s, {record['seconds']:.0f} s)"
                       + (" *" if best else "")
                       + (" [time budget reached]" if stopped == "time_budget" else ""), file=sys.stderr)
        run.checkpoint()
    run.restore_best()
    model.eval()
    return TrainResult(model, state.history, state.best_at, round(state.best_score or 0.0, 2), run.resumed_from,
                       round(run.elapsed, 1), str(dev), stopped, run)
