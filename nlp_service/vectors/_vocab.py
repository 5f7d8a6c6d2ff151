"""Word <-> row lookup that opens instantly at any size.

A Python dict of 2 million words takes about a second to build at every start. Instead the
store keeps, next to ``vocab.txt`` (the words, one a line), two arrays written at save time:
``vocab_offsets.npy`` (where each word starts in ``vocab.txt``) and ``vocab_hash.npy`` (an
open-addressing hash table of rows keyed by CRC-32 of the word's UTF-8 bytes). All three are
memory-mapped; a lookup hashes the word, probes the table and compares bytes.
"""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

VOCAB_FILE = "vocab.txt"
OFFSETS_FILE = "vocab_offsets.npy"
HASH_FILE = "vocab_hash.npy"


class Vocab:
    """The words of a store, in row order."""

    def __init__(self, blob: bytes | mmap.mmap, offsets: np.ndarray, table: np.ndarray,
                 words: list[str] | None = None) -> None:
        self._blob = blob
        self._offsets = offsets
        self._table = table
        self._mask = len(table) - 1
        self._words = words

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocab:
        encoded = []
        for w in words:
            if not w or "\n" in w or "\r" in w:
                raise ValueError(f"word {w!r} cannot be stored (empty or holds a line break)")
            encoded.append(w.encode("utf-8"))
        lengths = np.fromiter((len(b) + 1 for b in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        blob = b"\n".join(encoded) + b"\n"
        return cls(blob, offsets, _build_table(encoded), list(words))

    @classmethod
    def load(cls, folder: Path) -> Vocab:
        offsets = np.load(folder / OFFSETS_FILE, mmap_mode="r")
        table = np.load(folder / HASH_FILE, mmap_mode="r")
        path = folder / VOCAB_FILE
        size = path.stat().st_size
        if size != int(offsets[-1]) and not (len(offsets) == 1 and size == 0):
            raise ValueError(f"{path} has {size} bytes, the offsets say {int(offsets[-1])}")
        if len(table) & (len(table) - 1):
            raise ValueError(f"{folder / HASH_FILE}: table size {len(table)} is not a power of two")
        blob: bytes | mmap.mmap = b""
        if size:
            with open(path, "rb") as fh:
                blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(blob, offsets, table)

    def save(self, folder: Path) -> None:
        (folder / VOCAB_FILE).write_bytes(bytes(self._blob))
        np.save(folder / OFFSETS_FILE, np.asarray(self._offsets))
        np.save(folder / HASH_FILE, np.asarray(self._table))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _bytes(self, i: int) -> bytes:
        return self._blob[int(self._offsets[i]) : int(self._offsets[i + 1]) - 1]

    def word(self, i: int) -> str:
        if self._words is not None:
            return self._words[i]
        return self._bytes(i).decode("utf-8")

    def get(self, word: str) -> int | None:
        """Row of ``word``, or None."""
        key = word.encode("utf-8")
        slot = zlib.crc32(key) & self._mask
        table = self._table
        while True:
            row = int(table[slot])
            if row < 0:
                return None
            if self._bytes(row) == key:
                return row
            slot = (slot + 1) & self._mask

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def to_list(self) -> list[str]:
        if self._words is None:
            data = bytes(self._blob)
            self._words = data[:-1].decode("utf-8").split("\n") if data else []
        return self._words

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_list())


def _build_table(encoded: Sequence[bytes]) -> np.ndarray:
    size = 8
    while size < 2 * len(encoded):
        size *= 2
    mask = size - 1
    table = [-1] * size
    for row, key in enumerate(encoded):
        slot = zlib.crc32(key) & mask
        while table[slot] >= 0:
            if encoded[table[slot]] == key:
                raise ValueError(f"duplicate word in vocabulary: {key.decode('utf-8')!r}")
            slot = (slot + 1) & mask
        table[slot] = row
    return np.asarray(table, dtype=np.int32 if len(encoded) < 2**31 else np.int64)
