"""The ``generator`` model kind: a GPT-2-family causal LM saved with ``save_pretrained`` (model and
tokenizer) in ``hf/`` inside a model folder, served by the engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, json_bytes, open_model_dir, write_manifest
from ..config import device_for
from ..hub import checkpoint_files
from ..torch_utils import count_parameters
from ._params import SamplingParams, first_stop

if TYPE_CHECKING:
    from ..config import Settings
    from ._engine import GPT2Engine

log = logging.getLogger("nlp_service.generate")

KIND = "generator"
FORMAT_VERSION = 1
HF_DIR = "hf"
_WHAT = "a causal language model"  # what the errors of loading one call it
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
    """Model and tokenizer from a ``save_pretrained`` folder, or a Hugging Face Hub name (``owner/name``,
    ``@revision`` to pin one) through :mod:`nlp_service.hub` (its cache; offline, from it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = checkpoint_files(source, what=_WHAT).path
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load {_WHAT} from {str(source)!r}: {exc}") from exc
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
    # generate()'s own engine (one slot), made on first use; the lock keeps two threads out of it.
    _engine: GPT2Engine | None = field(default=None, init=False, repr=False, compare=False)
    _engine_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

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

    def generate(self, prompt: str, **sampling: Any) -> str:
        """The continuation of ``prompt`` (without the prompt), from the service's decode engine: greedy unless
        ``do_sample=True``; the keywords are :class:`~nlp_service.generate.SamplingParams`' (``max_new_tokens``,
        ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``seed``, ``stop``: one
        string or several, ...). The text ends before the first stop sequence found, as ``/v1/generate`` ends it;
        the same seed gives the same text. Prompt + ``max_new_tokens`` must fit the model's positions (a
        ValueError says so)."""
        if "stop" in sampling:  # one stop sequence, or several
            stop = sampling["stop"]
            sampling["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        params = SamplingParams(**sampling)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with self._engine_lock:
            if self._engine is None:
                from ._engine import GPT2Engine

                self._engine = GPT2Engine(self.model, max_slots=1, device=str(self.device))
            engine = self._engine
            request = engine.add(ids, params)
            try:
                while not request.finished:
                    engine.step()
                    # With stop sequences the text is checked after every token, as the service does (the
                    # earliest to appear ends it), and generation stops there.
                    cut = first_stop(self._text(request.output), params.stop) if params.stop else None
                    if cut is not None:
                        engine.cancel(request)
                        engine.step()  # retires it: the slot is free for the next call
                        return self._text(request.output)[:cut]
            except BaseException:
                engine.fail_all()  # an interrupted or failed step leaves nothing behind in the engine
                raise
        return self._text(request.output)

    def _text(self, ids: Sequence[int]) -> str:
        # As the service's detokenizer: special tokens (end-of-text) dropped, spaces left as they are.
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

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


def import_generator(source: str | Path, models_dir: Path, name: str, *, revision: str | None = None,
                     overwrite: bool = False) -> Path:
    """Save a pretrained causal LM (a ``save_pretrained`` folder, or a Hugging Face Hub name such as
    ``DeepESP/gpt2-spanish``, ``@revision`` or ``revision`` to pin one) as a generator model; the manifest's
    ``data`` says where it came from (a Hub model: repository and commit)."""
    files = checkpoint_files(source, revision=revision, what=_WHAT)
    model, tokenizer = load_pretrained(files.path)
    return save_generator(models_dir, name, model=model, tokenizer=tokenizer, data=files.provenance,
                          overwrite=overwrite)
