"""The ``generator`` model kind: a GPT-2-family causal LM saved with ``save_pretrained`` (model and
tokenizer) inside a model folder, served by the engine."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, write_manifest

log = logging.getLogger("nlp_service.generate")

KIND = "generator"
FORMAT_VERSION = 1
HF_DIR = "hf"
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA, fp32 on CPU; else the named type."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}; not {name!r}")
    return DTYPES[name]


def load_pretrained(source: str | Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Model and tokenizer from a local ``save_pretrained`` folder or a hub name (needs internet)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype)
    except OSError as exc:
        raise ArtifactError(f"cannot load a causal language model from {source!r}: {exc}") from exc
    return model.eval(), tokenizer


@dataclass
class GeneratorModel:
    name: str
    manifest: Manifest
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    kind: str = KIND
    extra: dict[str, Any] = field(default_factory=dict)
    worker: Any = None

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Any = None, *,
             device: str | None = None, dtype: str | None = None) -> GeneratorModel:
        from ..torch_utils import pick_device

        folder = Path(folder)
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        dev = pick_device(device or getattr(settings, "device", None) or "auto")
        torch_dtype = resolve_dtype(dtype or getattr(settings, "generation_dtype", None) or "auto", dev)
        model, tokenizer = load_pretrained(folder / HF_DIR, torch_dtype)
        if len(tokenizer) > model.config.vocab_size:
            log.warning("generator %s: its tokenizer has %d ids, the model embeds %d: prompts with the extra "
                        "tokens will be refused (resize the model's embeddings after adding tokens)",
                        folder.name, len(tokenizer), model.config.vocab_size)
        loaded = cls(folder.name, manifest, model.to(dev), tokenizer, dev, torch_dtype)
        if settings is not None:
            loaded.start_worker(settings)
        return loaded

    def start_worker(self, settings: Any) -> Any:
        """The engine thread that serves this model (made once)."""
        from ._service import GenerationWorker

        if self.worker is None:
            self.worker = GenerationWorker(
                self.model, self.tokenizer, device=str(self.device), max_slots=settings.generation_max_batch,
                max_queue=settings.generation_max_queue, max_input_tokens=settings.generation_max_input_tokens,
                max_total_tokens=settings.generation_max_total_tokens)
        return self.worker

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        m = self.manifest
        return {"name": self.name, "kind": self.kind, "created_at": m.created_at, "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch."), "architecture": cfg.model_type,
                "layers": cfg.n_layer, "heads": cfg.n_head, "embedding": cfg.n_embd, "positions": cfg.n_positions,
                "vocabulary": cfg.vocab_size, "parameters": int(sum(p.numel() for p in self.model.parameters())),
                "test_metrics": m.metrics.get("test"), "source": m.data.get("init") or m.data.get("source"),
                **({"engine": self.worker.stats, "limits": {
                    "max_batch": self.worker.engine.max_slots, "max_queue": self.worker.max_queue,
                    "max_input_tokens": self.worker.max_input_tokens,
                    "max_total_tokens": self.worker.max_total_tokens}} if self.worker else {})}


def save_generator(models_dir: Path, name: str, *, model: Any, tokenizer: Any, params: dict[str, Any],
                   data: dict[str, Any], metrics: dict[str, Any], overwrite: bool = False,
                   extra_files: dict[str, bytes] | None = None) -> Path:
    """Atomically write a generator artifact (``hf/`` holds model and tokenizer)."""
    with atomic_model_dir(models_dir, name, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp / HF_DIR)
        tokenizer.save_pretrained(tmp / HF_DIR)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        for rel, content in (extra_files or {}).items():
            (tmp / rel).write_bytes(content)
        manifest = Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data,
                            metrics={k: v for k, v in metrics.items() if k not in ("samples", "history")})
        write_manifest(tmp, manifest)
    return Path(models_dir) / name


def import_generator(source: str | Path, models_dir: Path, name: str, *, overwrite: bool = False) -> Path:
    """Save a pretrained causal LM (local folder, or a hub name such as ``gpt2`` or
    ``DeepESP/gpt2-spanish`` with internet) as a generator artifact."""
    model, tokenizer = load_pretrained(source)
    return save_generator(models_dir, name, model=model, tokenizer=tokenizer, params={}, data={"source": str(source)},
                          metrics={}, overwrite=overwrite)

