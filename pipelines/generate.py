"""GPT-2 pipeline: texts -> held-out split -> byte-level BPE tokenizer -> small GPT-2 trained from scratch
(or an existing checkpoint fine-tuned with ``init``) -> held-out perplexity and sample texts -> artifact."""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nlp_service.data import DataError, iter_corpus
from nlp_service.generate import GPT2Engine, SamplingParams
from nlp_service.generate._model import load_pretrained, save_generator
from nlp_service.generate._train import GPT2TrainParams, pack, perplexity, train_byte_bpe, train_gpt2

from ._plots import history_png

SAMPLE_PROMPTS = ("En el principio", "El hombre que", "La vida es", "Y dijo")


def build_gpt2(paths: Sequence[Path], models_dir: Path, name: str, *, params: GPT2TrainParams | None = None,
               init: str | None = None, column: str | None = None, validation: float = 0.02, split_seed: int = 13,
               checkpoint_dir: Path | None = None, device: str = "auto", overwrite: bool = False,
               progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train (or fine-tune ``init``) a GPT-2 on the texts of ``paths`` and save it with its perplexity."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    params = params or GPT2TrainParams()
    params.validate()
    texts = list(iter_corpus(paths, column))
    if len(texts) < 10:
        raise DataError(f"need at least 10 texts to train a language model, found {len(texts)}")
    rows = list(range(len(texts)))
    random.Random(split_seed).shuffle(rows)
    n_val = max(1, round(len(rows) * validation))
    val_texts, train_texts = [texts[i] for i in rows[:n_val]], [texts[i] for i in rows[n_val:]]
    if init:
        model, tokenizer = load_pretrained(init)
        params.block_size = min(params.block_size, model.config.n_positions)
    else:
        tokenizer = train_byte_bpe(train_texts, params.vocab_size)
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=params.block_size, n_embd=params.n_embd,
                            n_layer=params.n_layer, n_head=params.n_head, resid_pdrop=params.dropout,
                            embd_pdrop=params.dropout, attn_pdrop=params.dropout,
                            bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
        torch.manual_seed(params.seed)
        model = GPT2LMHeadModel(config)
    train_blocks = pack(tokenizer, train_texts, params.block_size)
    val_blocks = pack(tokenizer, val_texts, params.block_size)
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir) / f"{name}-gpt2-{params.fingerprint()}-{split_seed}-{init or 'scratch'}"
    result = train_gpt2(model, train_blocks, val_blocks, params, checkpoint_dir=checkpoint_dir, device=device,
                        progress=progress)
    dev = next(result.model.parameters()).device
    test_ppl = perplexity(result.model, val_blocks, params.batch_size, dev)
    samples = sample_texts(result.model, tokenizer, SAMPLE_PROMPTS)
    metrics: dict[str, Any] = {
        "test": {"perplexity": round(test_ppl, 2), "tokens": int(val_blocks[:, 1:].numel()),
                 "texts": len(val_texts)},
        "train_tokens": int(train_blocks[:, 1:].numel()), "steps": result.steps, "stopped": result.stopped,
        "train_seconds": result.seconds, "resumed_from_step": result.resumed_from_step, "device": result.device,
        "parameters": int(sum(p.numel() for p in result.model.parameters())), "vocabulary": len(tokenizer),
        "samples": samples, "history": result.history,
    }
    curve = history_png(result.history, f"{name} (GPT-2)", [
        ("train loss", [("train_loss", "train")]), ("held-out perplexity", [("val_perplexity", "val")])], x="step")
    path = save_generator(
        models_dir, name, model=result.model.to("cpu").float(), tokenizer=tokenizer,
        params={"gpt2": asdict(params), "split_seed": split_seed, "validation": validation},
        data={"files": [str(p) for p in paths], "texts": len(texts), "init": init}, metrics=metrics,
        overwrite=overwrite, extra_files={"training_curve.png": curve} if curve else None,
    )
    if checkpoint_dir is not None:  # the artifact now holds the result; the checkpoint is spent
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return path, metrics


def sample_texts(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 40) -> list[dict[str, str]]:
    """Greedy and sampled continuations of a few prompts, through the engine."""
    # Eager steps: capturing CUDA graphs would cost more than these few tokens.
    engine = GPT2Engine(model, max_slots=len(prompts) * 2, device=str(next(model.parameters()).device),
                        cuda_graphs=False)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    room = engine.max_seq - max(len(x) for x in ids)
    n = max(1, min(max_new_tokens, room))
    greedy = engine.generate(ids, SamplingParams(max_new_tokens=n))
    # One seed per prompt: with a shared seed every prompt would draw the same random numbers, and a
    # weak model's samples then look alike.
    sampled = engine.generate(ids, [SamplingParams(max_new_tokens=n, do_sample=True, temperature=0.8, top_p=0.95,
                                                   seed=1 + i) for i in range(len(ids))])
    return [{"prompt": p, "greedy": p + tokenizer.decode(g, skip_special_tokens=True),
             "sampled": p + tokenizer.decode(s, skip_special_tokens=True)}
            for p, g, s in zip(prompts, greedy, sampled, strict=True)]


__all__ = ["build_gpt2", "sample_texts"]
