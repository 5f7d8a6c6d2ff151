"""The ``translator`` model kind: our seq2seq network, or a pretrained Marian model (transformers),
behind one interface: ``translate(texts, beam_size=...)``."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, write_manifest

KIND = "translator"
FORMAT_VERSION = 1
DEFAULT_BEAM = 5
DEFAULT_ALPHA = 0.6


class InputTooLong(ValueError):
    """A text has more subword pieces than the model accepts."""

    def __init__(self, index: int, pieces: int, limit: int) -> None:
        super().__init__(f"texts[{index}] has {pieces} subword pieces (at most {limit})")
        self.index, self.pieces, self.limit = index, pieces, limit


@dataclass(frozen=True)
class TranslationRequest:
    """One text and its decoding options: the item type of the service's micro-batcher."""

    text: str
    beam_size: int = DEFAULT_BEAM
    max_length: int | None = None
    length_penalty: float = DEFAULT_ALPHA


@dataclass
class TranslatorModel:
    name: str
    manifest: Manifest
    backend: str  # "seq2seq" | "marian"
    source_lang: str
    target_lang: str
    impl: Any
    kind: str = KIND
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Any = None, *,
             device: str | None = None) -> TranslatorModel:
        folder = Path(folder)
        device = device or getattr(settings, "device", None) or "auto"
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        backend = manifest.extra.get("backend")
        try:
            if backend == "seq2seq":
                impl: Any = _Seq2SeqRuntime.load(folder, manifest, device)
            elif backend == "marian":
                impl = _MarianRuntime.load(folder / "hf", device)
            else:
                raise ArtifactError(f"{folder}: unknown translator backend {backend!r}")
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
            raise ArtifactError(f"cannot load translator {folder.name}: {exc}") from exc
        return cls(folder.name, manifest, backend, manifest.extra["source_lang"], manifest.extra["target_lang"], impl)

    @property
    def max_source_tokens(self) -> int:
        return self.impl.max_source_tokens

    def check_lengths(self, texts: Sequence[str]) -> None:
        """Raise :class:`InputTooLong` for the first text the model cannot take whole."""
        for i, n in enumerate(self.impl.count(texts)):
            if n > self.impl.max_source_tokens:
                raise InputTooLong(i, n, self.impl.max_source_tokens)

    def translate(self, texts: Sequence[str], *, beam_size: int = DEFAULT_BEAM, max_length: int | None = None,
                  length_penalty: float = DEFAULT_ALPHA) -> list[str]:
        """Translations of ``texts``. ``length_penalty`` is GNMT's alpha: 0 ranks beam hypotheses by
        total log-probability (favours short ones), higher values favour longer ones."""
        texts = [" ".join(t.split()) for t in texts]
        return self.impl.translate(texts, beam_size=beam_size, max_length=max_length, alpha=length_penalty)

    def predict(self, items: Sequence[TranslationRequest]) -> list[str]:
        """Translate items with possibly different options, batching those that share them."""
        out: list[str] = [""] * len(items)
        groups: dict[tuple[int, int | None, float], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.beam_size, item.max_length, item.length_penalty), []).append(i)
        for (beam, max_length, alpha), rows in groups.items():
            for r, text in zip(rows, self.translate([items[r].text for r in rows], beam_size=beam,
                                                    max_length=max_length, length_penalty=alpha), strict=True):
                out[r] = text
        return out

    def warm_up(self, settings: Any) -> None:
        self.translate(["hola"], beam_size=2)

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        test = m.metrics.get("test", {})
        return {
            "name": self.name, "kind": self.kind, "backend": self.backend, "source": self.source_lang,
            "target": self.target_lang, "created_at": m.created_at, "device": self.impl.device_name,
            "max_source_tokens": self.impl.max_source_tokens, "params": m.params,
            "test_metrics": {k: test.get(k) for k in ("bleu", "chrf", "sentences")} if test else None,
        }


class _Seq2SeqRuntime:
    def __init__(self, model: Any, source: Any, target: Any, params: Any, device: Any) -> None:
        self.model, self.source, self.target, self.params, self.device = model, source, target, params, device
        self.device_name = str(device)
        self.max_source_tokens = params.max_source_tokens

    @classmethod
    def load(cls, folder: Path, manifest: Manifest, device: str) -> _Seq2SeqRuntime:
        import torch

        from ..torch_utils import pick_device
        from ._seq2seq import Seq2Seq, Seq2SeqParams
        from ._subwords import Subwords

        params = Seq2SeqParams(**manifest.params["seq2seq"])
        source = Subwords.load(folder / "source_subwords.json")
        target = Subwords.load(folder / "target_subwords.json")
        dev = pick_device(device)
        model = Seq2Seq(len(source), len(target), params, share_embeddings=bool(manifest.extra.get("share_embeddings")))
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.to(dev).eval()
        return cls(model, source, target, params, dev)

    def count(self, texts: Sequence[str]) -> list[int]:
        return self.source.count(texts)

    def translate(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                  ) -> list[str]:
        from ._seq2seq import decode_many

        encoded = self.source.encode(texts, self.max_source_tokens)
        pieces = decode_many(self.model, encoded, beam_size=beam_size, max_length=max_length, alpha=alpha,
                             device=self.device)
        return self.target.decode(pieces)


class _MarianRuntime:
    """A transformers ``MarianMTModel`` saved with ``save_pretrained`` (model and tokenizer)."""

    def __init__(self, model: Any, tokenizer: Any, device: Any) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.device_name = str(device)
        self.max_source_tokens = int(min(getattr(tokenizer, "model_max_length", 512) or 512,
                                         model.config.max_position_embeddings))

    @classmethod
    def load(cls, folder: Path, device: str) -> _MarianRuntime:
        from transformers import AutoTokenizer, MarianMTModel

        from ..torch_utils import pick_device

        dev = pick_device(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = MarianMTModel.from_pretrained(folder).to(dev).eval()
        return cls(model, tokenizer, dev)

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    def translate(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                  ) -> list[str]:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [""] * len(texts)
        step = max(1, 64 // beam_size)
        for lo in range(0, len(order), step):
            rows = order[lo : lo + step]
            batch = self.tokenizer([texts[r] for r in rows], return_tensors="pt", padding=True, truncation=True,
                                   max_length=self.max_source_tokens).to(self.device)
            # generate() has one length cap per batch; batches hold texts of similar length.
            limit = max_length or int(2 * batch["input_ids"].shape[1] + 10)
            with torch.inference_mode():
                generated = self.model.generate(**batch, num_beams=beam_size, max_new_tokens=limit,
                                                do_sample=False, length_penalty=alpha)
            for r, text in zip(rows, self.tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
                out[r] = text.strip()
        return out


def save_translator(
    models_dir: Path, name: str, *, backend: str, source_lang: str, target_lang: str, params: dict[str, Any],
    data: dict[str, Any], metrics: dict[str, Any], write_files: Callable[[Path], None],
    extra: dict[str, Any] | None = None, overwrite: bool = False,
) -> Path:
    """Atomically write a translator artifact; ``write_files(folder)`` writes the backend's files."""
    with atomic_model_dir(models_dir, name, overwrite=overwrite) as tmp:
        write_files(tmp)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        manifest = Manifest(
            name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data,
            metrics={k: v for k, v in metrics.items() if k not in ("samples", "history")},
            extra={"backend": backend, "source_lang": source_lang, "target_lang": target_lang, **(extra or {})},
        )
        write_manifest(tmp, manifest)
    return Path(models_dir) / name


def import_marian(source: str | Path, models_dir: Path, name: str, *, source_lang: str, target_lang: str,
                  overwrite: bool = False) -> Path:
    """Save a Marian model (a local ``save_pretrained`` folder, or a hub name such as
    ``Helsinki-NLP/opus-mt-es-en`` when there is internet) as a translator artifact."""
    from transformers import AutoTokenizer, MarianMTModel

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = MarianMTModel.from_pretrained(str(source))
    except OSError as exc:
        raise ArtifactError(f"cannot load a Marian model from {source!r}: {exc}") from exc

    def write(folder: Path) -> None:
        model.save_pretrained(folder / "hf")
        tokenizer.save_pretrained(folder / "hf")

    config = model.config.to_dict()
    params = {"marian": {k: config.get(k) for k in ("d_model", "encoder_layers", "decoder_layers", "vocab_size",
                                                     "max_position_embeddings")}}
    return save_translator(models_dir, name, backend="marian", source_lang=source_lang, target_lang=target_lang,
                           params=params, data={"source": str(source)}, metrics={}, write_files=write,
                           overwrite=overwrite)


def seq2seq_files(model: Any, source: Any, target: Any) -> Callable[[Path], None]:
    """The ``write_files`` of a trained seq2seq network and its two subword vocabularies."""
    import torch

    def write(folder: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / "model.pt")
        source.save(folder / "source_subwords.json")
        target.save(folder / "target_subwords.json")

    return write


__all__ = ["KIND", "InputTooLong", "TranslationRequest", "TranslatorModel", "import_marian", "save_translator",
           "seq2seq_files"]
