"""The ``classifier`` model kind: a BoW baseline or a recurrent network behind one interface."""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, write_manifest
from ..text import Tokenizer
from ._baseline import BowClassifier

KIND = "classifier"
FORMAT_VERSION = 1


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]


@dataclass
class ClassifierModel:
    """A loaded classifier: ``predict(texts)`` gives a label and class probabilities per text."""

    name: str
    manifest: Manifest
    backend: str  # "bow" | "rnn"
    classes: list[str]
    tokenizer: Tokenizer
    impl: Any
    kind: str = KIND
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Any = None, *,
             device: str | None = None) -> ClassifierModel:
        folder = Path(folder)
        device = device or getattr(settings, "device", None) or "auto"
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        backend = manifest.extra.get("backend")
        tokenizer = Tokenizer.from_dict(manifest.extra["tokenizer"])
        classes = list(manifest.extra["classes"])
        try:
            if backend == "bow":
                impl: Any = BowClassifier.load(folder / "bow", manifest.params["bow"], tokenizer, classes)
            elif backend == "rnn":
                impl = _RNNRuntime.load(folder, manifest, tokenizer, classes, device)
            else:
                raise ArtifactError(f"{folder}: unknown classifier backend {backend!r}")
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
            raise ArtifactError(f"cannot load classifier {folder.name}: {exc}") from exc
        return cls(folder.name, manifest, backend, classes, tokenizer, impl)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.impl.predict_proba(texts)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        probs = self.predict_proba(texts)
        return [Prediction(self.classes[int(row.argmax())], {c: float(p) for c, p in zip(self.classes, row,
                                                                                         strict=True)})
                for row in probs]

    def warm_up(self, settings: Any) -> None:
        self.predict(["hola"])

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": self.name, "kind": self.kind, "backend": self.backend, "task": m.extra.get("task"),
            "created_at": m.created_at, "classes": self.classes, "language": m.extra.get("language"),
            "device": getattr(self.impl, "device_name", "cpu"), "params": m.params,
            "test_metrics": {k: m.metrics.get("test", {}).get(k) for k in ("accuracy", "macro_f1")},
        }


class _RNNRuntime:
    """Inference wrapper of a saved recurrent classifier."""

    def __init__(self, model: Any, vocab: Any, params: Any, tokenizer: Tokenizer, device: Any) -> None:
        self.model, self.vocab, self.params, self.tokenizer, self.device = model, vocab, params, tokenizer, device
        self.device_name = str(device)

    @classmethod
    def load(cls, folder: Path, manifest: Manifest, tokenizer: Tokenizer, classes: list[str], device: str
             ) -> _RNNRuntime:
        from .rnn import RNNParams, Vocabulary, load_weights, pick_device

        params = RNNParams(**manifest.params["rnn"])
        vocab = Vocabulary((folder / "vocab.txt").read_text(encoding="utf-8").split("\n"))
        dev = pick_device(device)
        model = load_weights(folder / "model.pt", len(vocab), len(classes), params, dev)
        return cls(model, vocab, params, tokenizer, dev)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        from .rnn import predict_proba

        encoded = [self.vocab.encode(t, self.params.max_length) for t in self.tokenizer.tokenize_many(texts)]
        return predict_proba(self.model, encoded, device=self.device)


def save_classifier(
    models_dir: Path, name: str, *, backend: str, tokenizer: Tokenizer, classes: list[str],
    params: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any], split: dict[str, Any],
    write_files: Any, task: str = "classification", language: str | None = None, overwrite: bool = False,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Atomically write a classifier artifact; ``write_files(folder)`` writes the backend's weights."""
    with atomic_model_dir(models_dir, name, overwrite=overwrite) as tmp:
        write_files(tmp)
        (tmp / "split.json").write_text(json.dumps(split), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        for rel, content in (extra_files or {}).items():
            (tmp / rel).write_bytes(content)
        manifest = Manifest(
            name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data, metrics=metrics,
            extra={"backend": backend, "tokenizer": tokenizer.to_dict(), "classes": classes, "task": task,
                   "language": language},
        )
        write_manifest(tmp, manifest)
    return Path(models_dir) / name


def tokenizer_for_classification(language: str | None = None) -> Tokenizer:
    """spaCy's rules for ``language`` (default Spanish); punctuation carries sentiment, so it stays."""
    return Tokenizer(language=language or "es", lowercase=True, keep_punct=True)



