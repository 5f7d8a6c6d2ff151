"""A streaming reader of Facebook fastText ``.bin`` files that never holds a whole matrix in memory.

gensim's ``load_facebook_vectors`` reads the input matrix (words + n-gram buckets), the output matrix
and then a copy of the word vectors: about 15 GB for cc.es.300 (2M words, 2M buckets, 300
dimensions). This reader writes the store's ``vectors.npy``, ``norms.npy`` and ``ngrams.npy`` straight
into a folder, a chunk of rows at a time, with plain reads and writes (pages of a memory-mapped file
would count in the process's resident memory), and returns a store memory-mapped from that folder;
:meth:`VectorStore.save` then links those files into the model instead of copying them.

A word's vector is fastText's ``getWordVector`` as gensim computes it (``kv.vectors``): the mean of the
word's own input row and the rows of its character n-gram buckets. The sum is taken as a sparse
(words x buckets) matrix times slabs of the bucket rows, so memory is bounded by ``chunk_bytes``
whatever the file's size; only the order of the float32 additions differs from gensim's (a few ulps).

File layout (fastText's ``FastText::saveModel``, version 12): int32 magic, int32 version; the args
(12 int32 then a float64); the dictionary (int32 size, nwords, nlabels; int64 ntokens, pruneidx_size;
``size`` entries of a NUL-terminated UTF-8 word, an int64 count and an int8 type; pruneidx_size int32
pairs); a bool ``quant_input``; the input matrix (int64 rows, int64 columns, float32 values, rows
``0..nwords-1`` for the words then ``bucket`` rows of n-gram buckets); the output matrix (``qout``, then
the same shape header and values), which holds no word vectors and is skipped.
"""

from __future__ import annotations

import array
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..data import wrap_binary
from ._store import VectorStore
from ._subword import SubwordVectors, fasttext_hash, ngram_bytes
from ._vocab import Vocab

MAGIC = 793712314
VERSIONS = (11, 12)  # 12 is current; 11 differs only for supervised models, whose labels are skipped
_ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
_DICT = struct.Struct("<3i2q")  # size nwords nlabels ntokens pruneidx_size
_OLD_ARGS = struct.Struct("<10id")  # as _ARGS without dim and ws (they replace the magic and version)
_OLD_DICT = struct.Struct("<3iq")  # no pruneidx_size
_MAX_OLD_DIM = 100_000  # an old file's first two ints (dim, ws) are small and positive; other bytes are not
_ENTRY_TAIL = 9  # int64 count + int8 type after each word's NUL
_MAX_WORD_BYTES = 1 << 16  # no NUL within this many bytes: not a dictionary
FLOAT = np.dtype("<f4")
# Bytes of float32 rows one step holds: the word chunk's sums, their product with a bucket slab, and the
# slab itself are each about this size, so the reader's matrices stay under ~4x this.
CHUNK_BYTES = 128 << 20
SOURCE_COPY = "source.bin"  # a compressed file's decompressed copy, in the output folder while converting


class FastTextBinError(ValueError):
    """The file is not a readable, unquantized fastText ``.bin``: ``detail`` says what, and where."""

    def __init__(self, path: str | Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.detail = detail


@dataclass(frozen=True)
class FastTextBin:
    """What precedes the input matrix, and where it lies in the file."""

    path: Path
    version: int
    dim: int
    bucket: int
    minn: int
    maxn: int
    nwords: int
    words: list[str]  # the first ``limit`` words (all when no limit), in file order
    matrix_offset: int  # file offset of the first float of the input matrix
    file_size: int

    @property
    def row_bytes(self) -> int:
        return self.dim * FLOAT.itemsize

    @property
    def bucket_offset(self) -> int:
        return self.matrix_offset + self.nwords * self.row_bytes


class _Reader:
    """Buffered sequential reads that know their file offset (for error messages)."""

    def __init__(self, fh: IO[bytes], path: Path, buffer_size: int = 1 << 22) -> None:
        self._fh = fh
        self._path = path
        self._size = buffer_size
        self._buf = b""
        self._pos = 0  # in _buf
        self._base = 0  # file offset of _buf[0]

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the position; False at end of file."""
        while len(self._buf) - self._pos < need:
            more = self._fh.read(max(self._size, need))
            if not more:
                return False
            self._base += self._pos
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
        return True

    def read(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise FastTextBinError(self._path, f"truncated: the file ends inside {what} (byte {self.offset})")
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def until_nul(self, what: str) -> bytes:
        start = self._pos
        while True:
            end = self._buf.find(b"\0", start)
            if end >= 0:
                data = self._buf[self._pos : end]
                self._pos = end + 1
                return data
            if len(self._buf) - self._pos > _MAX_WORD_BYTES:
                raise FastTextBinError(self._path, f"{what} (byte {self.offset}): no end of word within "
                                       f"{_MAX_WORD_BYTES} bytes: not a fastText dictionary")
            searched = len(self._buf) - self._pos  # _fill moves the unread bytes to the buffer's start
            if not self._fill(searched + 1):
                raise FastTextBinError(self._path, f"truncated: the file ends inside {what} (byte {self.offset})")
            start = self._pos + searched


def read_header(path: Path, limit: int | None = None) -> FastTextBin:
    """Parse and check everything up to the input matrix; the matrices' sizes are checked against the
    file's size, so a truncated file fails here, before any work."""
    path = Path(path)
    file_size = path.stat().st_size
    with open(path, "rb") as fh:
        reader = _Reader(fh, path)
        magic, version = struct.unpack("<2i", reader.read(8, "the header"))
        new_format = magic == MAGIC
        if new_format:
            if version not in VERSIONS:
                raise FastTextBinError(path, f"fastText file version {version}; this reader knows {VERSIONS}")
            args = _ARGS.unpack(reader.read(_ARGS.size, "the model arguments"))
            dim, bucket, minn, maxn = args[0], args[8], args[9], args[10]
        elif 0 < magic <= _MAX_OLD_DIM and 0 < version <= _MAX_OLD_DIM:
            # fastText before 2017 (gensim's lee_fasttext.bin): no magic; dim and ws come first, and the
            # dictionary has no pruned-index table nor the matrix a quantization flag.
            dim, version = magic, 0
            args = _OLD_ARGS.unpack(reader.read(_OLD_ARGS.size, "the model arguments"))
            bucket, minn, maxn = args[6], args[7], args[8]
        else:
            raise FastTextBinError(path, f"not a fastText .bin: magic number {magic}, expected {MAGIC} (or, "
                                   f"in files from before 2017, the dimension)")
        if dim < 1 or bucket < 0 or minn < 0 or maxn < 0:
            raise FastTextBinError(path, f"bad model arguments: dim {dim}, bucket {bucket}, minn {minn}, "
                                   f"maxn {maxn}")
        dict_header = _DICT if new_format else _OLD_DICT
        size, nwords, nlabels, _ntokens, *pruned = dict_header.unpack(
            reader.read(dict_header.size, "the dictionary header"))
        pruneidx_size = pruned[0] if pruned else 0  # -1 when nothing was pruned
        if nwords < 0 or nlabels < 0 or size != nwords + nlabels:
            raise FastTextBinError(path, f"bad dictionary header: {size} entries, {nwords} words, {nlabels} labels")
        keep = nwords if limit is None else min(limit, nwords)
        words: list[str] = []
        for record in range(size):
            what = f"dictionary entry {record + 1} of {size}"
            raw = reader.until_nul(what)
            kind = reader.read(_ENTRY_TAIL, what)[8]
            if (kind != 0) != (record >= nwords):  # fastText sorts the words before the labels
                raise FastTextBinError(path, f"{what} (byte {reader.offset}): entry type {kind}, expected "
                                       f"{0 if record < nwords else 1} (0: word, 1: label)")
            if record < keep:
                # As gensim: undecodable bytes are kept as \\x.. escapes rather than failing the file.
                words.append(raw.decode("utf-8", errors="backslashreplace"))
        if pruneidx_size > 0:
            reader.read(8 * pruneidx_size, "the pruned-index table")
        quant = reader.read(1, "the quantization flag")[0] if new_format else 0
        if quant == 1:
            raise FastTextBinError(path, f"a quantized fastText model (.ftz, quant_input set at byte "
                                   f"{reader.offset - 1}): its vectors are compressed; convert the unquantized "
                                   ".bin instead")
        if quant != 0:
            raise FastTextBinError(path, f"byte {reader.offset - 1}: quantization flag {quant}, expected 0 or 1")
        rows, cols = struct.unpack("<2q", reader.read(16, "the input matrix header"))
        matrix_offset = reader.offset
    if cols != dim or rows != nwords + bucket:
        raise FastTextBinError(path, f"input matrix is {rows} x {cols} (byte {matrix_offset - 16}); the header "
                               f"says {nwords} words + {bucket} buckets = {nwords + bucket} rows of dim {dim}")
    info = FastTextBin(path, version, dim, bucket, minn, maxn, nwords, words, matrix_offset, file_size)
    _check_sizes(info, rows, new_format)
    return info


def _check_sizes(info: FastTextBin, rows: int, new_format: bool) -> None:
    """The input matrix must be whole; what follows it, when present, the output matrix, whole."""
    end = info.matrix_offset + rows * info.row_bytes
    if end > info.file_size:
        raise FastTextBinError(info.path, f"truncated: the input matrix ({rows} x {info.dim} floats from byte "
                               f"{info.matrix_offset}) needs {end} bytes, the file has {info.file_size}")
    rest = info.file_size - end
    if rest == 0:  # the output matrix left out: the vectors are all there
        return
    flag = 1 if new_format else 0  # the output matrix's quantization flag (none before 2017)
    with open(info.path, "rb") as fh:
        fh.seek(end)
        head = fh.read(flag + 16)
    if len(head) < flag + 16 or head[:flag] not in (b"", b"\0"):
        raise FastTextBinError(info.path, f"{rest} bytes after the input matrix (byte {end}) are not an "
                               "unquantized output matrix: truncated or not a fastText .bin")
    out_rows, out_cols = struct.unpack("<2q", head[flag:])
    expected = flag + 16 + out_rows * out_cols * FLOAT.itemsize
    if out_rows < 0 or out_cols < 0 or rest != expected:
        raise FastTextBinError(info.path, f"truncated: the output matrix ({out_rows} x {out_cols}, byte {end}) "
                               f"needs {expected} bytes, {rest} remain")


def ngram_hasher(minn: int, maxn: int, bucket: int) -> Callable[[str], list[int]]:
    """``word -> [bucket of each n-gram]``, fastText's order. gensim's compiled helpers when importable
    (3x faster; tests check they are bit-identical to :mod:`._subword`), else the pure-Python ones."""
    if bucket == 0 or maxn == 0 or maxn < minn:
        return lambda word: []
    try:
        from gensim.models.fasttext_inner import compute_ngrams_bytes, ft_hash_bytes
    except ImportError:
        return lambda word: [fasttext_hash(g) % bucket for g in ngram_bytes(word, minn, maxn)]
    return lambda word: [ft_hash_bytes(g) % bucket for g in compute_ngrams_bytes(word, minn, maxn)]


def _npy_writer(path: Path, shape: tuple[int, ...]) -> IO[bytes]:
    """An open ``.npy`` file of float32 with its header written; rows are then appended in order."""
    fh = open(path, "wb")  # noqa: SIM115 - closed by the caller
    header = {"descr": np.lib.format.dtype_to_descr(FLOAT), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(fh, header)
    return fh


def _read_rows(fh: IO[bytes], offset: int, out: np.ndarray) -> None:
    fh.seek(offset)
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            raise FastTextBinError(fh.name, f"truncated while reading rows at byte {offset + got}")
        got += n


def _spans(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(start + step, total)


def convert_fasttext_bin(path: Path, folder: Path, *, limit: int | None = None, chunk_bytes: int | None = None,
                         progress: bool = True) -> VectorStore:
    """Read ``path`` into a store whose files are written in ``folder`` and memory-mapped from there.

    Peak memory is the vocabulary (a Python string per word) plus about four times ``chunk_bytes``
    (default :data:`CHUNK_BYTES`), whatever the matrix's size. A ``.gz`` / ``.bz2`` file is decompressed into
    ``folder`` first (disk: the file's uncompressed size, for the time of the conversion).
    :class:`FastTextBinError` when the file is broken or quantized.
    """
    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not path.name.lower().endswith((".gz", ".bz2")):
        return _convert(path, folder, limit, chunk_bytes, progress)
    # The slabs of bucket rows are read again for each chunk of words: a compressed stream cannot seek back
    # cheaply, so it is first decompressed (in 16 MB pieces) into the folder, and deleted at the end.
    plain = folder / SOURCE_COPY
    try:
        try:
            with wrap_binary(path) as src, open(plain, "wb") as out:
                shutil.copyfileobj(src, out, 16 << 20)
        except (OSError, EOFError, zlib.error) as exc:  # gzip/bz2 errors on truncated or corrupt archives
            raise FastTextBinError(path, f"cannot decompress: {exc}") from exc
        return _convert(plain, folder, limit, chunk_bytes, progress)
    except FastTextBinError as exc:
        raise FastTextBinError(path, exc.detail) from exc  # name the file given, not the copy
    finally:
        plain.unlink(missing_ok=True)


def _convert(path: Path, folder: Path, limit: int | None, chunk_bytes: int | None, progress: bool) -> VectorStore:
    from tqdm.auto import tqdm

    info = read_header(path, limit)
    n, dim, bucket = len(info.words), info.dim, info.bucket
    step = max(1, (chunk_bytes or CHUNK_BYTES) // info.row_bytes)  # the module's value at call time
    hasher = ngram_hasher(info.minn, info.maxn, bucket)
    passes = -(-n // step)
    with (open(info.path, "rb") as src, tqdm(total=n + bucket * (passes + 1), desc=f"reading {info.path.name}",
                                             unit=" rows", unit_scale=True, disable=not progress) as bar):
        if bucket:
            with _npy_writer(folder / "ngrams.npy", (bucket, dim)) as out:
                buf = np.empty((step, dim), dtype=FLOAT)
                for lo, hi in _spans(bucket, step):
                    slab = buf[: hi - lo]
                    _read_rows(src, info.bucket_offset + lo * info.row_bytes, slab)
                    _check_finite(slab, info, lambda i, lo=lo: f"n-gram bucket {lo + i}")
                    out.write(slab.data)
                    bar.update(hi - lo)
        with (_npy_writer(folder / "vectors.npy", (n, dim)) as vec_out,
              _npy_writer(folder / "norms.npy", (n,)) as norm_out):
            for lo, hi in _spans(n, step):
                acc = _word_vectors(src, info, info.words[lo:hi], lo, hasher, step, bar)
                norms = np.linalg.norm(acc, axis=1).astype(FLOAT)
                acc /= np.where(norms > 0, norms, np.float32(1.0))[:, None]  # as unit_rows, in place
                vec_out.write(acc.data)
                norm_out.write(norms.data)
                bar.update(hi - lo)
    return _open_store(folder, info)


def _word_vectors(src: IO[bytes], info: FastTextBin, words: Sequence[str], first: int,
                  hasher: Callable[[str], list[int]], step: int, bar: Any) -> np.ndarray:
    """Raw vectors of ``words`` (rows ``first``...): their own rows plus their n-gram rows, averaged."""
    from scipy import sparse

    acc = np.empty((len(words), info.dim), dtype=FLOAT)
    _read_rows(src, info.matrix_offset + first * info.row_bytes, acc)
    # Flat int32 arrays, not a list per word: 111k words x ~28 n-grams as Python ints would be ~110 MB.
    flat, lengths = array.array("i"), array.array("q")
    for word in words:
        hashes = hasher(word)
        lengths.append(len(hashes))
        flat.extend(hashes)
    counts = np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, dtype=np.int64)
    total = len(flat)
    if total:
        cols = np.frombuffer(flat, dtype=np.int32)
        rows = np.repeat(np.arange(len(words), dtype=np.int32), counts)
        # (words x buckets), an n-gram seen twice in a word counted twice, as fastText does; column
        # slices of a CSC matrix are cheap, so each slab of bucket rows is read once per chunk.
        hits = sparse.csc_matrix((np.ones(total, dtype=FLOAT), (rows, cols)), shape=(len(words), info.bucket))
        del rows, cols, flat
        slab_buf = np.empty((step, info.dim), dtype=FLOAT)
        for lo, hi in _spans(info.bucket, step):
            part = hits[:, lo:hi]
            if part.nnz:
                slab = slab_buf[: hi - lo]
                _read_rows(src, info.bucket_offset + lo * info.row_bytes, slab)
                acc += part @ slab
            bar.update(hi - lo)
    else:
        bar.update(info.bucket)
    acc /= (counts + 1).astype(FLOAT)[:, None]
    _check_finite(acc, info, lambda i: f"word {first + i + 1} ({words[i]!r})")
    return acc


def _check_finite(rows: np.ndarray, info: FastTextBin, where: Callable[[int], str]) -> None:
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise FastTextBinError(info.path, f"{where(int(np.argmax(bad)))} holds NaN or infinite values")


def _open_store(folder: Path, info: FastTextBin) -> VectorStore:
    try:
        vocab = Vocab.from_words(info.words)
    except ValueError as exc:  # a duplicate, empty or multi-line word
        raise FastTextBinError(info.path, f"{exc}") from exc
    unit = np.load(folder / "vectors.npy", mmap_mode="r")
    norms = np.load(folder / "norms.npy", mmap_mode="r")
    subwords = None
    if info.bucket:
        subwords = SubwordVectors(np.load(folder / "ngrams.npy", mmap_mode="r"), info.minn, info.maxn)
    return VectorStore(vocab, unit, norms, subwords=subwords, path=folder)

