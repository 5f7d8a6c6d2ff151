"""fastText's supervised classifier (Joulin et al. 2017: averaged word and word n-gram vectors -> linear
softmax) as a classifier backend: trained with ``fasttext.train_supervised``, saved as fastText's own
``model.bin``, served through the same :class:`~._model.Backend` protocol as the others.

Needs the optional extra (``pip install 'nlp-service[fasttext]'``: the ``fasttext-numpy2-wheel`` build, since
the plain ``fasttext`` 0.9.3 package breaks on numpy 2); it is imported here only, so nothing else pays for it.
Each training runs in a fresh child process (:func:`_train_in_child` says why); predictions run here.
Texts reach fastText already split by the model's tokenizer (the same one every classifier uses) and joined by
single spaces: fastText splits on whitespace only, and refuses a newline inside a text to predict.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, NLPServiceError
from ..text import Tokenizer

if TYPE_CHECKING:
    from ._fasttext_train import FastTextClassifierParams

__all__ = ["EXTRA_HINT", "MODEL_FILE", "NAN_ATTEMPTS", "FastTextClassifier", "FastTextMissing"]

EXTRA_HINT = "pip install 'nlp-service[fasttext]'"
MODEL_FILE = "model.bin"
_LABEL = "__label__"  # fastText's default label prefix
NAN_ATTEMPTS = 2  # how many fresh processes try a training that stopped with NaN (_train_in_child)
# What fastText splits on (and the null character it also treats as a separator): a token must not hold any.
_SEPARATORS = re.compile(r"[\s\x00]+")


class FastTextMissing(InvalidInput, ImportError):
    """The ``fasttext`` extra is not installed: an :class:`ImportError` for code that imports this module, and an
    :class:`~nlp_service.errors.InvalidInput` so that the command line prints its one line."""


try:
    import fasttext
except ImportError as exc:  # an optional extra: say which one
    raise FastTextMissing(f"the fastText classifier needs the fasttext package: {EXTRA_HINT} ({exc})") from exc


def _line(tokens: Sequence[str]) -> str:
    """A text as fastText reads it: its tokens separated by single spaces, no newline anywhere."""
    return _SEPARATORS.sub(" ", " ".join(tokens)).strip()


def _fasttext_label(label: str) -> str:
    """A class as a fastText label: whitespace would end the label, so it becomes ``_``."""
    return _LABEL + _SEPARATORS.sub("_", label.strip())


class FastTextClassifier:
    """A trained fastText supervised model with the classes in the model's order; ``predict_proba`` over raw
    texts or token lists gives ``(n_texts, n_classes)`` probabilities in that order."""

    backend = "fasttext"
    device_name = "cpu"

    def __init__(self, model: Any, classes: Sequence[str], tokenizer: Tokenizer) -> None:
        self.model = model
        self.classes = list(classes)
        self.tokenizer = tokenizer
        column = {_fasttext_label(c): i for i, c in enumerate(self.classes)}
        if len(column) != len(self.classes):
            raise InvalidInput(f"classes {self.classes} clash once their whitespace becomes '_' (fastText labels "
                               "hold no whitespace): rename them")
        self._column = column

    # ---- training ----------------------------------------------------------------------------

    @classmethod
    def fit(cls, token_lists: Sequence[Sequence[str]], labels: Sequence[str], classes: Sequence[str],
            params: FastTextClassifierParams, tokenizer: Tokenizer, *, progress: bool = False
            ) -> tuple[FastTextClassifier, dict[str, Any]]:
        """Train on texts already split by ``tokenizer``; returns the model and what the training took
        (``train_seconds`` inside fastText, ``train_wall_seconds`` with the child process, ``threads``, ``attempts``,
        ``words``)."""
        probe = cls(None, classes, tokenizer)  # refuses clashing labels before any work
        threads = params.threads or os.cpu_count() or 1
        with tempfile.TemporaryDirectory(prefix="nlp-fasttext-") as tmp:
            path = Path(tmp) / "train.txt"
            with open(path, "w", encoding="utf-8") as fh:
                for tokens, label in zip(token_lists, labels, strict=True):
                    fh.write(f"{_fasttext_label(label)} {_line(tokens)}\n")
            options = {"input": str(path), "epoch": params.epoch, "lr": params.lr, "wordNgrams": params.word_ngrams,
                       "dim": params.dim, "minCount": params.min_count, "loss": params.loss, "bucket": params.bucket,
                       "thread": threads, "seed": params.seed, "verbose": 2 if progress else 0}
            start = time.perf_counter()
            for attempt in range(1, NAN_ATTEMPTS + 1):
                error, seconds = _train_in_child(options, Path(tmp) / MODEL_FILE, progress=progress)
                # A second try in a fresh process: insurance against the garbage-memory NaN (_train_in_child). A real
                # divergence (a far too high lr) fails every time and ends up below.
                if error is None or "NaN" not in error or attempt == NAN_ATTEMPTS:
                    break
            if error is not None:
                raise _training_error(error, params, len(labels), attempt)
            model = fasttext.load_model(str(Path(tmp) / MODEL_FILE))
            wall = time.perf_counter() - start
        return cls(model, probe.classes, tokenizer), {"train_seconds": round(seconds, 3),
                                                      "train_wall_seconds": round(wall, 3), "threads": threads,
                                                      "attempts": attempt, "words": len(model.words)}

    # ---- inference ---------------------------------------------------------------------------

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_tokens(list(self.tokenizer.tokenize_many(texts)))

    def predict_proba_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """:meth:`predict_proba` of texts already split by the model's tokenizer (occlusion's variants)."""
        out = np.zeros((len(token_lists), len(self.classes)), dtype=np.float64)
        if not token_lists:
            return out
        # k=-1: every label. A text with no known word is still one line (its end-of-line token): an answer.
        labels, probs = self.model.predict([_line(tokens) for tokens in token_lists], k=-1)
        for row, (names, values) in enumerate(zip(labels, probs, strict=True)):
            for name, p in zip(names, values, strict=True):
                col = self._column.get(name)
                if col is not None:  # a class absent from the training rows (a rare class, a CV fold) stays 0
                    out[row, col] = p
        # fastText returns p + 1e-5 per label (it takes log(p + 1e-5)), and ``ova`` scores are independent
        # sigmoids: normalise so that every row is a distribution, as the other backends give.
        sums = out.sum(axis=1, keepdims=True)
        out = np.divide(out, sums, out=np.full_like(out, 1.0 / len(self.classes)), where=sums > 0)
        return out

    # ---- persistence -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(folder / MODEL_FILE))

    @classmethod
    def load(cls, folder: Path, classes: Sequence[str], tokenizer: Tokenizer) -> FastTextClassifier:
        path = folder / MODEL_FILE
        if not path.is_file():  # fastText's own message for a missing file is a bare "ValueError: ... cannot be opened"
            raise FileNotFoundError(f"{path}: no fastText model file")
        model = fasttext.load_model(str(path))
        missing = sorted(set(map(_fasttext_label, classes)) - set(model.labels))
        if missing:
            raise ValueError(f"{path}: the model does not know the classes {missing} of its manifest")
        return cls(model, classes, tokenizer)


def _train_in_child(options: dict[str, Any], output: Path, *, progress: bool) -> tuple[str | None, float]:
    """Run ``fasttext.train_supervised(**options)`` in a fresh interpreter that saves the model to ``output``:
    (fastText's error message or None, training seconds).

    Why a process: this build of fastText (0.9.2) trains reliably only once per process. Later trainings in the
    same process often stop with "Encountered NaN." at the default lr, as if they read memory that was never
    initialised (a fresh process's memory is the operating system's zeroed pages). Seen on 1,440 shipped reviews:
    the same call (same seed, one thread) 8 times in one process: ok ok ok NaN NaN ok NaN NaN; in fresh
    processes: ok every time, and the same model every time. A crash in its C++ code stays in the child too.
    """
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(options), str(output)], stdout=subprocess.PIPE,
                          stderr=None if progress else subprocess.PIPE, text=True, check=False)
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = (proc.stderr or "").strip()[-500:]
        raise NLPServiceError(f"fastText's training process exited with code {proc.returncode} and no answer"
                              + (f": {tail}" if tail else ""), code="training_failed") from None
    return answer.get("error"), float(answer.get("seconds", 0.0))


# The child: nothing imported before fastText trains (see _train_in_child). argv: options (JSON), model path.
_CHILD = r"""
import json, sys, time
import fasttext
options, output = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
try:
    model = fasttext.train_supervised(**options)
except (RuntimeError, ValueError) as exc:
    print(json.dumps({"error": str(exc) or type(exc).__name__}))
    sys.exit(0)
seconds = time.perf_counter() - start
model.save_model(output)
print(json.dumps({"seconds": seconds}))
"""


def _training_error(message: str, params: FastTextClassifierParams, rows: int, attempts: int) -> InvalidInput:
    """fastText's training failures, saying what to change."""
    if "NaN" in message:
        return InvalidInput(
            f"fastText training diverged (its loss became NaN, {attempts} attempts) with --lr {params.lr:g} on "
            f"{rows} rows: lower --lr (e.g. {params.lr / 5:g}) or train on more (and more varied) rows", field="lr")
    if "vocabulary" in message.lower():
        return InvalidInput(f"fastText found no words to learn from ({message}): lower --min-count "
                            f"(now {params.min_count}) or give it more rows", field="min_count")
    return InvalidInput(f"fastText training failed: {message}: check the data and options (--lr, --min-count, "
                        "--bucket, --dim)")
