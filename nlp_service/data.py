"""Text readers (streamed), the datasets shipped with the package, and a resumable downloader.

Readers never load a whole file: they yield one text at a time. Compression is chosen by the
file name (``.gz``, ``.bz2``); the record format by the remaining suffix (``.jsonl``, ``.csv``,
``.tsv``; anything else is plain text, one document per line).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from .errors import NLPServiceError

DATASETS_DIR = Path(__file__).parent / "datasets"
SPANISH_CORPUS = tuple(sorted((DATASETS_DIR / "corpus_es").glob("*.txt.gz")))
SENTIMENT_EN = DATASETS_DIR / "sentiment" / "movie_reviews_en.tsv.gz"
SENTIMENT_ES = DATASETS_DIR / "sentiment" / "movie_reviews_es_mt.tsv.gz"
# Parallel Spanish/English text, columns ``id es en`` (see datasets/README.md).
PARALLEL_BIBLE = DATASETS_DIR / "parallel" / "rv1909_kjv.tsv.gz"
PARALLEL_LIBREOFFICE = DATASETS_DIR / "parallel" / "libreoffice_ui.tsv.gz"
PARALLEL_ES_EN = (PARALLEL_BIBLE, PARALLEL_LIBREOFFICE)

# csv rows may hold long paragraphs.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class DataError(NLPServiceError):
    """An input file is missing, unreadable or not in the expected format."""

    code = "data_error"


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, decompressing ``.gz`` / ``.bz2`` on the fly."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    if name.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def record_format(path: str | Path) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``text``, from the file name (compression suffix ignored)."""
    name = Path(path).name.lower()
    for comp in (".gz", ".bz2"):
        name = name.removesuffix(comp)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    return "text"


def iter_texts(path: str | Path, column: str | None = None) -> Iterator[str]:
    """Yield the texts of one file: lines, a JSONL field, or a CSV/TSV column chosen by name.

    ``column`` defaults to ``text`` for JSONL/CSV/TSV. Empty texts are skipped.
    """
    if record_format(path) != "text":
        for (text,) in iter_records(path, [column or "text"]):
            yield text
        return
    try:
        with open_text(path) as fh:
            for line in fh:
                text = line.strip()
                if text:
                    yield text
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def iter_records(path: str | Path, columns: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """Yield the named fields of each record of a JSONL, CSV or TSV file, stripped.

    Records where any of the fields is empty are skipped; a missing column is an error that
    lists the columns the file has.
    """
    fmt = record_format(path)
    if fmt == "text":
        raise DataError(f"{path}: expected a CSV, TSV or JSONL file with columns {list(columns)}")
    try:
        with open_text(path) as fh:
            rows = _jsonl_rows(fh, columns, path) if fmt == "jsonl" else _delimited_rows(fh, fmt, columns, path)
            for row in rows:
                values = tuple(v.strip() for v in row)
                if all(values):
                    yield values
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _jsonl_rows(fh: IO[str], columns: Sequence[str], path: str | Path) -> Iterator[list[str]]:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: a record must be a JSON object")
        for col in columns:
            if col not in record:
                raise DataError(f"{path}:{lineno}: record has no field {col!r}")
        yield ["" if record[c] is None else str(record[c]) for c in columns]


def _delimited_rows(fh: IO[str], fmt: str, columns: Sequence[str], path: str | Path) -> Iterator[list[str]]:
    reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",")
    header = next(reader, None)
    if header is None:
        return
    for col in columns:
        if col not in header:
            raise DataError(f"{path}: no column {col!r}; columns are {header}")
    idx = [header.index(c) for c in columns]
    for lineno, row in enumerate(reader, 2):
        if not row:
            continue
        if max(idx) >= len(row):
            raise DataError(f"{path}:{lineno}: row has {len(row)} fields, the header has {len(header)}")
        yield [row[i] for i in idx]


def iter_labeled(path: str | Path, text_column: str = "text", label_column: str = "label") -> Iterator[tuple[str, str]]:
    """Yield ``(text, label)`` pairs from a CSV, TSV or JSONL file (columns chosen by name)."""
    yield from iter_records(path, [text_column, label_column])  # type: ignore[misc]


def parallel_format(path: str | Path) -> str:
    """``anki`` for Tatoeba/Anki exports (``.zip``, or ``.txt`` lines ``English<TAB>Other[<TAB>attribution]``),
    else the record format of :func:`record_format` (TSV/CSV/JSONL with a header naming the languages)."""
    fmt = record_format(path)
    return "anki" if Path(path).suffix.lower() == ".zip" or fmt == "text" else fmt


def iter_parallel(path: str | Path, source: str, target: str, *, fmt: str | None = None,
                  source_column: str | None = None, target_column: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(source_text, target_text)`` pairs of one parallel file.

    TSV/CSV/JSONL: columns named by the language codes (``es``, ``en``) unless
    ``source_column`` / ``target_column`` say otherwise. Anki/Tatoeba exports (``spa-eng.zip``
    or the ``spa.txt`` inside it): English is the first field, the other language the second, so
    one of ``source``/``target`` must be ``en``. Pairs with an empty side are skipped.
    """
    fmt = fmt or parallel_format(path)
    if fmt == "anki":
        if "en" not in (source, target) or source == target:
            raise DataError(f"{path}: an Anki/Tatoeba file pairs English with one other language; "
                            f"asked for {source}->{target}")
        for english, other in iter_anki_pairs(path):
            yield (english, other) if source == "en" else (other, english)
        return
    yield from iter_records(path, [source_column or source, target_column or target])  # type: ignore[misc]


def iter_anki_pairs(path: str | Path) -> Iterator[tuple[str, str]]:
    """``(english, other)`` pairs of a Tatoeba/Anki export: lines ``English<TAB>Other<TAB>attribution``.

    Reads the ``.txt`` file itself or the ``.zip`` that manythings.org publishes (the one text
    file in it that is not ``_about.txt``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".txt") and not Path(n).name.startswith("_")]
                if len(names) != 1:
                    raise DataError(f"{path}: expected one sentence file in the archive, found {names}")
                with zf.open(names[0]) as raw:
                    yield from _anki_lines(io.TextIOWrapper(raw, encoding="utf-8", newline=""), f"{path}:{names[0]}")
        else:
            with open_text(path) as fh:
                yield from _anki_lines(fh, str(path))
    except (OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _anki_lines(fh: IO[str], where: str) -> Iterator[tuple[str, str]]:
    for lineno, line in enumerate(fh, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{where}:{lineno}: expected English<TAB>translation[<TAB>attribution], "
                            f"found {len(fields)} field")
        english, other = fields[0].strip(), fields[1].strip()
        if english and other:
            yield english, other


def iter_corpus(paths: Iterable[str | Path], column: str | None = None) -> Iterator[str]:
    """Texts of several files, one after the other."""
    for path in paths:
        yield from iter_texts(path, column)


def download(url: str, dest: Path, *, expected_size: int | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, resuming a partial ``dest.part``.

    The file only takes its final name once complete and (when the server or the caller says
    how big it should be) of the right size. Network failures raise :class:`DataError`
    quickly with the reason, so an offline machine is told at once.
    """
    import httpx
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code == 416:  # already complete
                total = have
            else:
                if resp.status_code not in (200, 206):
                    raise DataError(f"download of {url} failed: HTTP {resp.status_code}")
                if resp.status_code == 200:
                    have = 0  # server ignored the range: start over
                length = resp.headers.get("content-length")
                total = have + int(length) if length is not None else None
                mode = "ab" if have else "wb"
                with open(part, mode) as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name
                ) as bar:
                    for chunk in resp.iter_bytes(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
    except httpx.HTTPError as exc:
        raise DataError(f"cannot download {url}: {exc.__class__.__name__}: {exc}") from exc
    size = part.stat().st_size
    want = expected_size or total
    if want is not None and size != want:
        raise DataError(f"download of {url} incomplete: {size} of {want} bytes (run again to resume)")
    os.replace(part, dest)
    return dest


def read_head(path: Path, n: int = 4) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def is_gzip(path: Path) -> bool:
    return read_head(path, 2) == b"\x1f\x8b"


def wrap_binary(path: Path) -> IO[bytes]:
    """Open a possibly gzip/bz2-compressed file for binary reading."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return io.BufferedReader(open(path, "rb"), buffer_size=1 << 20)

