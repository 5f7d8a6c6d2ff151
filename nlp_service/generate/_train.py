"""Training a small GPT-2: a byte-level BPE tokenizer on the training texts, then a GPT2Config model
from scratch (or an existing checkpoint, fine-tuned) with AdamW, linear warm-up + cosine decay,
gradient clipping, mixed precision on CUDA, step checkpoints that a restarted run resumes from, a
time budget, and held-out perplexity."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..torch_utils import pick_device, seed_everything
from ..training import ResumableRun
from ._params import GPT2TrainParams

EOT = "<|endoftext|>"


def train_byte_bpe(texts: Sequence[str], vocab_size: int) -> Any:
    """A GPT-2-style byte-level BPE tokenizer (every byte representable: no unknown tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT,
                                   pad_token=EOT, model_max_length=1_000_000)


def pack(tokenizer: Any, texts: Sequence[str], block_size: int) -> torch.Tensor:
    """All texts as one token stream (each followed by end-of-text), cut into (N, block_size + 1) rows."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += [*ids, eos]
    n = (len(stream) - 1) // block_size
    if n < 1:
        raise ValueError(f"too little text: {len(stream)} tokens for blocks of {block_size}")
    data = torch.tensor(stream[: n * block_size + 1], dtype=torch.long)
    # Row i covers tokens [i*B, (i+1)*B]: inputs are the first B, targets the last B.
    return torch.stack([data[i * block_size : (i + 1) * block_size + 1] for i in range(n)])


def lr_at(step: int, p: GPT2TrainParams) -> float:
    """Linear warm-up to the peak, then cosine decay to a tenth of it at ``max_steps``."""
    if step < p.warmup_steps:
        return p.learning_rate * (step + 1) / p.warmup_steps
    progress = min(1.0, (step - p.warmup_steps) / max(1, p.max_steps - p.warmup_steps))
    return p.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.inference_mode()
def perplexity(model: Any, blocks: torch.Tensor, batch_size: int, device: torch.device, max_batches: int | None = None
               ) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for b, lo in enumerate(range(0, blocks.size(0), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        rows = blocks[lo : lo + batch_size].to(device)
        logits = model(input_ids=rows[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1),
                                                 reduction="sum")
        total += float(loss)
        count += rows[:, 1:].numel()
    model.train(was_training)
    return math.exp(total / max(1, count))


@dataclass
class GPT2TrainResult:
    model: Any
    history: list[dict[str, Any]]
    steps: int
    resumed_from_step: int
    seconds: float
    device: str
    stopped: str  # "max_steps" | "time_budget"
    run: ResumableRun  # finish() it once the model is saved


def train_gpt2(model: Any, train_blocks: torch.Tensor, val_blocks: torch.Tensor, params: GPT2TrainParams, *,
               checkpoint_dir: Path | None = None, device: str = "auto", progress: bool = True) -> GPT2TrainResult:
    from tqdm.auto import tqdm

    params.validate()
    dev = pick_device(device)
    seed_everything(params.seed)
    model.to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=params.learning_rate,
                                  betas=(0.9, 0.95))
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    run = ResumableRun(checkpoint_dir, model, optimizer, scaler, dev)
    state = run.progress
    step = state.done
    running_loss: float | None = state.extra.get("running_loss")
    stopped = "max_steps"
    n_batches = max(1, train_blocks.size(0) // params.batch_size)
    bar = tqdm(total=params.max_steps, initial=step, desc="training", unit="step", disable=not progress)
    order_epoch, order = -1, torch.empty(0, dtype=torch.long)
    while step < params.max_steps:
        if run.over_budget(params.max_minutes):
            stopped = "time_budget"
            break
        # The order of an epoch comes from (seed, epoch): a resumed run sees the same batches.
        epoch, index = divmod(step, n_batches)
        if epoch != order_epoch:
            order_epoch = epoch
            order = torch.randperm(train_blocks.size(0), generator=torch.Generator().manual_seed(params.seed + epoch))
        rows = train_blocks[order[index * params.batch_size : (index + 1) * params.batch_size]].to(dev)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, params)
        with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
            loss = _lm_loss(model, rows)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.clip_norm)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        value = float(loss.detach())
        running_loss = value if running_loss is None else 0.98 * running_loss + 0.02 * value
        state.done, state.extra["running_loss"] = step, running_loss
        bar.update(1)
        bar.set_postfix(loss=f"{running_loss:.3f}", lr=f"{lr_at(step, params):.2e}")
        last = step == params.max_steps
        if step % params.eval_every == 0 or last:
            ppl = perplexity(model, val_blocks, params.batch_size, dev, params.eval_batches)
            state.history.append({"step": step, "train_loss": round(running_loss, 4), "val_perplexity": round(ppl, 2),
                                  "learning_rate": lr_at(step, params), "seconds": round(run.elapsed, 1)})
            if progress:
                tqdm.write(f"step {step}: train_loss={running_loss:.3f} val_ppl={ppl:.2f}", file=sys.stderr)
        if step % params.checkpoint_every == 0 or last:
            run.checkpoint()
    bar.close()
    model.eval()
    return GPT2TrainResult(model, state.history, step, run.resumed_from, round(run.elapsed, 1), str(dev), stopped,
                           run)


def _lm_loss(model: Any, rows: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=rows[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1))
