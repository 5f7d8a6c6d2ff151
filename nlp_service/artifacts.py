"""Model artifacts: one folder per named model, a ``manifest.json``, atomic saves.

Layout::

    models/
      w2v-es/
        manifest.json      kind, format version, parameters, data, metrics, files + sha256
        ...                files owned by the model kind

A save writes everything into a hidden temporary folder beside the target and renames it
into place only once complete, so a crash or a bad input never leaves a half-written model.
The save holds a lock on that folder while it writes, so a service starting meanwhile can tell
the folder of a save in progress from one left by a killed process (:func:`remove_interrupted_saves`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import NLPServiceError

try:  # POSIX: a save's temporary folder is locked while it is written
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
NOT_A_MODEL = f"no {MANIFEST}: not a model folder saved by nlp-service (a complete save writes one)"
# tempfile.mkdtemp(prefix=".tmp-<name>-"): 8 random characters from [a-z0-9_] follow the prefix.
_TEMP_SAVE = re.compile(r"\.tmp-.+-[a-z0-9_]{8}")
_TRACKED_LIBRARIES = ("numpy", "gensim", "spacy", "usearch", "torch", "transformers", "scikit-learn")


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
    """Check that every file the manifest lists is there with its size (and hash, if asked).

    Sizes of all files first (cheap, catches truncated copies), then the hashes, read in chunks:
    a flipped byte keeps the size, and a model that loads from damaged weights answers garbage.
    """
    for rel, info in manifest.files.items():
        path = Path(model_dir) / rel
        if not path.is_file():
            raise ArtifactError(f"{model_dir}: missing file {rel} (listed in the manifest)")
        if path.stat().st_size != info.get("size"):
            raise ArtifactError(f"{model_dir}: {rel} has size {path.stat().st_size}, manifest says {info.get('size')}")
    if not checksums:
        return
    for rel, info in manifest.files.items():
        if sha256_file(Path(model_dir) / rel) != info.get("sha256"):
            raise ArtifactError(f"{model_dir}: {rel} does not match its sha256 in the manifest "
                                "(damaged or changed after the save)")


def scan_models(models_dir: Path) -> tuple[list[tuple[Path, Manifest]], dict[str, str]]:
    """The model folders under ``models_dir`` sorted by name, and apart the folders that are not
    readable models (no or a malformed manifest) with why. Hidden folders (a save in progress,
    ``.tmp-*``) are not models."""
    found: list[tuple[Path, Manifest]] = []
    problems: dict[str, str] = {}
    if not Path(models_dir).is_dir():
        return found, problems
    for child in sorted(Path(models_dir).iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if not (child / MANIFEST).is_file():
            problems[child.name] = NOT_A_MODEL
            continue
        try:
            found.append((child, read_manifest(child)))
        except ArtifactError as exc:
            problems[child.name] = str(exc)
    return found, problems


def list_models(models_dir: Path) -> list[tuple[Path, Manifest]]:
    """Every readable model folder under ``models_dir``, sorted by name (unreadable ones skipped)."""
    return scan_models(models_dir)[0]


def remove_interrupted_saves(models_dir: Path) -> list[str]:
    """Remove the temporary folders that interrupted saves (a killed process) left in ``models_dir``;
    return their names. A folder whose save still runs is locked by it and kept."""
    removed: list[str] = []
    if not Path(models_dir).is_dir():
        return removed
    for child in sorted(Path(models_dir).iterdir()):
        if not _TEMP_SAVE.fullmatch(child.name) or child.is_symlink() or not child.is_dir():
            continue
        try:
            fd = os.open(child, os.O_RDONLY)
        except OSError:  # removed meanwhile (another worker process)
            continue
        try:
            if not _try_lock(fd):
                continue
            shutil.rmtree(child, ignore_errors=True)
            if not child.exists():
                removed.append(child.name)
        finally:
            os.close(fd)
    return removed


def _lock(folder: Path) -> int | None:
    """Hold an exclusive lock on ``folder`` (released when the fd closes, or when the process dies)."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a filesystem without locks: save anyway, unprotected
        os.close(fd)
        return None
    return fd


def _try_lock(fd: int) -> bool:
    """Whether no live process holds the lock of a save on this folder (then it is ours now)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a save in progress, or locks unsupported: keep the folder
        return False
    return True


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
    lock = _lock(tmp)
    try:
        yield tmp
        if not (tmp / MANIFEST).is_file():
            raise ArtifactError("internal error: artifact written without a manifest")
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)


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
