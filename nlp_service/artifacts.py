"""Model artifacts: one folder per named model, a ``manifest.json``, atomic saves.

Layout::

    models/
      w2v-es/
        manifest.json      kind, format version, parameters, data, metrics, files + sha256
        ...                files owned by the model kind

A save writes everything into a hidden temporary folder beside the target and renames it
into place only once complete, so a crash or a bad input never leaves a half-written model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import NLPServiceError

MANIFEST = "manifest.json"
_TRACKED_LIBRARIES = ("numpy", "gensim", "spacy", "hnswlib", "torch", "transformers", "scikit-learn")


class ArtifactError(NLPServiceError):
    """A model folder is missing, incomplete or inconsistent."""

    code = "artifact_error"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "nlp-service": __version__}
    for name in _TRACKED_LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def validate_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in {".", ".."}:
        raise ArtifactError(f"invalid model name {name!r}: use letters, digits, '-', '_' or '.'")
    return name


@dataclass
class Manifest:
    """What a model folder holds and how it was made."""

    name: str
    kind: str
    format_version: int
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    libraries: dict[str, str] = field(default_factory=library_versions)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "format_version": self.format_version,
            "created_at": self.created_at,
            "params": self.params,
            "data": self.data,
            "metrics": self.metrics,
            "extra": self.extra,
            "libraries": self.libraries,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        try:
            return cls(
                name=raw["name"],
                kind=raw["kind"],
                format_version=int(raw["format_version"]),
                params=raw.get("params", {}),
                data=raw.get("data", {}),
                metrics=raw.get("metrics", {}),
                extra=raw.get("extra", {}),
                created_at=raw.get("created_at", ""),
                libraries=raw.get("libraries", {}),
                files=raw.get("files", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed manifest: {exc}") from exc


def read_manifest(model_dir: Path) -> Manifest:
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{model_dir} is not a model folder (no {MANIFEST})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    return Manifest.from_dict(raw)


def open_model_dir(folder: Path, manifest: Manifest | None, kind: str, format_version: int) -> Manifest:
    """The manifest of a model folder that must hold a ``kind`` model in a format this release
    reads (``format_version`` or older), its files checked (sizes)."""
    manifest = manifest or read_manifest(folder)
    if manifest.kind != kind:
        raise ArtifactError(f"{folder} holds a {manifest.kind!r} model, not {kind!r}")
    if manifest.format_version > format_version:
        raise ArtifactError(f"{folder}: format version {manifest.format_version} is newer than this release reads")
    verify_files(folder, manifest)  # sizes only: cheap, catches truncated copies
    return manifest


@contextlib.contextmanager
def reading(folder: Path, what: str) -> Iterator[None]:
    """Report what a damaged model folder raises while its files are read (a missing key, a wrong
    shape, a file that unpickles objects) as one :class:`ArtifactError` naming the model."""
    try:
        yield
    except ArtifactError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise ArtifactError(f"cannot load {what} {Path(folder).name}: {exc}") from exc


def verify_files(model_dir: Path, manifest: Manifest, *, checksums: bool = False) -> None:
    """Check that every file the manifest lists is there with its size (and hash, if asked)."""
    for rel, info in manifest.files.items():
        path = Path(model_dir) / rel
        if not path.is_file():
            raise ArtifactError(f"{model_dir}: missing file {rel}")
        if path.stat().st_size != info.get("size"):
            raise ArtifactError(f"{model_dir}: {rel} has size {path.stat().st_size}, manifest says {info.get('size')}")
        if checksums and sha256_file(path) != info.get("sha256"):
            raise ArtifactError(f"{model_dir}: {rel} does not match its sha256 in the manifest")


def list_models(models_dir: Path) -> list[tuple[Path, Manifest]]:
    """Every readable model folder under ``models_dir``, sorted by name (unreadable ones skipped)."""
    found: list[tuple[Path, Manifest]] = []
    if not Path(models_dir).is_dir():
        return found
    for child in sorted(Path(models_dir).iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            found.append((child, read_manifest(child)))
        except ArtifactError:
            continue
    return found


@contextlib.contextmanager
def atomic_model_dir(models_dir: Path, name: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``models_dir/name`` in one rename.

    The caller writes the model's files and then :func:`write_manifest` into the folder.
    On any exception the temporary folder is removed and an existing model is untouched.
    """
    validate_name(name)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / name
    if target.exists() and not overwrite:
        raise ArtifactError(f"model {name!r} already exists in {models_dir} (use overwrite)")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=models_dir))
    try:
        yield tmp
        if not (tmp / MANIFEST).is_file():
            raise ArtifactError("internal error: artifact written without a manifest")
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(new: Path, target: Path) -> None:
    if not target.exists():
        os.rename(new, target)
        return
    # Two renames: the old folder is moved aside, the new one takes its name, then the old is
    # deleted. A running service keeps reading the memory-mapped old files until it reloads.
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def json_bytes(obj: Any, *, compact: bool = False) -> bytes:
    """A report file of a model folder (``metrics.json``; ``split.json``, compact: long index lists): UTF-8 JSON."""
    return (json.dumps(obj, indent=None if compact else 2, ensure_ascii=False) + "\n").encode()


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Hash every file in ``model_dir`` into the manifest and write it (last step of a save)."""
    model_dir = Path(model_dir)
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(model_dir).as_posix()
        files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    manifest.files = files
    out = model_dir / MANIFEST
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out
