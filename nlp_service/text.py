"""Spanish tokenization (spaCy's rule-based tokenizer, no model download) and phrase merging.

A :class:`Tokenizer` is a small, serialisable description (language, lowercase, accents,
punctuation): the exact same settings are stored in a model's manifest and rebuilt at query
time, so a text is split the same way when the model is trained and when it is queried.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .options import option


def strip_accents(text: str) -> str:
    """Remove combining marks (á -> a, ü -> u) but keep ñ, which is a letter in Spanish."""
    out = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.category(ch) == "Mn" and ch != "\u0303":
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


@dataclass(frozen=True)
class Tokenizer:
    """spaCy's tokenizer for ``language`` plus normalisation options."""

    language: str = option("es", "Language of the texts: spaCy's tokenizer rules (es, en, ...).")
    lowercase: bool = option(True, "Lowercase tokens.")
    strip_accents: bool = option(False, "Remove accents (á->a; keeps ñ).")
    keep_punct: bool = option(False, "Keep punctuation tokens.")
    kind: str = field(default="spacy", init=False)

    @cached_property
    def _spacy(self) -> Any:
        import spacy

        return spacy.blank(self.language).tokenizer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Tokenizer:
        raw = dict(raw)
        kind = raw.pop("kind", "spacy")
        if kind != "spacy":
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        return cls(**raw)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def _normalise(self, token: str) -> str:
        if self.lowercase:
            token = token.lower()
        if self.strip_accents:
            token = strip_accents(token)
        return token

    def _keep(self, tok: Any) -> bool:
        return not tok.is_space and (self.keep_punct or not tok.is_punct)

    def tokenize(self, text: str) -> list[str]:
        return [self._normalise(t.text) for t in self._spacy(text) if self._keep(t)]

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """The tokens of :meth:`tokenize` with where each stands in ``text``: ``(token, start, end)``
        character offsets of its original spelling (before lowercasing or accent stripping)."""
        return [(self._normalise(t.text), t.idx, t.idx + len(t.text)) for t in self._spacy(text) if self._keep(t)]

    def tokenize_many(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[list[str]]:
        for doc in self._spacy.pipe(texts, batch_size=batch_size):
            yield [self._normalise(t.text) for t in doc if self._keep(t)]


# ---- parallel tokenization into a cache file gensim's ``corpus_file`` mode reads -------------

_worker_tokenizer: Tokenizer | None = None


def _init_worker(config: dict[str, Any]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_dict(config)


def _tokenize_chunk(chunk: Sequence[str]) -> tuple[str, int, Counter[str]]:
    assert _worker_tokenizer is not None
    lines = []
    counts: Counter[str] = Counter()
    for tokens in _worker_tokenizer.tokenize_many(chunk):
        # gensim's LineSentence splits on whitespace; tokens never contain it, but be safe.
        tokens = [t.replace(" ", "_") for t in tokens if t.strip()]
        if tokens:
            lines.append(" ".join(tokens))
            counts.update(tokens)
    return ("\n".join(lines) + "\n" if lines else ""), sum(counts.values()), counts


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tokenize_to_file(
    texts: Iterable[str],
    out_path: Path,
    tokenizer: Tokenizer,
    *,
    workers: int | None = None,
    chunk_size: int = 2000,
    progress: bool = True,
    counts: Counter[str] | None = None,
) -> dict[str, int]:
    """Tokenize ``texts`` in parallel into ``out_path``: one sentence a line, tokens space-separated.

    Order is preserved. The file appears under its name only when complete. If ``counts`` is
    given, token frequencies are added to it in first-seen order (what gensim's vocabulary scan
    would find), so training can skip that scan.
    """
    from tqdm.auto import tqdm

    workers = workers or max(1, os.cpu_count() or 1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}")
    n_texts = n_words = 0
    bar = tqdm(desc="tokenizing", unit=" words", unit_scale=True, disable=not progress)
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            if workers == 1:
                _init_worker(tokenizer.to_dict())
                results: Iterable[tuple[str, int, Counter[str]]] = map(_tokenize_chunk, _chunks(texts, chunk_size))
                pool = None
            else:
                ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
                pool = ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer.to_dict(),))
                results = pool.imap(_tokenize_chunk, _chunks(texts, chunk_size))
            try:
                for block, words, chunk_counts in results:
                    out.write(block)
                    if counts is not None:
                        counts.update(chunk_counts)
                    n_words += words
                    n_texts += block.count("\n")
                    bar.update(words)
            finally:
                if pool is not None:
                    pool.terminate()
        os.replace(tmp, out_path)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    return {"sentences": n_texts, "words": n_words}


class PhraseMerger:
    """Greedy left-to-right merge of known bigrams (``new`` + ``york`` -> ``new_york``).

    Same result as gensim's ``FrozenPhrases`` without connector words, stored as plain JSON
    (no pickles) so it travels in the model folder and is applied at query time.
    """

    def __init__(self, phrasegrams: dict[str, float], delimiter: str = "_") -> None:
        self.phrasegrams = phrasegrams
        self.delimiter = delimiter

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        out: list[str] = []
        i = 0
        n = len(tokens)
        while i < n:
            if i + 1 < n:
                joined = tokens[i] + self.delimiter + tokens[i + 1]
                if joined in self.phrasegrams:
                    out.append(joined)
                    i += 2
                    continue
            out.append(tokens[i])
            i += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"delimiter": self.delimiter, "phrasegrams": self.phrasegrams}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PhraseMerger:
        return cls(dict(raw["phrasegrams"]), raw.get("delimiter", "_"))
