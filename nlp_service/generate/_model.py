"""The ``generator`` model kind: a GPT-2-family causal LM saved with ``save_pretrained`` (model and
tokenizer) in ``hf/`` inside a model folder, served by the engine."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, json_bytes, open_model_dir, write_manifest
from ..config import device_for
from ..torch_utils import count_parameters

if TYPE_CHECKING:
    from ..config import Settings

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
    """A GPT-2-family causal language model and its tokenizer, on the device it runs on. The service's
    generation worker (``nlp_service.serving``) serves it through :class:`~nlp_service.generate.GPT2Engine`."""

    name: str
    manifest: Manifest
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    kind: str = KIND

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Settings | None = None, *,
             device: str | None = None, dtype: str | None = None) -> GeneratorModel:
        from ..torch_utils import pick_device

        folder = Path(folder)
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        dev = pick_device(device_for(device, settings))
        torch_dtype = resolve_dtype(dtype or (settings.generation_dtype if settings is not None else "auto"), dev)
        model, tokenizer = load_pretrained(folder / HF_DIR, torch_dtype)
        if len(tokenizer) > model.config.vocab_size:
            log.warning("generator %s: its tokenizer has %d ids, the model embeds %d: prompts with the extra "
                        "tokens will be refused (resize the model's embeddings after adding tokens)",
                        folder.name, len(tokenizer), model.config.vocab_size)
        return cls(folder.name, manifest, model.to(dev), tokenizer, dev, torch_dtype)

    def save(self, models_dir: Path, *, overwrite: bool = False, extra_files: Mapping[str, bytes] | None = None
             ) -> Path:
        """Write the model atomically: ``hf/`` holds model and tokenizer (``save_pretrained``, so transformers
        reads it too), in float32 whatever the serving precision."""
        # A float32 copy on the CPU (tied weights stay one tensor): saving leaves the model where it is,
        # in the precision it runs in.
        copies: dict[int, torch.Tensor] = {}
        state = {k: copies.setdefault(v.data_ptr(), v.detach().to("cpu", torch.float32))
                 for k, v in self.model.state_dict().items()}
        with atomic_model_dir(models_dir, self.name, overwrite=overwrite) as tmp:
            self.model.save_pretrained(tmp / HF_DIR, state_dict=state)
            self.tokenizer.save_pretrained(tmp / HF_DIR)
            for rel, content in (extra_files or {}).items():
                (tmp / rel).write_bytes(content)
            write_manifest(tmp, self.manifest)
        return Path(models_dir) / self.name

    def warm_up(self, settings: Settings | None = None) -> None:
        pass  # the generation worker captures its graphs and allocates its cache when it starts

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        m = self.manifest
        return {"name": self.name, "kind": self.kind, "created_at": m.created_at, "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch."), "architecture": cfg.model_type,
                "layers": cfg.n_layer, "heads": cfg.n_head, "embedding": cfg.n_embd, "positions": cfg.n_positions,
                "vocabulary": cfg.vocab_size, "parameters": count_parameters(self.model),
                "test_metrics": m.metrics.get("test"), "source": m.data.get("init") or m.data.get("source")}


def generator_manifest(name: str, *, params: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any]
                       ) -> Manifest:
    return Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data,
                    metrics={k: v for k, v in metrics.items() if k not in ("samples", "history")})


def save_generator(models_dir: Path, name: str, *, model: Any, tokenizer: Any, params: dict[str, Any] | None = None,
                   data: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                   overwrite: bool = False) -> Path:
    """Save a transformers causal LM and its tokenizer as a generator model (``metrics.json`` beside it)."""
    metrics = metrics or {}
    manifest = generator_manifest(name, params=params or {}, data=data or {}, metrics=metrics)
    loaded = GeneratorModel(name, manifest, model, tokenizer, next(model.parameters()).device, torch.float32)
    return loaded.save(models_dir, overwrite=overwrite, extra_files={"metrics.json": json_bytes(metrics)})


def import_generator(source: str | Path, models_dir: Path, name: str, *, overwrite: bool = False) -> Path:
    """Save a pretrained causal LM (local folder, or a hub name such as ``gpt2`` or
    ``DeepESP/gpt2-spanish`` with internet) as a generator model."""
    model, tokenizer = load_pretrained(source)
    return save_generator(models_dir, name, model=model, tokenizer=tokenizer, data={"source": str(source)},
                          overwrite=overwrite)
