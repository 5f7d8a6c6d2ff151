"""The ``translator`` model kind: our seq2seq network, or a pretrained Marian model (transformers),
behind one interface: ``translate(texts, beam_size=...)``.

A seq2seq model folder holds ``model.pt`` (a ``state_dict``, read with ``weights_only=True``) and its
two subword vocabularies; a Marian one holds ``hf/`` (``save_pretrained``). The manifest's ``extra``
says the backend and the languages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, reading, write_manifest
from ..config import device_for
from ..errors import InvalidInput, LimitExceeded
from ..hub import checkpoint_files
from ..options import default_of
from ._params import DecodeOptions, Seq2SeqParams

if TYPE_CHECKING:
    from ..config import Settings

KIND = "translator"
FORMAT_VERSION = 1
HF_DIR = "hf"
WEIGHTS_FILE, SOURCE_FILE, TARGET_FILE = "model.pt", "source_subwords.json", "target_subwords.json"


class InputTooLong(LimitExceeded):
    """A text has more subword pieces than the model accepts."""

    def __init__(self, index: int, pieces: int, limit: int) -> None:
        super().__init__(f"texts[{index}] has {pieces} subword pieces (at most {limit}); split long texts into "
                         "sentences", limit=limit, got=pieces, index=index, pieces=pieces)  # `pieces`: as before


class AttentionNotSupported(InvalidInput):
    """Attention weights were asked of a translator that does not give them (a Marian model)."""

    code = "attention_not_supported"


@dataclass(frozen=True)
class TranslationRequest:
    """One text, its decoding options, and whether to return the attention: the item type of the service's
    micro-batcher."""

    text: str
    options: DecodeOptions = dataclasses.field(default_factory=DecodeOptions)
    attention: bool = False


@dataclass(frozen=True)
class AttentionMap:
    """Where the decoder looked: ``weights[t][s]`` is the attention of target piece t on source piece s
    (each row sums to 1). Pieces are the subword vocabularies' (``▁`` marks a space before a piece); the
    source ends with ``</s>``, and so does the target when the translation ended (was not cut at its
    length limit)."""

    source_tokens: list[str]
    target_tokens: list[str]
    weights: list[list[float]]


@dataclass(frozen=True)
class Translation:
    """A translation, with its :class:`AttentionMap` when it was asked for."""

    text: str
    attention: AttentionMap | None = None


class Runtime(Protocol):
    """What a translator backend implements: decoding, length counting, and its own files."""

    backend: str
    device_name: str
    max_source_tokens: int
    gives_attention: bool

    def count(self, texts: Sequence[str]) -> list[int]: ...

    def translate(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                  ) -> list[str]: ...

    def translate_attended(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                           ) -> list[Translation]:
        """Translations with their attention; :class:`AttentionNotSupported` from a backend without."""
        ...

    def save(self, folder: Path) -> None: ...


@dataclass
class TranslatorModel:
    name: str
    manifest: Manifest
    source_lang: str
    target_lang: str
    impl: Runtime
    kind: str = KIND

    @property
    def backend(self) -> str:
        return self.impl.backend

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Settings | None = None, *,
             device: str | None = None) -> TranslatorModel:
        folder = Path(folder)
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        backend = manifest.extra.get("backend")
        with reading(folder, "translator"):
            if backend == "seq2seq":
                impl: Runtime = Seq2SeqRuntime.load(folder, manifest, device_for(device, settings))
            elif backend == "marian":
                impl = MarianRuntime.load(folder / HF_DIR, device_for(device, settings))
            else:
                raise ArtifactError(f"{folder}: unknown translator backend {backend!r}")
        return cls(folder.name, manifest, manifest.extra["source_lang"], manifest.extra["target_lang"], impl)

    def save(self, models_dir: Path, *, overwrite: bool = False, extra_files: Mapping[str, bytes] | None = None
             ) -> Path:
        """Write the model atomically; ``extra_files`` (metrics, split, test pairs, curves) go beside it."""
        self.manifest.extra.update({"backend": self.backend, "source_lang": self.source_lang,
                                    "target_lang": self.target_lang})
        with atomic_model_dir(models_dir, self.name, overwrite=overwrite) as tmp:
            self.impl.save(tmp)
            for rel, content in (extra_files or {}).items():
                (tmp / rel).write_bytes(content)
            write_manifest(tmp, self.manifest)
        return Path(models_dir) / self.name

    @property
    def max_source_tokens(self) -> int:
        return self.impl.max_source_tokens

    def check_lengths(self, texts: Sequence[str]) -> list[int]:
        """The texts' lengths in subword pieces; :class:`InputTooLong` for the first text the model cannot
        take whole."""
        counts = self.impl.count(texts)
        for i, n in enumerate(counts):
            if n > self.impl.max_source_tokens:
                raise InputTooLong(i, n, self.impl.max_source_tokens)
        return counts

    def translate(self, texts: Sequence[str], *, beam_size: int = default_of(DecodeOptions, "beam_size"),
                  max_length: int | None = None, length_penalty: float = default_of(DecodeOptions, "length_penalty")
                  ) -> list[str]:
        """Translations of ``texts``. ``length_penalty`` is GNMT's alpha: 0 ranks beam hypotheses by
        total log-probability (favours short ones), higher values favour longer ones."""
        texts = [" ".join(t.split()) for t in texts]
        return self.impl.translate(texts, beam_size=beam_size, max_length=max_length, alpha=length_penalty)

    def check_attention(self) -> None:
        """:class:`AttentionNotSupported` unless this translator can give its attention weights."""
        if not self.impl.gives_attention:
            raise AttentionNotSupported(f"model {self.name!r} ({self.backend}) does not give attention weights; "
                                        "only seq2seq translators do", model=self.name, backend=self.backend)

    def translate_attended(self, texts: Sequence[str], *,
                           beam_size: int = default_of(DecodeOptions, "beam_size"), max_length: int | None = None,
                           length_penalty: float = default_of(DecodeOptions, "length_penalty")
                           ) -> list[Translation]:
        """:meth:`translate` with each translation's :class:`AttentionMap` (the same texts as without)."""
        self.check_attention()
        texts = [" ".join(t.split()) for t in texts]
        return self.impl.translate_attended(texts, beam_size=beam_size, max_length=max_length, alpha=length_penalty)

    def predict(self, items: Sequence[TranslationRequest]) -> list[Translation]:
        """Translate items with possibly different options, batching those that share them."""
        out: list[Translation] = [Translation("")] * len(items)
        groups: dict[tuple[DecodeOptions, bool], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.options, item.attention), []).append(i)
        for (options, attention), rows in groups.items():
            texts = [items[r].text for r in rows]
            kwargs: dict[str, Any] = {"beam_size": options.beam_size, "max_length": options.max_length,
                                      "length_penalty": options.length_penalty}
            translations = (self.translate_attended(texts, **kwargs) if attention
                            else [Translation(t) for t in self.translate(texts, **kwargs)])
            for r, translation in zip(rows, translations, strict=True):
                out[r] = translation
        return out

    def warm_up(self, settings: Settings | None = None) -> None:
        self.translate(["hola"], beam_size=2)

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        test = m.metrics.get("test", {})
        return {
            "name": self.name, "kind": self.kind, "backend": self.backend, "source": self.source_lang,
            "target": self.target_lang, "created_at": m.created_at, "device": self.impl.device_name,
            "max_source_tokens": self.impl.max_source_tokens, "params": m.params,
            "test_metrics": {k: test.get(k) for k in ("bleu", "chrf", "sentences")} if test else None,
        }


class Seq2SeqRuntime:
    """Our encoder-decoder with its two subword vocabularies."""

    backend = "seq2seq"
    gives_attention = True

    def __init__(self, model: Any, source: Any, target: Any, params: Seq2SeqParams) -> None:
        self.model, self.source, self.target, self.params = model, source, target, params
        self.device = next(model.parameters()).device
        self.device_name = str(self.device)
        self.max_source_tokens = params.max_source_tokens

    @classmethod
    def load(cls, folder: Path, manifest: Manifest, device: str) -> Seq2SeqRuntime:
        import torch

        from ..torch_utils import pick_device
        from ._seq2seq import Seq2Seq
        from ._subwords import Subwords

        params = Seq2SeqParams(**manifest.params["seq2seq"])
        source = Subwords.load(folder / SOURCE_FILE)
        target = Subwords.load(folder / TARGET_FILE)
        model = Seq2Seq(len(source), len(target), params, share_embeddings=bool(manifest.extra.get("share_embeddings")))
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        model.to(pick_device(device)).eval()
        return cls(model, source, target, params)

    def save(self, folder: Path) -> None:
        import torch

        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, folder / WEIGHTS_FILE)
        self.source.save(folder / SOURCE_FILE)
        self.target.save(folder / TARGET_FILE)

    def count(self, texts: Sequence[str]) -> list[int]:
        return self.source.count(texts)

    def translate(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                  ) -> list[str]:
        from ._seq2seq import decode_many

        encoded = self.source.encode(texts, self.max_source_tokens)
        pieces = decode_many(self.model, encoded, beam_size=beam_size, max_length=max_length, alpha=alpha,
                             device=self.device)
        return self.target.decode(pieces)

    def translate_attended(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                           ) -> list[Translation]:
        from ._seq2seq import attention_of, decode_many
        from ._subwords import EOS

        encoded = self.source.encode(texts, self.max_source_tokens)
        pieces = decode_many(self.model, encoded, beam_size=beam_size, max_length=max_length, alpha=alpha,
                             device=self.device)
        limits = DecodeOptions(max_length=max_length)
        out = []
        for source, output, text in zip(encoded, pieces, self.target.decode(pieces), strict=True):
            # Shorter than its limit: the search ended it with </s>, which had its own attention step.
            target = [*output, EOS] if len(output) < limits.length_limit(len(source)) else output
            weights = attention_of(self.model, source, target, device=self.device)
            out.append(Translation(text, AttentionMap(self.source.pieces(source), self.target.pieces(target),
                                                      weights.tolist())))
        return out


class MarianRuntime:
    """A transformers ``MarianMTModel`` with its tokenizer (``save_pretrained`` form)."""

    backend = "marian"
    gives_attention = False  # generate() could return them (output_attentions); not served: see README

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.device_name = str(self.device)
        self.max_source_tokens = int(min(getattr(tokenizer, "model_max_length", 512) or 512,
                                         model.config.max_position_embeddings))

    @classmethod
    def load(cls, folder: Path, device: str) -> MarianRuntime:
        from transformers import AutoTokenizer, MarianMTModel

        from ..torch_utils import pick_device

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = MarianMTModel.from_pretrained(folder).to(pick_device(device)).eval()
        return cls(model, tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> MarianRuntime:
        """From a ``save_pretrained`` folder (a Hugging Face Hub model: :func:`nlp_service.hub.checkpoint_files`
        gives its folder in the cache)."""
        from transformers import AutoTokenizer, MarianMTModel

        try:
            return cls(MarianMTModel.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load a Marian model from {str(folder)!r}: {exc}") from exc

    def translate_attended(self, texts: Sequence[str], *, beam_size: int, max_length: int | None, alpha: float
                           ) -> list[Translation]:
        raise AttentionNotSupported("Marian translators do not give attention weights", backend=self.backend)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder / HF_DIR)
        self.tokenizer.save_pretrained(folder / HF_DIR)

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
            limit = DecodeOptions(max_length=max_length).length_limit(int(batch["input_ids"].shape[1]))
            with torch.inference_mode():
                generated = self.model.generate(**batch, num_beams=beam_size, max_new_tokens=limit,
                                                do_sample=False, length_penalty=alpha)
            for r, text in zip(rows, self.tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
                out[r] = text.strip()
        return out


def translator_manifest(name: str, *, params: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any],
                        extra: dict[str, Any] | None = None) -> Manifest:
    return Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data,
                    metrics={k: v for k, v in metrics.items() if k not in ("samples", "history")},
                    extra=dict(extra or {}))


def import_marian(source: str | Path, models_dir: Path, name: str, *, source_lang: str, target_lang: str,
                  revision: str | None = None, overwrite: bool = False) -> Path:
    """Save a Marian model (a local ``save_pretrained`` folder, or a Hugging Face Hub name such as
    ``Helsinki-NLP/opus-mt-es-en``, ``@revision`` or ``revision`` to pin one) as a translator; the manifest's
    ``data`` says where it came from (a Hub model: repository and commit)."""
    files = checkpoint_files(source, revision=revision, what="a Marian model")
    impl = MarianRuntime.from_pretrained(files.path)
    config = impl.model.config.to_dict()
    params = {"marian": {k: config.get(k) for k in ("d_model", "encoder_layers", "decoder_layers", "vocab_size",
                                                     "max_position_embeddings")}}
    manifest = translator_manifest(name, params=params, data=files.provenance, metrics={})
    return TranslatorModel(name, manifest, source_lang, target_lang, impl).save(models_dir, overwrite=overwrite)
