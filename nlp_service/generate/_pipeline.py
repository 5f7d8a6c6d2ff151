"""GPT-2 training, end to end: texts -> held-out split -> byte-level BPE tokenizer -> small GPT-2 trained
from scratch (or an existing checkpoint fine-tuned with ``init``) -> held-out perplexity and sample
texts -> model folder (with ``metrics.json``, the training curve and the run's options as
``params.toml``)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import json_bytes
from ..data import SPANISH_CORPUS, DataError, iter_corpus
from ..options import CONFIG_FILE
from ..training import TRAINING_CURVE, Trainer, history_png, run_folder, start_run
from ._params import GPT2Run, GPT2TrainParams, SamplingParams

if TYPE_CHECKING:
    from ..config import Settings

SAMPLE_PROMPTS = ("En el principio", "El hombre que", "La vida es", "Y dijo")


def build_gpt2(run: GPT2Run, params: GPT2TrainParams | None = None, *, settings: Settings | None = None,
               progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train (or fine-tune ``run.init``) a GPT-2 on the texts of ``run.corpus`` and save it with its
    perplexity. Checkpoints go under the cache folder; the same run started again resumes."""
    import hashlib

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..torch_utils import count_parameters
    from ._model import GeneratorModel, generator_manifest, load_pretrained
    from ._train import pack, perplexity, train_byte_bpe, train_gpt2

    params = dataclasses.replace(params or GPT2TrainParams())  # a copy: fine-tuning caps its block size
    settings = start_run(settings, run, params)
    name = run.name or settings.default_generator_model
    paths = [Path(p) for p in run.corpus or SPANISH_CORPUS]
    texts = list(iter_corpus(paths, run.column))
    if len(texts) < 10:
        raise DataError(f"need at least 10 texts to train a language model, found {len(texts)}")
    rows = list(range(len(texts)))
    random.Random(run.split_seed).shuffle(rows)
    n_val = max(1, round(len(rows) * run.validation))
    val_texts, train_texts = [texts[i] for i in rows[:n_val]], [texts[i] for i in rows[n_val:]]
    if run.init:
        model, tokenizer = load_pretrained(run.init)
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
    checkpoints = run_folder(settings.cache_dir / "checkpoints", name, {
        "params": params.fingerprint(), "split": [run.split_seed, run.validation], "init": run.init,
        "data": hashlib.sha256(train_blocks.numpy().tobytes()).hexdigest()})
    result = train_gpt2(model, train_blocks, val_blocks, params, checkpoint_dir=checkpoints,
                        device=run.device or settings.device, progress=progress)
    dev = next(result.model.parameters()).device
    test_ppl = perplexity(result.model, val_blocks, params.batch_size, dev)
    samples = sample_texts(result.model, tokenizer, SAMPLE_PROMPTS)
    metrics: dict[str, Any] = {
        "test": {"perplexity": round(test_ppl, 2), "tokens": int(val_blocks[:, 1:].numel()),
                 "texts": len(val_texts)},
        "train_tokens": int(train_blocks[:, 1:].numel()), "steps": result.steps, "stopped": result.stopped,
        "train_seconds": result.seconds, "resumed_from_step": result.resumed_from_step, "device": result.device,
        "parameters": count_parameters(result.model), "vocabulary": len(tokenizer),
        "samples": samples, "history": result.history,
    }
    # The saved run names its starting checkpoint so that it works from any folder (a hub name stays).
    init = str(Path(run.init).resolve()) if run.init and Path(run.init).exists() else run.init
    files = {"metrics.json": json_bytes(metrics),
             CONFIG_FILE: GPT2_TRAINER.config(dataclasses.replace(run, name=name, init=init), params).encode()}
    curve = history_png(result.history, f"{name} (GPT-2)", [
        ("train loss", [("train_loss", "train")]), ("held-out perplexity", [("val_perplexity", "val")])], x="step")
    if curve:
        files[TRAINING_CURVE] = curve
    manifest = generator_manifest(
        name, params={"gpt2": dataclasses.asdict(params), "split_seed": run.split_seed, "validation": run.validation},
        data={"files": [str(p) for p in paths], "texts": len(texts), "init": run.init}, metrics=metrics)
    generator = GeneratorModel(name, manifest, result.model, tokenizer, dev, next(result.model.parameters()).dtype)
    path = generator.save(settings.models_dir, overwrite=run.overwrite, extra_files=files)
    result.run.finish()
    return path, metrics


def sample_texts(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 40) -> list[dict[str, str]]:
    """Greedy and sampled continuations of a few prompts, through the engine."""
    from ._engine import GPT2Engine

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


GPT2_TRAINER = Trainer(
    command="gpt2", kind="generator",
    summary="Train a small GPT-2 (byte-level BPE + GPT2Config) or fine-tune one. Interrupted? Run it again: it "
            "resumes.",
    groups=(GPT2Run, GPT2TrainParams), train=build_gpt2,
    report=lambda m: {"test": m["test"], "steps": m["steps"], "stopped": m["stopped"],
                      "train_seconds": m["train_seconds"], "samples": m["samples"][:2]})
