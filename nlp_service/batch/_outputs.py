"""The output of a batch job: a folder of numbered parts and a manifest, so that a job can resume.

``OUT/part-00000.parquet`` (or ``.jsonl``), ``part-00001...``: each written whole to a temporary name and
renamed, then recorded in ``OUT/_manifest.json`` (also replaced atomically). The manifest is the truth: a
part it does not list (the job was killed between the two) is removed at the next start, and the job
resumes after the rows of the parts it lists, so every input row is in the output exactly once. The
manifest also holds the job's signature (task, model, inputs, options): the same command resumes; another
job's output folder is refused unless ``--overwrite``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput

MANIFEST = "_manifest.json"
OUTPUT_FORMATS = ("parquet", "jsonl")
_PART = re.compile(r"^part-(\d{5,})\.(parquet|jsonl)$")
_FORMAT_VERSION = 1


class OutputExists(InvalidInput):
    """The output folder holds something this job cannot resume."""

    code = "output_exists"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def arrow_table(columns: dict[str, list[Any]], schema: Any) -> Any:
    """A pyarrow table of ``schema`` from lists of Python values; a fixed-size list column (embeddings) may
    hold numpy vectors or None, and is built from one stacked array, not from Python floats."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_fixed_size_list(field.type):
            size = field.type.list_size
            missing = np.array([v is None for v in values], dtype=bool)
            flat = np.zeros((len(values), size), dtype=np.float32)
            for i, v in enumerate(values):
                if v is not None:
                    flat[i] = v
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), size,
                                                            mask=pa.array(missing) if missing.any() else None))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class PartWriter:
    """Writes a job's rows in numbered parts under ``folder``; see the module's docstring."""

    def __init__(self, folder: Path, *, output_format: str, schema: Any, signature: dict[str, Any],
                 overwrite: bool = False) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise InvalidInput(f"unknown output format {output_format!r}; one of {', '.join(OUTPUT_FORMATS)}")
        self.folder = Path(folder)
        self.format = output_format
        self.schema = schema
        self.signature = signature
        self.parts: list[dict[str, Any]] = []
        self.complete = False
        self.summary: dict[str, Any] | None = None
        self._open(overwrite)

    @property
    def rows_done(self) -> int:
        return sum(p["rows"] for p in self.parts)

    @property
    def errors_done(self) -> int:
        return sum(p["errors"] for p in self.parts)

    def _open(self, overwrite: bool) -> None:
        manifest_path = self.folder / MANIFEST
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputExists(f"{self.folder} is a file; the output is a folder of parts")
        if overwrite and self.folder.is_dir():
            for path in self.folder.iterdir():
                if _PART.match(path.name) or path.name == MANIFEST or path.name.startswith((".part-", f".{MANIFEST}")):
                    path.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("signature") != self.signature:
                raise OutputExists(f"{self.folder} holds the output of another job ("
                                   f"{_difference(manifest.get('signature') or {}, self.signature)}); "
                                   "--overwrite replaces it, or choose another --output")
            self.parts = list(manifest.get("parts", []))
            self.complete = bool(manifest.get("complete"))
            self.summary = manifest.get("summary")
        else:
            leftovers = sorted(p.name for p in self.folder.iterdir() if _PART.match(p.name))
            if leftovers:
                raise OutputExists(f"{self.folder} holds parts ({', '.join(leftovers[:3])} ...) but no {MANIFEST}: "
                                   "not a job this can resume; --overwrite replaces them")
        listed = {p["file"] for p in self.parts}
        for path in self.folder.iterdir():  # parts written after the last manifest, temporary files of a kill
            if (_PART.match(path.name) and path.name not in listed) or path.name.startswith((".part-", f".{MANIFEST}")):
                path.unlink()

    def write(self, columns: dict[str, list[Any]], *, first_row: int, errors: int) -> Path:
        """Write one part (column lists of the same length), then record it in the manifest."""
        rows = len(next(iter(columns.values())))
        name = f"part-{len(self.parts):05d}.{self.format}"
        path = self.folder / name
        if self.format == "parquet":
            import pyarrow.parquet as pq

            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
            os.close(fd)
            try:
                pq.write_table(arrow_table(columns, self.schema), tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            names = [f.name for f in self.schema]
            lines = (json.dumps({n: _jsonable(columns[n][i]) for n in names}, ensure_ascii=False)
                     for i in range(rows))
            _atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
        self.parts.append({"file": name, "rows": rows, "errors": errors, "first_row": first_row})
        self._save()
        return path

    def finish(self, summary: dict[str, Any]) -> None:
        self.complete = True
        self.summary = summary
        self._save()

    def files(self) -> list[Path]:
        return [self.folder / p["file"] for p in self.parts]

    def _save(self) -> None:
        manifest = {"format_version": _FORMAT_VERSION, "signature": self.signature, "output_format": self.format,
                    "columns": [{"name": f.name, "type": str(f.type)} for f in self.schema],
                    "parts": self.parts, "rows": self.rows_done, "errors": self.errors_done,
                    "complete": self.complete, "summary": self.summary,
                    "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _atomic_write(self.folder / MANIFEST, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys: Sequence[str] = [k for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
    return "differs in " + ", ".join(keys) if keys else "a different job"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace ``folder``'s manifest (the Ray engine, whose parts Ray Data writes)."""
    _atomic_write(Path(folder) / MANIFEST, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
