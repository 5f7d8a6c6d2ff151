"""Model kinds, found by name: a manifest's ``kind`` says which loader opens the folder.

Built-in kinds are imported lazily by module path, so loading a generation model never
imports gensim or spaCy. A new kind plugs in with :func:`register_kind` without touching
the service core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .artifacts import ArtifactError, Manifest, read_manifest


class LoadedModel(Protocol):
    name: str
    kind: str
    manifest: Manifest

    def describe(self) -> dict[str, Any]: ...


# loader(folder, manifest, settings): settings may be None outside the service.
Loader = Callable[[Path, Manifest, Any], LoadedModel]

_BUILTIN: dict[str, str] = {
    "vectors": "nlp_service.vectors:VectorsModel.load",
    "classifier": "nlp_service.classify:ClassifierModel.load",
    "translator": "nlp_service.translate:TranslatorModel.load",
    "generator": "nlp_service.generate:GeneratorModel.load",
}
_LOADERS: dict[str, Loader] = {}


def register_kind(kind: str, loader: Loader) -> None:
    """Make ``loader(folder, manifest, settings)`` the way to open models whose manifest says ``kind``."""
    _LOADERS[kind] = loader


def known_kinds() -> list[str]:
    return sorted({*_BUILTIN, *_LOADERS})


def get_loader(kind: str) -> Loader:
    if kind in _LOADERS:
        return _LOADERS[kind]
    target = _BUILTIN.get(kind)
    if target is None:
        raise ArtifactError(f"unknown model kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    _LOADERS[kind] = obj
    return obj


def load_model(folder: Path, settings: Any = None) -> LoadedModel:
    """Open the model folder with the loader of its kind."""
    manifest = read_manifest(folder)
    return get_loader(manifest.kind)(Path(folder), manifest, settings)
