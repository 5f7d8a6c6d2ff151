"""word2vec and fastText training: tokenize once (in parallel, cached), optional phrases, gensim, evaluation.

The corpus is tokenized with the model's :class:`~nlp_service.text.Tokenizer` into a cache file
of space-separated tokens, which gensim's ``corpus_file`` mode reads with one thread per core
and no Python per-sentence work: tokenization is paid once, not once per epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import DataError, iter_corpus
from ..text import PhraseMerger, Tokenizer, tokenize_to_file
from ._params import FastTextParams, Word2VecParams

log = logging.getLogger(__name__)


def corpus_cache_path(
    cache_dir: Path, files: Sequence[Path], tokenizer: Tokenizer, column: str | None
) -> Path:
    """Cache file named by the inputs (path, size, mtime), the column and the tokenizer."""
    key = hashlib.sha256()
    for f in files:
        st = Path(f).stat()
        key.update(f"{Path(f).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update(f"{column}|{tokenizer.fingerprint()}".encode())
    return Path(cache_dir) / "tokenized" / f"{key.hexdigest()[:24]}.txt"


@dataclass
class TokenizedCorpus:
    """A tokenized corpus file and what its tokenization counted (frequencies in first-seen order)."""

    path: Path
    sentences: int
    words: int
    counts: dict[str, int]


def tokenize_corpus(
    files: Sequence[Path], tokenizer: Tokenizer, cache_dir: Path, *, column: str | None = None,
    workers: int | None = None, progress: bool = True,
) -> tuple[TokenizedCorpus, dict[str, Any]]:
    """Tokenize the corpus once into the cache; later runs with the same inputs reuse it."""
    for f in files:
        if not Path(f).is_file():
            raise DataError(f"no such corpus file: {f}")
    path = corpus_cache_path(cache_dir, files, tokenizer, column)
    stats_path = path.with_suffix(".json")
    if path.is_file() and stats_path.is_file():
        saved = json.loads(stats_path.read_text(encoding="utf-8"))
        stats = saved["stats"]
        return TokenizedCorpus(path, stats["sentences"], stats["words"], saved["counts"]), {**stats, "cached": True}
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    stats: dict[str, Any] = dict(tokenize_to_file(
        iter_corpus(files, column), path, tokenizer, workers=workers, progress=progress, counts=counts
    ))
    stats["seconds"] = round(time.perf_counter() - start, 2)
    if stats["words"] == 0:
        raise DataError("the corpus holds no tokens (empty files, or the wrong --column?)")
    stats_path.write_text(json.dumps({"stats": stats, "counts": counts}, ensure_ascii=False), encoding="utf-8")
    corpus = TokenizedCorpus(path, stats["sentences"], stats["words"], dict(counts))
    return corpus, {**stats, "cached": False}


def learn_phrases(
    corpus: TokenizedCorpus, params: Word2VecParams, progress: bool = True
) -> tuple[TokenizedCorpus, PhraseMerger]:
    """Detect bigram phrases (gensim ``Phrases``) and write the phrased corpus beside the input."""
    from gensim.models.phrases import Phrases
    from gensim.models.word2vec import LineSentence
    from tqdm.auto import tqdm

    corpus_file = corpus.path
    phrases = Phrases(
        LineSentence(str(corpus_file)), min_count=params.phrases_min_count, threshold=params.phrases_threshold,
        delimiter="_",
    )
    merger = PhraseMerger({str(k): float(v) for k, v in phrases.freeze().phrasegrams.items()})
    suffix = f".phrases-{params.phrases_min_count}-{params.phrases_threshold}.txt"
    out = corpus_file.with_name(corpus_file.stem + suffix)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    counts: Counter[str] = Counter()
    with open(corpus_file, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in tqdm(src, desc="applying phrases", unit=" lines", disable=not progress):
            tokens = merger(line.split())
            counts.update(tokens)
            dst.write(" ".join(tokens) + "\n")
    os.replace(tmp, out)
    return TokenizedCorpus(out, corpus.sentences, sum(counts.values()), dict(counts)), merger


class _ProgressHandler(logging.Handler):
    """Turns gensim's progress log lines into a tqdm bar with words/s."""

    def __init__(self, epochs: int, enabled: bool, desc: str) -> None:
        super().__init__(logging.INFO)
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs * 100, desc=desc, unit="%", disable=not enabled,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        self.epochs = epochs
        self.done = 0.0
        self.words_per_s: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg, args = str(record.msg), record.args
        if not isinstance(args, tuple) or len(args) < 3:
            return
        if msg.startswith("EPOCH %i - PROGRESS: at"):
            epoch, pct, wps = args[0], float(args[1]), float(args[2])
            self._advance(epoch * 100 + pct, f"epoch {epoch + 1}/{self.epochs}, {wps:,.0f} words/s")
        elif msg.startswith("EPOCH %i: training on") and len(args) >= 5:
            epoch = args[0]
            self.words_per_s.append(float(args[4]))
            self._advance((epoch + 1) * 100, f"epoch {epoch + 1}/{self.epochs} done")

    def _advance(self, to: float, postfix: str) -> None:
        if to > self.done:
            self.bar.update(to - self.done)
            self.done = to
        self.bar.set_postfix_str(postfix, refresh=False)


@contextmanager
def _gensim_progress(epochs: int, enabled: bool, desc: str) -> Iterator[_ProgressHandler]:
    logger = logging.getLogger("gensim.models.word2vec")  # FastText trains through Word2Vec's loop: same logger
    handler = _ProgressHandler(epochs, enabled, desc)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # keep gensim's INFO chatter off the root logger
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        handler.bar.close()


def train_word2vec(
    corpus: TokenizedCorpus, params: Word2VecParams, *, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Train gensim ``Word2Vec`` on a tokenized corpus file; return the model and run stats.

    The vocabulary comes from the frequencies counted while tokenizing (same words, same order
    as gensim's own scan of the file would give), which saves a single-threaded pass.
    """
    from gensim.models import Word2Vec

    params.validate()
    return _train(lambda: Word2Vec(**_gensim_options(params)), corpus, params, desc="word2vec", progress=progress)


def train_fasttext(
    corpus: TokenizedCorpus, params: FastTextParams, *, init: Path | None = None, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Train gensim ``FastText`` (words and character n-grams) on a tokenized corpus file, from scratch or,
    with ``init``, continuing a Facebook fastText ``.bin``: its vocabulary is updated with the corpus's words
    (``params.min_count`` times or more), then trained for ``params.epochs`` with ``params.alpha``; its
    dimensions, n-gram sizes, bucket and architecture are the file's."""
    from gensim.models import FastText

    params.validate()
    if init is None:
        return _train(lambda: FastText(**_gensim_options(params), min_n=params.min_n, max_n=params.max_n,
                                       bucket=params.bucket), corpus, params, desc="fasttext", progress=progress)

    def adapted() -> Any:
        model = _load_facebook_model(Path(init))
        model.workers, model.min_count, model.sample = params.workers, params.min_count, params.sample
        model.alpha, model.min_alpha = params.alpha, params.alpha * 1e-4
        model.epochs = params.epochs
        return model

    return _train(adapted, corpus, params, desc=f"fasttext (adapting {Path(init).name})", update=True,
                  progress=progress)


def _load_facebook_model(path: Path) -> Any:
    from gensim.models.fasttext import load_facebook_model

    if not path.is_file():
        raise DataError(f"--init {path}: no such file")
    try:
        return load_facebook_model(str(path))
    except Exception as exc:  # gensim raises struct.error, ValueError, EOFError, NotImplementedError...
        raise DataError(f"--init {path}: not a full fastText .bin model (a .vec or a quantized .ftz cannot be "
                        f"trained further): {exc.__class__.__name__}: {exc}") from exc


def _gensim_options(params: Word2VecParams) -> dict[str, Any]:
    """The constructor options gensim's ``Word2Vec`` and ``FastText`` share."""
    return {"vector_size": params.vector_size, "window": params.window, "min_count": params.min_count,
            "sample": params.sample, "sg": 1 if params.architecture == "skipgram" else 0,
            "hs": 1 if params.loss == "hs" else 0, "negative": params.negative if params.loss == "negative" else 0,
            "epochs": params.epochs, "alpha": params.alpha, "seed": params.seed, "workers": params.workers}


def _train(make: Callable[[], Any], corpus: TokenizedCorpus, params: Word2VecParams, *, desc: str,
           update: bool = False, progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """Build the vocabulary from the tokenizer's counts (added to the model's own with ``update``) and train
    on the corpus file with one thread per worker (gensim's ``corpus_file`` mode)."""
    with _gensim_progress(params.epochs, progress, desc) as handler:
        start = time.perf_counter()
        model = make()
        before = len(model.wv) if update else 0
        model.build_vocab_from_freq(corpus.counts, corpus_count=corpus.sentences, update=update)
        model.corpus_total_words = corpus.words
        if len(model.wv) == 0:
            raise DataError(f"no word occurs at least min_count={params.min_count} times in the corpus")
        model.train(
            corpus_file=str(corpus.path),
            total_examples=corpus.sentences,
            total_words=corpus.words,
            epochs=params.epochs,
        )
        seconds = time.perf_counter() - start
    raw_words = corpus.words * params.epochs
    stats = {
        "train_seconds": round(seconds, 2),
        "vocabulary": len(model.wv),
        "corpus_words": int(corpus.words),
        "words_per_second": round(raw_words / seconds) if seconds > 0 else None,
        "effective_words_per_second_per_epoch": [round(x) for x in handler.words_per_s],
    }
    if update:
        stats["vocabulary_before"] = before
        stats["words_added"] = len(model.wv) - before
    return model, stats


def evaluate_keyed_vectors(
    kv: Any, *, similarity_file: Path | None = None, analogy_file: Path | None = None,
    similarity_delimiter: str = "\t",
) -> dict[str, Any]:
    """Spearman/Pearson on a word-pair file and accuracy on a ``questions-words.txt`` file (gensim)."""
    metrics: dict[str, Any] = {}
    if similarity_file is not None:
        pearson, spearman, oov = kv.evaluate_word_pairs(str(similarity_file), delimiter=similarity_delimiter)
        metrics["similarity"] = {
            "file": Path(similarity_file).name,
            "pearson": round(float(pearson[0]), 4),
            "spearman": round(float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0]), 4),
            "oov_percent": round(float(oov), 2),
        }
    if analogy_file is not None:
        score, sections = kv.evaluate_word_analogies(str(analogy_file))
        total = next((s for s in sections if s["section"] == "Total accuracy"), None)
        n_correct = len(total["correct"]) if total else 0
        n_seen = n_correct + (len(total["incorrect"]) if total else 0)
        metrics["analogy"] = {
            "file": Path(analogy_file).name,
            "accuracy": round(float(score), 4),
            "questions_answered": n_seen,
            "sections": {
                s["section"]: round(len(s["correct"]) / max(1, len(s["correct"]) + len(s["incorrect"])), 4)
                for s in sections if s["section"] != "Total accuracy"
            },
        }
    return metrics
