"""Model kinds and training commands, found by name.

A manifest's ``kind`` says which class opens a model folder; ``nlp-service train <command>`` finds
its :class:`~nlp_service.training.Trainer` here. Built-ins are imported lazily by module path, so
loading a generation model never imports gensim or spaCy. A new kind plugs in with
:func:`register_kind` (and :func:`register_trainer`) without touching the service core.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .artifacts import ArtifactError, Manifest, read_manifest

if TYPE_CHECKING:
    from .config import Settings
    from .training import Trainer


class Model(Protocol):
    """What every model kind implements; the serving layer relies on nothing else.

    A kind owns its on-disk format both ways: :meth:`load` reads what :meth:`save` writes.
    """

    name: str
    kind: str
    manifest: Manifest

    @classmethod
    def load(cls, folder: Path, manifest: Manifest | None = None, settings: Settings | None = None) -> Model: ...

    def save(self, models_dir: Path, *, overwrite: bool = False,
             extra_files: Mapping[str, bytes] | None = None) -> Path:
        """Write the model as ``models_dir/<name>`` atomically (plus ``extra_files``: reports, curves)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` shows of it."""
        ...

    def warm_up(self, settings: Settings | None) -> None:
        """Pay one-off costs (imports, index loads, first forward pass) before the first request."""
        ...

    def close(self) -> None:
        """Release what the model holds beyond memory (threads, files)."""
        ...


@runtime_checkable
class BatchPredictor(Protocol):
    """A model whose requests are micro-batched: one result per item, in order."""

    def predict(self, items: Sequence[Any]) -> list[Any]: ...


_BUILTIN_KINDS: dict[str, str] = {
    "vectors": "nlp_service.vectors:VectorsModel",
    "classifier": "nlp_service.classify:ClassifierModel",
    "translator": "nlp_service.translate:TranslatorModel",
    "generator": "nlp_service.generate:GeneratorModel",
}
_BUILTIN_TRAINERS: dict[str, str] = {
    "word2vec": "nlp_service.vectors:WORD2VEC_TRAINER",
    "fasttext": "nlp_service.vectors:FASTTEXT_TRAINER",
    "bow": "nlp_service.classify:BOW_TRAINER",
    "neural": "nlp_service.classify:RECURRENT_TRAINER",
    "rnn": "nlp_service.classify:RECURRENT_TRAINER",  # the alias `neural` had before it also meant CNNs
    "fasttext-classifier": "nlp_service.classify:FASTTEXT_CLASSIFIER_TRAINER",
    "translator": "nlp_service.translate:TRANSLATOR_TRAINER",
    "gpt2": "nlp_service.generate:GPT2_TRAINER",
}
_KINDS: dict[str, type[Model]] = {}
_TRAINERS: dict[str, Trainer] = {}


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def register_kind(kind: str, model_class: type[Model]) -> None:
    """Open models whose manifest says ``kind`` with ``model_class.load``."""
    _KINDS[kind] = model_class


def register_trainer(trainer: Trainer) -> None:
    """Make ``nlp-service train <trainer.command>`` (and its aliases, and default-model configs) find
    ``trainer``."""
    for command in (trainer.command, *trainer.aliases):
        _TRAINERS[command] = trainer


def known_kinds() -> list[str]:
    return sorted({*_BUILTIN_KINDS, *_KINDS})


def get_kind(kind: str) -> type[Model]:
    if kind not in _KINDS:
        if kind not in _BUILTIN_KINDS:
            raise ArtifactError(f"unknown model kind {kind!r}; known kinds: {', '.join(known_kinds())}")
        _KINDS[kind] = _resolve(_BUILTIN_KINDS[kind])
    return _KINDS[kind]


def trainer_commands() -> list[str]:
    """Every training command, built-in ones first (the order of ``nlp-service train --help``)."""
    return [*_BUILTIN_TRAINERS, *(c for c in _TRAINERS if c not in _BUILTIN_TRAINERS)]


def get_trainer(command: str) -> Trainer:
    if command not in _TRAINERS:
        if command not in _BUILTIN_TRAINERS:
            raise KeyError(f"unknown training command {command!r}; known: {', '.join(trainer_commands())}")
        _TRAINERS[command] = _resolve(_BUILTIN_TRAINERS[command])
    return _TRAINERS[command]


def load_model(folder: Path, settings: Settings | None = None) -> Model:
    """Open the model folder with the class of its kind."""
    manifest = read_manifest(folder)
    return get_kind(manifest.kind).load(Path(folder), manifest, settings)


__all__ = ["BatchPredictor", "Model", "get_kind", "get_trainer", "known_kinds", "load_model", "register_kind",
           "register_trainer", "trainer_commands"]
