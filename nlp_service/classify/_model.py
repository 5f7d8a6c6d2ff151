"""The ``classifier`` model kind: a BoW baseline or a neural network (recurrent or CNN) behind one interface.

A model folder holds the backend's files (``bow/`` for a baseline; ``model.pt`` and ``vocab.txt``
for a neural network; fastText's ``model.bin``), ``split.json``, ``metrics.json`` and the manifest, whose ``extra`` says
the backend, the tokenizer, the classes, the task and the language.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..artifacts import ArtifactError, Manifest, atomic_model_dir, open_model_dir, reading, write_manifest
from ..config import device_for
from ..errors import InvalidInput
from ..text import Tokenizer
from ._baseline import BowClassifier
from ._params import RNNParams

if TYPE_CHECKING:
    from ..config import Settings
    from ._explain import TokenScore

KIND = "classifier"
FORMAT_VERSION = 1
BOW_DIR = "bow"


# A text already split by the model's tokenizer: what a prediction is made of. A tuple (never a list),
# so that ``predict`` tells it from a raw text.
Tokens = tuple[str, ...]


class Backend(Protocol):
    """What a classifier backend implements: probabilities over raw texts or over their tokens (the
    model's tokenizer's), and its own files."""

    backend: str
    device_name: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_proba_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    activation: list[float] | None = None  # for an :class:`ActivationOf` item: a score per token


@dataclass(frozen=True)
class ActivationOf:
    """An item of :meth:`ClassifierModel.predict` asking also for the class activation of each of
    these tokens (convolutional models): it rides the same micro-batches as plain predictions."""

    tokens: Tokens


@dataclass
class ClassifierModel:
    """A classifier: ``predict(texts)`` gives a label and class probabilities per text."""

    name: str
    manifest: Manifest
    classes: list[str]
    tokenizer: Tokenizer
    impl: Backend
    kind: str = KIND

    @property
    def backend(self) -> str:
        return self.impl.backend

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Settings | None = None, *,
             device: str | None = None) -> ClassifierModel:
        folder = Path(folder)
        manifest = open_model_dir(folder, manifest, KIND, FORMAT_VERSION)
        backend = manifest.extra.get("backend")
        with reading(folder, "classifier"):
            tokenizer = Tokenizer.from_dict(manifest.extra["tokenizer"])
            classes = list(manifest.extra["classes"])
            if backend == "bow":
                impl: Backend = BowClassifier.load(folder / BOW_DIR, manifest.params["bow"], tokenizer, classes)
            elif backend == "rnn":
                from ._rnn import RecurrentRuntime

                impl = RecurrentRuntime.load(folder, RNNParams(**manifest.params["rnn"]), tokenizer, len(classes),
                                             device_for(device, settings))
            elif backend == "fasttext":
                from ._fasttext import FastTextClassifier  # the optional extra: imported only for its models

                impl = FastTextClassifier.load(folder, classes, tokenizer)
            else:
                raise ArtifactError(f"{folder}: unknown classifier backend {backend!r}")
        return cls(folder.name, manifest, classes, tokenizer, impl)

    def save(self, models_dir: Path, *, overwrite: bool = False, extra_files: Mapping[str, bytes] | None = None
             ) -> Path:
        """Write the model atomically; ``extra_files`` (split, metrics, curves) go beside it."""
        with atomic_model_dir(models_dir, self.name, overwrite=overwrite) as tmp:
            self.impl.save(tmp / BOW_DIR if self.backend == "bow" else tmp)
            for rel, content in (extra_files or {}).items():
                (tmp / rel).write_bytes(content)
            write_manifest(tmp, self.manifest)
        return Path(models_dir) / self.name

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.impl.predict_proba(texts)

    @property
    def has_class_activation(self) -> bool:
        """Whether :meth:`class_activation` works: a convolutional network (``cell = "cnn"``)."""
        return bool(getattr(self.impl, "convolutional", False))

    def predict(self, items: Sequence[str | Tokens | ActivationOf]) -> list[Prediction]:
        """A prediction per item: a raw text, or a text already split into :data:`Tokens` (occlusion's
        variants, :mod:`._explain`); both kinds may share one batch, and one forward pass. An
        :class:`ActivationOf` item also gets its tokens' class activation (a second pass, for those only)."""
        raw = iter(self.tokenizer.tokenize_many([item for item in items if isinstance(item, str)]))
        out: list[Prediction | None] = [None] * len(items)
        plain = [i for i, item in enumerate(items) if not isinstance(item, ActivationOf)]
        if plain:
            token_lists = [item if isinstance(item, tuple) else next(raw) for item in (items[i] for i in plain)]
            for i, row in zip(plain, self.impl.predict_proba_tokens(token_lists), strict=True):
                out[i] = self._prediction(row)
        cam = [(i, item) for i, item in enumerate(items) if isinstance(item, ActivationOf)]
        if cam:
            if not self.has_class_activation:
                raise InvalidInput(f"{self.name}: class activation maps need a convolutional classifier "
                                   f"(cell 'cnn'); this one is {self._network()}: use occlusion")
            probs, maps = self.impl.class_activation_tokens([item.tokens for _, item in cam])  # type: ignore[attr-defined]
            for (i, _), row, scores in zip(cam, probs, maps, strict=True):
                out[i] = dataclasses.replace(self._prediction(row), activation=[float(x) for x in scores])
        return [p for p in out if p is not None]

    def class_activation(self, texts: Sequence[str]) -> list[tuple[Prediction, list[TokenScore]]]:
        """Each text's prediction and each token's class activation for the predicted label (CNN
        models; :meth:`~._rnn.ConvClassifier.class_activation` says how it is computed)."""
        from ._explain import activation_inputs, activation_scores

        spans = [self.tokenizer.spans(text) for text in texts]
        return [activation_scores(s, p) for s, p in zip(spans, self.predict(activation_inputs(spans)), strict=True)]

    def _prediction(self, row: np.ndarray) -> Prediction:
        return Prediction(self.classes[int(row.argmax())], {c: float(p) for c, p in zip(self.classes, row,
                                                                                         strict=True)})

    @property
    def architecture(self) -> str:
        """What the network is (``lstm``, ``gru``, ``rnn``, ``cnn``), or the backend for other classifiers:
        the neural backend (``rnn``, for the runtime it started with) serves every cell."""
        params = self.manifest.params
        return str(params["rnn"].get("cell")) if "rnn" in params else self.backend

    def _network(self) -> str:
        return f"cell {self.architecture!r}" if "rnn" in self.manifest.params else f"backend {self.backend!r}"

    def warm_up(self, settings: Settings | None = None) -> None:
        self.predict(["hola"])

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": self.name, "kind": self.kind, "backend": self.backend, "architecture": self.architecture,
            "task": m.extra.get("task"),
            "created_at": m.created_at, "classes": self.classes, "language": m.extra.get("language"),
            "device": self.impl.device_name, "params": m.params,
            "test_metrics": {k: m.metrics.get("test", {}).get(k) for k in ("accuracy", "macro_f1")},
        }


def classifier_manifest(name: str, impl: Backend, *, tokenizer: Tokenizer, classes: list[str],
                        params: dict[str, Any], data: dict[str, Any], metrics: dict[str, Any], task: str,
                        language: str | None) -> Manifest:
    return Manifest(name=name, kind=KIND, format_version=FORMAT_VERSION, params=params, data=data, metrics=metrics,
                    extra={"backend": impl.backend, "tokenizer": tokenizer.to_dict(), "classes": classes,
                           "task": task, "language": language})


def tokenizer_for_classification(language: str | None = None) -> Tokenizer:
    """spaCy's rules for ``language`` (default Spanish); punctuation carries sentiment, so it stays."""
    return Tokenizer(language=language or "es", lowercase=True, keep_punct=True)
