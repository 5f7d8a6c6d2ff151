"""The inputs of a batch job: files found from paths, globs and folders, read as rows, streamed.

Every record of every file becomes a row, in order, numbered within its file (``row``), so an output row
can always be joined back to its input. A record that cannot be used (invalid UTF-8, a malformed CSV line,
invalid JSON, no text) becomes a row with an ``error`` and no text: the job goes on. What makes the whole
job impossible (a missing file, a missing column, an unknown format) is found by :class:`Inputs` before
any work starts.
"""

from __future__ import annotations

import bz2
import csv
import glob
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..data import DataError, record_format

FORMATS = ("csv", "tsv", "jsonl", "parquet", "text")
_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".txt", ".text")
_COMPRESSION = (".gz", ".bz2")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # an over-long text is a row's error, not a reader's


@dataclass(slots=True)
class Row:
    """One input record: where it is (``source`` file, ``row`` number in it, 0-based), its id (the
    ``--id-column`` value, as text) and its text, or why it has none (``error``)."""

    source: str
    row: int
    id: str | None
    text: str | None
    error: str | None = None


def file_format(path: Path, given: str | None = None) -> str:
    """The record format of ``path``: ``given``, else from its name (compression suffix ignored)."""
    if given is not None:
        if given not in FORMATS:
            raise DataError(f"unknown input format {given!r}; one of {', '.join(FORMATS)}")
        return given
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    return record_format(path)


def _open_text(path: Path) -> tuple[IO[str], IO[bytes]]:
    """The file as text (decompressed; an invalid UTF-8 byte kept as a lone surrogate, for the row to report)
    and the raw file under it, whose position tells how far the reading is."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller, with the text stream
    name = path.name.lower()
    stream: IO[bytes] = raw
    if name.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif name.endswith(".bz2"):
        stream = bz2.BZ2File(raw)  # type: ignore[assignment]
    return io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline=""), raw


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_NOT_UTF8 = "undecodable: the text is not valid UTF-8"


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str
    size: int
    mtime_ns: int

    @property
    def source(self) -> str:
        return str(self.path)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size": self.size, "mtime_ns": self.mtime_ns}

    # ---- checks before any work --------------------------------------------------------------------

    def columns(self) -> list[str] | None:
        """The columns the file declares (CSV/TSV header, Parquet schema, first JSONL record); None for
        plain text, which has one."""
        try:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                return list(pq.ParquetFile(self.path).schema_arrow.names)
            if self.format == "text":
                return None
            fh, raw = _open_text(self.path)
            with fh, raw:
                if self.format == "jsonl":
                    for line in fh:
                        if line.strip():
                            record = json.loads(line)
                            return list(record) if isinstance(record, dict) else []
                    return []
                header = next(csv.reader(fh, delimiter="\t" if self.format == "tsv" else ","), None)
                return header or []
        except (OSError, EOFError, ValueError, UnicodeError) as exc:
            raise DataError(f"cannot read {self.path}: {exc}") from exc

    def check(self, text_column: str, id_column: str | None) -> None:
        """A :class:`DataError` unless the file can be read and has the columns."""
        columns = self.columns()
        if columns is None:
            if id_column is not None:
                raise DataError(f"{self.path}: a plain text file has no id column {id_column!r} (one text a "
                                "line; the output's source and row say where each came from)")
            return
        kind = "first record" if self.format == "jsonl" else "header" if self.format in ("csv", "tsv") else "schema"
        for column in (text_column, id_column):
            if column is not None and column not in columns:
                shown = ", ".join(map(repr, columns[:20])) + (" ..." if len(columns) > 20 else "")
                raise DataError(f"{self.path}: no column {column!r}; its {kind} has: {shown or 'nothing'} "
                                "(--text-column / --id-column choose the columns)")

    # ---- reading ----------------------------------------------------------------------------------

    def rows(self, text_column: str, id_column: str | None, progress: _Progress | None = None) -> Iterator[Row]:
        """Every record, in order, as a :class:`Row`."""
        try:
            if self.format == "parquet":
                yield from self._parquet_rows(text_column, id_column, progress)
                return
            fh, raw = _open_text(self.path)
            with fh, raw:
                rows = (self._text_rows(fh) if self.format == "text"
                        else self._jsonl_rows(fh, text_column, id_column) if self.format == "jsonl"
                        else self._delimited_rows(fh, text_column, id_column))
                for row in rows:
                    if progress is not None and not row.row % 256:  # a system call: not every row
                        progress.position = raw.tell()
                    yield row
        except (OSError, EOFError, ValueError) as exc:  # a corrupt archive, a truncated file
            raise DataError(f"cannot read {self.path}: {exc}") from exc

    def _text_rows(self, fh: IO[str]) -> Iterator[Row]:
        for i, line in enumerate(fh):
            text = line.rstrip("\r\n")
            yield (Row(self.source, i, None, None, _NOT_UTF8) if _undecodable(text)
                   else Row(self.source, i, None, text))

    def _jsonl_rows(self, fh: IO[str], text_column: str, id_column: str | None) -> Iterator[Row]:
        for i, line in enumerate(fh):
            if _undecodable(line):
                yield Row(self.source, i, None, None, _NOT_UTF8)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Row(self.source, i, None, None, f"invalid_json: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(record, dict):
                yield Row(self.source, i, None, None, "invalid_record: a JSONL record must be a JSON object")
                continue
            ident = record.get(id_column) if id_column is not None else None
            ident = None if ident is None else str(ident)
            text = record.get(text_column)
            if text is None:
                yield Row(self.source, i, ident, None, f"missing_text: the record has no {text_column!r} value")
            elif not isinstance(text, str):
                yield Row(self.source, i, ident, None, f"invalid_text: {text_column!r} is a JSON "
                          f"{type(text).__name__}, not a string")
            else:
                yield Row(self.source, i, ident, text)

    def _delimited_rows(self, fh: IO[str], text_column: str, id_column: str | None) -> Iterator[Row]:
        reader = csv.reader(fh, delimiter="\t" if self.format == "tsv" else ",")
        header = next(reader, None) or []
        t = header.index(text_column)
        d = header.index(id_column) if id_column is not None else None
        for i, record in enumerate(reader):
            ident = record[d] if d is not None and d < len(record) else None
            if ident is not None and _undecodable(ident):
                ident = ident.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if t >= len(record):
                yield Row(self.source, i, ident, None, f"malformed_row: {len(record)} fields, the header has "
                          f"{len(header)}")
            elif _undecodable(record[t]):
                yield Row(self.source, i, ident, None, _NOT_UTF8)
            else:
                yield Row(self.source, i, ident, record[t])

    def _parquet_rows(self, text_column: str, id_column: str | None, progress: _Progress | None) -> Iterator[Row]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path)
        total = max(pf.metadata.num_rows, 1)
        columns = [text_column] + ([id_column] if id_column is not None and id_column != text_column else [])
        i = 0
        for batch in pf.iter_batches(batch_size=4096, columns=columns):
            texts = batch.column(text_column)
            if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
                texts = texts.cast(pa.string())
            ids = batch.column(id_column).cast(pa.string()).to_pylist() if id_column is not None else None
            for j, text in enumerate(texts.to_pylist()):
                ident = ids[j] if ids is not None else None
                yield (Row(self.source, i, ident, text) if text is not None
                       else Row(self.source, i, ident, None, f"missing_text: {text_column!r} is null"))
                i += 1
            if progress is not None:
                progress.position = self.size * i // total


@dataclass
class _Progress:
    """How far the reading of the current file is, in bytes of the file as stored."""

    position: int = 0


class Inputs:
    """The files of a batch job, found and checked at once: paths, globs (``data/*.csv.gz``) and folders
    (their files with a known suffix, sorted), read in that order."""

    def __init__(self, paths: Sequence[str | Path], *, text_column: str = "text", id_column: str | None = None,
                 format: str | None = None) -> None:
        if not paths:
            raise DataError("no input given: name files, globs or folders")
        self.text_column, self.id_column = text_column, id_column
        found: list[Path] = []
        for given in paths:
            found += _expand(str(given))
        seen: set[Path] = set()
        self.files: list[InputFile] = []
        for path in found:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            st = path.stat()
            self.files.append(InputFile(resolved, file_format(path, format), st.st_size, st.st_mtime_ns))
        for f in self.files:
            f.check(text_column, id_column)
        self._progress = _Progress()
        self._done_bytes = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def bytes_read(self) -> int:
        """Bytes of the inputs read so far (files as stored: compressed ones count compressed)."""
        return self._done_bytes + self._progress.position

    def describe(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.files]

    def rows(self, skip: int = 0) -> Iterator[Row]:
        """Every row of every file, in order, after the first ``skip`` (already done: a resumed job)."""
        self._done_bytes = 0
        for f in self.files:
            self._progress = _Progress()
            for row in f.rows(self.text_column, self.id_column, self._progress):
                if skip:
                    skip -= 1
                    continue
                yield row
            self._done_bytes += f.size
        self._progress = _Progress()


def _expand(given: str) -> list[Path]:
    if glob.has_magic(given):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(given), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise DataError(f"no file matches {given!r}")
        return files
    path = Path(given).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _known(p)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"{path}: no input files in this folder (looked for {', '.join(_SUFFIXES)}, "
                            "optionally .gz or .bz2)")
        return files
    if not path.is_file():
        raise DataError(f"no such file or folder: {given}")
    return [path]


def _known(path: Path) -> bool:
    name = path.name.lower()
    for comp in _COMPRESSION:
        name = name.removesuffix(comp)
    return name.endswith(_SUFFIXES)
