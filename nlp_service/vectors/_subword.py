"""fastText subword (character n-gram) vectors for out-of-vocabulary words.

Bit-for-bit the hashing of Facebook's fastText (FNV-1a over UTF-8 bytes, each byte taken as a
*signed* char) and of gensim's ``ft_ngram_hashes``, so vectors for unseen words equal theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619


def ngram_bytes(word: str, min_n: int, max_n: int) -> list[bytes]:
    """Character n-grams of ``<word>`` as UTF-8 bytes, as fastText's ``computeSubwords``."""
    data = f"<{word}>".encode()
    size = len(data)
    grams: list[bytes] = []
    for i in range(size):
        if data[i] & 0xC0 == 0x80:  # continuation byte: not the start of a character
            continue
        j, n = i, 1
        while j < size and n <= max_n:
            j += 1
            while j < size and data[j] & 0xC0 == 0x80:
                j += 1
            if n >= min_n and not (n == 1 and (i == 0 or j == size)):
                grams.append(data[i:j])
            n += 1
    return grams


def fasttext_hash(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        signed = byte - 256 if byte > 127 else byte
        h = ((h ^ (signed & 0xFFFFFFFF)) * _FNV_PRIME) & 0xFFFFFFFF
    return h


@dataclass
class SubwordVectors:
    """The n-gram bucket matrix of a fastText model and its hashing parameters."""

    ngrams: np.ndarray  # (bucket, dim) float32, possibly memory-mapped
    min_n: int
    max_n: int

    @property
    def bucket(self) -> int:
        return int(self.ngrams.shape[0])

    def hashes(self, word: str) -> list[int]:
        if self.bucket == 0 or self.max_n < self.min_n or self.max_n == 0:
            return []
        return [fasttext_hash(g) % self.bucket for g in ngram_bytes(word, self.min_n, self.max_n)]

    def vector(self, word: str) -> np.ndarray | None:
        """Mean of the word's n-gram vectors (un-normalised), or None if it has no n-grams."""
        rows = self.hashes(word)
        if not rows:
            return None
        vec = np.zeros(self.ngrams.shape[1], dtype=np.float32)
        for r in rows:  # summed in order, as gensim does, so results match to the last bit
            vec += self.ngrams[r]
        vec /= len(rows)
        return vec
