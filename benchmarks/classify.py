#!/usr/bin/env python
"""Benchmark the sentiment classifiers: quality of the n-gram baselines, the recurrent networks and
fastText on one split, then the throughput of the Spanish LSTM and baseline bare and over HTTP.

Prints ONE JSON document on stdout (or ``--out``); progress goes to stderr. Nothing is asserted:
goals are reported next to the measurements with ``"met": true|false``.

Sections (``--sections``, default all); a ``machine`` block is always written:

* ``quality``     per language (``en``: SENTIMENT_EN, ``es``: SENTIMENT_ES), the same stratified split
                  (validation 0.1, test 0.1, seed 13) through ``nlp_service.classify``: 27 baselines
                  (features binary/count/tfidf x n-grams word 1-2, word 1-3, char 2-5 x logreg/linearsvc/nb),
                  5-fold CV of the best baseline, the RNN/LSTM/GRU cells with default ``RNNParams``,
                  and fastText supervised when it works here.
* ``throughput``  the Spanish LSTM and best Spanish baseline: ``predict_proba`` in one call, then a real
                  ``nlp-service serve``: one client sending one text per request, and 32 concurrent
                  clients (micro-batching), with the batch sizes the server formed; then the same
                  server with torch/BLAS limited to one thread (a diagnostic; ``--no-threads-diagnostic``).

Run from the repository root::

    .venv/bin/python benchmarks/classify.py --quick > bench-out/classify-quick.json     # ~2-4 min
    .venv/bin/python benchmarks/classify.py --out bench-out/classify.json 2> bench-out/classify.log
    .venv/bin/python benchmarks/classify.py --sections throughput --markdown
"""

from __future__ import annotations

import asyncio
import csv
import functools
import gc
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from _harness import (
    REPO_ROOT,
    SINGLE_THREAD_BLAS,
    LoadRun,
    Server,
    add_load_test_args,
    add_scratch_args,
    benchmark_parser,
    chosen_sections,
    latency_stats,
    load_test,
    log,
    machine_info,
    new_document,
    own_cpu_s,
    process_cpu_s,
    ratio,
    run_sections,
    scratch_folder,
    sizes,
    start_server,
    use_library,
    write_document,
)

if TYPE_CHECKING:
    from nlp_service.config import Settings

SECTIONS = ("quality", "throughput")
LANGUAGES = ("en", "es")
CELLS = ("rnn", "lstm", "gru")
SPLIT = {"validation": 0.1, "test": 0.1, "seed": 13}
FEATURES = ("binary", "count", "tfidf")
NGRAMS = (("word", 1, 2), ("word", 1, 3), ("char", 2, 5))
CLASSIFIERS = ("logreg", "linearsvc", "nb")
# --quick: one of each feature kind, n-gram kind and classifier.
QUICK_BASELINES = (("tfidf", "word", 1, 2, "logreg"), ("count", "word", 1, 2, "nb"),
                   ("tfidf", "char", 2, 5, "linearsvc"))
# The service's default baseline (bow-es of `nlp-service defaults`): used when the quality section is skipped.
DEFAULT_BOW = ("count", "word", 1, 2, "nb")


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    sections: list[str]
    quick: bool
    device: str
    out: Path | None
    markdown: str | None
    workdir: Path | None
    keep_workdir: bool
    rows: int | None
    rnn_epochs: int | None
    cv: int
    throughput_texts: int
    bare_repeats: int
    http_requests: int
    http_concurrency: int
    http_max_seconds: float
    threads_diagnostic: bool
    fallback_lstm_epochs: int


_SIZES: dict[str, tuple[Any, Any]] = {  # (full, --quick); an explicit option overrides either
    "rows": (None, 2000),
    "rnn_epochs": (None, 2),
    "throughput_texts": (2000, 400),
    "http_requests": (2000, 200),
    "fallback_lstm_epochs": (3, 1),
}


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = benchmark_parser("Sentiment classifiers: baselines vs RNN/LSTM/GRU vs fastText on one split, and "
                         "throughput bare vs HTTP. One JSON document on stdout, progress on stderr.", SECTIONS,
                         quick_help="smoke run: 3 baselines per language, 2000 rows per language, 2 epochs per "
                         "cell, 400 texts / 200 requests for throughput")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the recurrent networks train and run (the baselines are numpy, CPU only)")
    p.add_argument("--out", type=Path, help="write the JSON document to this file instead of stdout")
    p.add_argument("--markdown", nargs="?", const="-", metavar="PATH",
                   help="also write markdown result tables: to PATH, or to stderr when no PATH is given")
    p.add_argument("--rows", type=int, help="use only this many rows of each dataset (a seeded sample) "
                   "[all; quick 2000]")
    p.add_argument("--rnn-epochs", type=int, help="epochs per recurrent cell [RNNParams default 10; quick 2]")
    p.add_argument("--cv", type=int, default=5, help="folds of the cross-validation of the best baseline")
    p.add_argument("--throughput-texts", type=int, help="texts per bare predict_proba call, Spanish test "
                   "texts repeated [2000; quick 400]")
    p.add_argument("--bare-repeats", type=int, default=3, help="timed bare calls (median reported)")
    add_load_test_args(p, requests_help="timed one-text requests per client mode [2000; quick 200]",
                       max_seconds_help="time cap per HTTP run: stop sending after this long")
    p.add_argument("--no-threads-diagnostic", dest="threads_diagnostic", action="store_false",
                   help="skip the second server run with torch/BLAS limited to one thread")
    p.add_argument("--fallback-lstm-epochs", type=int,
                   help="epochs of the Spanish LSTM trained for throughput when quality is skipped [3; quick 1]")
    add_scratch_args(p, keeps="models, server logs")
    a = p.parse_args(argv)
    sections = chosen_sections(p, a.sections, SECTIONS)
    if not sections:
        p.error("no section chosen")
    markdown = a.markdown if a.markdown in (None, "-") else str(Path(a.markdown).resolve())
    return Config(sections=sections, quick=a.quick, device=a.device, out=a.out.resolve() if a.out else None,
                  markdown=markdown, workdir=a.workdir.resolve() if a.workdir else None,
                  keep_workdir=a.keep_workdir, cv=a.cv, bare_repeats=a.bare_repeats,
                  http_concurrency=a.http_concurrency, http_max_seconds=a.http_max_seconds,
                  threads_diagnostic=a.threads_diagnostic, **sizes(a, _SIZES))


# ---- small helpers -------------------------------------------------------------------------------


def latency(seconds: Sequence[float]) -> dict[str, Any] | None:
    """p50, p99, mean and max in ms (3 digits); None without any."""
    return latency_stats(seconds, ("p50", "p99", "mean", "max"), digits=3) if seconds else None


def other_benchmarks() -> list[str]:
    """Command lines of other benchmark processes running now (they would skew the timings)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "benchmarks/" in cmd and "python" in cmd and "benchmarks/classify.py" not in cmd:
            found.append(f"{proc.name}: {cmd[:200]}")
    return found


def machine(cfg: Config) -> dict[str, Any]:
    import torch

    packages = ("numpy", "scipy", "scikit-learn", "torch", "spacy", "fastapi", "uvicorn", "httpx", "fasttext",
                "fasttext-wheel", "fasttext-numpy2-wheel", "nlp-service")
    cuda = torch.cuda.is_available()
    return {
        **machine_info(packages),
        "torch": {"version": torch.__version__, "threads": torch.get_num_threads(),
                  "interop_threads": torch.get_num_interop_threads(), "cuda_available": cuda,
                  "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
                  "cuda_version": torch.version.cuda},
        "device_requested": cfg.device,
        "other_benchmarks_running_at_start": other_benchmarks(),
    }


# ---- shared state between sections ---------------------------------------------------------------


@dataclass
class State:
    workdir: Path
    models_dir: Path
    data_files: dict[str, Path] = field(default_factory=dict)  # language -> labeled file used
    artifacts: dict[tuple[str, str], Path] = field(default_factory=dict)  # (language, model) -> folder
    best_bow: dict[str, tuple[str, Path]] = field(default_factory=dict)  # language -> (label, folder)

    def settings(self, device: str = "cpu") -> Settings:
        """Where training writes: models to ``models_dir``, caches and checkpoints to the scratch folder."""
        from nlp_service.config import Settings

        return Settings(models_dir=self.models_dir, cache_dir=self.workdir / "cache", device=device)


def dataset(cfg: Config, state: State, lang: str) -> Path:
    """The labeled file of ``lang``: the shipped one, or a seeded sample of ``cfg.rows`` rows of it."""
    if lang in state.data_files:
        return state.data_files[lang]
    from nlp_service.classify import read_labeled
    from nlp_service.data import SENTIMENT_EN, SENTIMENT_ES

    source = {"en": SENTIMENT_EN, "es": SENTIMENT_ES}[lang]
    path = source
    if cfg.rows:
        data = read_labeled([source])
        rows = np.random.default_rng(SPLIT["seed"]).permutation(len(data.texts))[: cfg.rows]
        path = state.workdir / "data" / f"sentiment_{lang}_{len(rows)}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["label", "text"])
            for i in sorted(rows.tolist()):
                writer.writerow([data.labels[i], data.texts[i]])
    state.data_files[lang] = path
    return path


def load_split(path: Path) -> tuple[Any, dict[str, list[int]]]:
    """The rows and the split training makes of ``path`` (same function, same fractions and seed)."""
    from nlp_service.classify import read_labeled, stratified_split

    data = read_labeled([path])
    split = stratified_split(data.labels, validation=SPLIT["validation"], test=SPLIT["test"], seed=SPLIT["seed"])
    return data, split


def indices_digest(indices: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps(list(indices)).encode()).hexdigest()[:16]


def artifact_test_digest(folder: Path) -> str:
    record = json.loads((folder / "split.json").read_text(encoding="utf-8"))
    return indices_digest(record["indices"]["test"])


def bow_params(spec: Sequence[Any]) -> Any:
    from nlp_service.classify import BowParams

    features, analyzer, lo, hi, clf = spec
    return BowParams(features=features, analyzer=analyzer, ngram_min=lo, ngram_max=hi, classifier=clf)


def baseline_specs(cfg: Config) -> list[tuple[str, str, int, int, str]]:
    if cfg.quick:
        return list(QUICK_BASELINES)
    return [(f, a, lo, hi, c) for f in FEATURES for (a, lo, hi) in NGRAMS for c in CLASSIFIERS]


# ---- 1. quality ----------------------------------------------------------------------------------


def _train_baseline(path: Path, state: State, lang: str, spec: Sequence[Any], cv: int | None = None,
                    suffix: str = "") -> tuple[Path, dict[str, Any]]:
    from nlp_service.classify import BowRun, train_bow

    params = bow_params(spec)
    run = BowRun(data=[path], name=f"{lang}-bow-{params.label}{suffix}", text_column="text", label_column="label",
                 validation=SPLIT["validation"], test=SPLIT["test"], seed=SPLIT["seed"], cv=cv, task="sentiment",
                 language=lang, overwrite=True)
    return train_bow(run, params, settings=state.settings(), progress=False)


def _baseline_row(spec: Sequence[Any], metrics: dict[str, Any], wall: float) -> dict[str, Any]:
    params = bow_params(spec)
    return {
        "name": params.label, "kind": "bow",
        "features": params.features, "ngrams": f"{params.analyzer} {params.ngram_min}-{params.ngram_max}",
        "classifier": params.classifier,
        "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["macro_f1"],
        "train_seconds": metrics["train_seconds"], "predict_seconds": metrics["predict_seconds"],
        "predict_texts_per_second": metrics["predict_texts_per_second"], "n_features": metrics["features"],
        "wall_seconds": round(wall, 2),
    }


def _train_cell(cfg: Config, path: Path, state: State, lang: str, cell: str,
                epochs: int | None) -> tuple[Path, dict[str, Any]]:
    from nlp_service.classify import RecurrentRun, RNNParams, train_recurrent

    params = RNNParams(cell=cell)  # type: ignore[arg-type]
    if epochs is not None:
        params.epochs = epochs
    run = RecurrentRun(data=[path], name=f"{lang}-{cell}", split_seed=SPLIT["seed"], validation=SPLIT["validation"],
                       test=SPLIT["test"], vectors=None, device=cfg.device, task="sentiment",  # type: ignore[arg-type]
                       language=lang, overwrite=True)
    return train_recurrent(run, params, settings=state.settings(cfg.device), progress=False)


def _cell_row(cell: str, metrics: dict[str, Any], params: dict[str, Any], wall: float) -> dict[str, Any]:
    history = metrics["history"]
    return {
        "name": f"{'bi' if params['bidirectional'] else ''}{cell}", "kind": "recurrent", "cell": cell,
        "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["macro_f1"],
        "best_epoch": metrics["best_epoch"], "epochs_run": len(history), "epochs_max": params["epochs"],
        "train_seconds": metrics["train_seconds"], "predict_seconds": metrics["predict_seconds"],
        "predict_texts_per_second": metrics["predict_texts_per_second"], "device": metrics["device"],
        "parameters": metrics["parameters"], "vocabulary": metrics["vocabulary"], "wall_seconds": round(wall, 2),
        "val_macro_f1_by_epoch": [h["val_macro_f1"] for h in history],
        "train_loss_by_epoch": [h["train_loss"] for h in history],
    }


# Runs in a fresh interpreter (a crash in fastText's C++ code cannot take the benchmark down).
# argv: train file (fastText format), test file (one tokenized text a line), threads.
_FASTTEXT_CHILD = r"""
import json, sys, time
out = {}
try:
    import fasttext
except ImportError as exc:
    print(json.dumps({"available": False, "reason": f"package not installed ({exc})"}))
    sys.exit(0)
train, test, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
def attempt(path, **kw):
    t = time.perf_counter()
    try:
        model = fasttext.train_supervised(input=path, verbose=0, thread=threads, **kw)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t
    return model, None, time.perf_counter() - t
model, error, seconds = attempt(train, epoch=25, lr=0.5, wordNgrams=2, dim=100, minCount=1)
out["train_error"] = error
out["train_seconds"] = round(seconds, 3)
if model is not None:
    texts = open(test, encoding="utf-8").read().split("\n")
    t = time.perf_counter()
    labels, _ = model.predict(texts)
    out["predict_seconds"] = round(time.perf_counter() - t, 3)
    out["predictions"] = [lab[0].removeprefix("__label__") if lab else "" for lab in labels]
# The same call on four trivial lines: is the failure about our data or about this build?
trivial = test + ".trivial"
with open(trivial, "w", encoding="utf-8") as fh:
    fh.write("__label__pos good great fine\n__label__neg bad awful poor\n" * 2)
_, out["trivial_data_error"], _ = attempt(trivial, epoch=5)
print(json.dumps(out))
"""


def bench_fasttext(cfg: Config, state: State, lang: str, path: Path) -> dict[str, Any]:
    """fastText supervised (epoch 25, lr 0.5, word 2-grams, dim 100) on the baselines' fit rows."""
    from nlp_service.classify import classification_metrics, tokenizer_for_classification

    data, split = load_split(path)
    tok = tokenizer_for_classification()
    folder = state.workdir / "fasttext"
    folder.mkdir(parents=True, exist_ok=True)
    train_file, test_file = folder / f"{lang}.train.txt", folder / f"{lang}.test.txt"
    fit_rows = split["train"] + split["validation"]
    with open(train_file, "w", encoding="utf-8") as fh:
        for i, tokens in zip(fit_rows, tok.tokenize_many([data.texts[i] for i in fit_rows]), strict=True):
            fh.write(f"__label__{data.labels[i]} {' '.join(tokens)}\n")
    test_rows = split["test"]
    test_file.write_text("\n".join(" ".join(t) for t in tok.tokenize_many([data.texts[i] for i in test_rows])),
                         encoding="utf-8")
    what = ("fasttext.train_supervised(epoch=25, lr=0.5, wordNgrams=2, dim=100) on train+validation "
            "(like the baselines), same tokenizer, in a child process")
    proc = subprocess.run([sys.executable, "-c", _FASTTEXT_CHILD, str(train_file), str(test_file),
                           str(os.cpu_count() or 1)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-500:].strip()
        return {"available": False, "what": what, "reason": f"child exited with code {proc.returncode}: {tail}"}
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"available": False, "what": what, "reason": f"unreadable child output: {proc.stdout[-300:]!r}"}
    if "available" in res:
        return {**res, "what": what}
    if res.get("train_error"):
        return {"available": False, "what": what, "reason": res["train_error"],
                "same_error_on_trivial_data": res.get("trivial_data_error") is not None,
                "trivial_data_error": res.get("trivial_data_error")}
    truth = [data.labels[i] for i in test_rows]
    m = classification_metrics(truth, res["predictions"], data.classes)
    return {"available": True, "what": what, "name": "fasttext", "kind": "fasttext", "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"], "train_seconds": res["train_seconds"],
            "predict_seconds": res["predict_seconds"], "trivial_data_error": res.get("trivial_data_error")}


def _quality_language(cfg: Config, state: State, lang: str) -> dict[str, Any]:
    path = dataset(cfg, state, lang)
    data, split = load_split(path)
    expected_test = indices_digest(split["test"])
    out: dict[str, Any] = {
        "data": {"file": str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path.name),
                 "rows": len(data.texts), "class_counts": dict(Counter(data.labels)),
                 "split_sizes": {k: len(v) for k, v in split.items()}, "test_indices_sha": expected_test},
    }
    digests: dict[str, str] = {}

    # baselines
    rows: list[dict[str, Any]] = []
    specs = baseline_specs(cfg)
    for n, spec in enumerate(specs, 1):
        t = time.perf_counter()
        try:
            folder, metrics = _train_baseline(path, state, lang, spec)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            rows.append({"name": bow_params(spec).label, "kind": "bow", "error": f"{type(exc).__name__}: {exc}"})
            continue
        row = _baseline_row(spec, metrics, time.perf_counter() - t)
        rows.append(row)
        state.artifacts[(lang, row["name"])] = folder
        digests[row["name"]] = artifact_test_digest(folder)
        log(f"quality {lang} [{n}/{len(specs)}] {row['name']}: acc {row['accuracy']:.4f} "
            f"F1 {row['macro_f1']:.4f} train {row['train_seconds']:.2f}s predict {row['predict_seconds']:.3f}s "
            f"({row['n_features']:,} features)")
    ok = [r for r in rows if "error" not in r]
    out["baselines"] = sorted(rows, key=lambda r: (-r.get("accuracy", -1), -r.get("macro_f1", -1)))
    if ok:
        best_f1 = max(ok, key=lambda r: (r["macro_f1"], r["accuracy"]))
        spec = next(s for s in specs if bow_params(s).label == best_f1["name"])
        state.best_bow[lang] = (best_f1["name"], state.artifacts[(lang, best_f1["name"])])
        if cfg.cv >= 2:
            log(f"quality {lang}: {cfg.cv}-fold CV of {best_f1['name']} (best baseline by test macro-F1)")
            t = time.perf_counter()
            try:
                folder, metrics = _train_baseline(path, state, lang, spec, cv=cfg.cv, suffix="-cv")
                out["best_baseline_cv"] = {"name": best_f1["name"], "selected_by": "test macro-F1",
                                           "rows": "train+validation (the baseline's fit rows), test excluded",
                                           **metrics["cross_validation"], "seconds": round(time.perf_counter() - t, 1)}
                shutil.rmtree(folder, ignore_errors=True)
                cvr = out["best_baseline_cv"]
                log(f"quality {lang}: CV accuracy {cvr['accuracy_mean']:.4f} ± {cvr['accuracy_std']:.4f}, "
                    f"macro-F1 {cvr['macro_f1_mean']:.4f} ± {cvr['macro_f1_std']:.4f}")
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                out["best_baseline_cv"] = {"name": best_f1["name"], "error": f"{type(exc).__name__}: {exc}"}

    # recurrent cells
    cells: list[dict[str, Any]] = []
    for cell in CELLS:
        t = time.perf_counter()
        log(f"quality {lang}: training {cell} (device {cfg.device})")
        try:
            folder, metrics = _train_cell(cfg, path, state, lang, cell, cfg.rnn_epochs)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            cells.append({"name": cell, "kind": "recurrent", "cell": cell, "error": f"{type(exc).__name__}: {exc}"})
            continue
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        row = _cell_row(cell, metrics, manifest["params"]["rnn"], time.perf_counter() - t)
        cells.append(row)
        state.artifacts[(lang, cell)] = folder
        digests[row["name"]] = artifact_test_digest(folder)
        log(f"quality {lang} {row['name']}: acc {row['accuracy']:.4f} F1 {row['macro_f1']:.4f} best epoch "
            f"{row['best_epoch']}/{row['epochs_run']} train {row['train_seconds']:.1f}s on {row['device']}; "
            f"val F1 by epoch {row['val_macro_f1_by_epoch']}")
        gc.collect()
    out["recurrent"] = cells
    out["recurrent_params"] = "RNNParams() defaults" + (f", epochs={cfg.rnn_epochs}" if cfg.rnn_epochs else "")

    # fastText
    log(f"quality {lang}: fastText supervised")
    try:
        out["fasttext"] = bench_fasttext(cfg, state, lang, path)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        out["fasttext"] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    log(f"quality {lang}: fastText -> " + (f"acc {out['fasttext']['accuracy']:.4f}" if out["fasttext"].get(
        "available") else f"unavailable: {out['fasttext'].get('reason')}"))

    out["same_test_split"] = {"all_models": all(d == expected_test for d in digests.values()),
                              "models_checked": len(digests)}
    out["summary"] = _summary(lang, ok, [c for c in cells if "error" not in c], out["fasttext"])
    return out


def _summary(lang: str, baselines: list[dict[str, Any]], cells: list[dict[str, Any]],
             fasttext: dict[str, Any]) -> dict[str, Any]:
    def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not rows:
            return None
        r = max(rows, key=lambda r: (r["accuracy"], r["macro_f1"]))
        return {"name": r["name"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}

    bb, br = best(baselines), best(cells)
    everything = baselines + cells + ([fasttext] if fasttext.get("available") else [])
    top = best(everything)
    out: dict[str, Any] = {
        "ranked_by": "test accuracy (ties: macro-F1)",
        "best_baseline": bb,
        "best_recurrent": br,
        "best_overall": top,
        "recurrent_at_or_above_best_bow": (br["accuracy"] >= bb["accuracy"]) if bb and br else None,
        "recurrent_minus_best_bow_accuracy": round(br["accuracy"] - bb["accuracy"], 4) if bb and br else None,
    }
    if lang == "en":
        out["goal"] = {"target": ">= 80% test accuracy on English",
                       "best_accuracy": top["accuracy"] if top else None, "by": top["name"] if top else None,
                       "met": bool(top and top["accuracy"] >= 0.80)}
    return out


def bench_quality(cfg: Config, state: State) -> dict[str, Any]:
    from nlp_service.classify import tokenizer_for_classification

    out: dict[str, Any] = {
        "split": {**SPLIT, "how": "nlp_service.classify stratified_split; baselines fit on train+validation "
                  "(no early stopping), recurrent cells train on train and stop early on validation macro-F1; "
                  "all are scored on the same test rows"},
        "tokenizer": tokenizer_for_classification().to_dict(),
        "timings": "train_seconds: baselines include tokenization + vectorizing + fit; recurrent cells the "
                   "training loop only (tokenization and vocabulary excluded). predict_seconds: on the test "
                   "rows; baselines include tokenization, recurrent cells do not.",
        "languages": {},
    }
    if cfg.rows:
        out["rows_per_language"] = f"a seeded sample of {cfg.rows} rows (--rows / --quick)"
    for lang in LANGUAGES:
        t = time.perf_counter()
        log(f"== quality {lang}")
        out["languages"][lang] = _quality_language(cfg, state, lang)
        out["languages"][lang]["seconds"] = round(time.perf_counter() - t, 1)
    return out


# ---- 2. throughput -------------------------------------------------------------------------------


def _throughput_models(cfg: Config, state: State) -> dict[str, tuple[str, Path]]:
    """(description, folder) of the Spanish LSTM and baseline: from section 1, or trained now."""
    path = dataset(cfg, state, "es")
    models: dict[str, tuple[str, Path]] = {}
    if ("es", "lstm") in state.artifacts:
        models["lstm"] = ("Spanish BiLSTM of the quality section", state.artifacts[("es", "lstm")])
    else:
        log(f"throughput: training a Spanish LSTM ({cfg.fallback_lstm_epochs} epochs; quality section skipped)")
        folder, _ = _train_cell(cfg, path, state, "es", "lstm", cfg.fallback_lstm_epochs)
        models["lstm"] = (f"Spanish BiLSTM trained here, {cfg.fallback_lstm_epochs} epochs", folder)
    if "es" in state.best_bow:
        label, folder = state.best_bow["es"]
        models["bow"] = (f"best Spanish baseline by test macro-F1: {label}", folder)
    else:
        folder, _ = _train_baseline(path, state, "es", DEFAULT_BOW)
        models["bow"] = (f"the service's default baseline {bow_params(DEFAULT_BOW).label}", folder)
    return models


def _bare(cfg: Config, folder: Path, texts: list[str]) -> dict[str, Any]:
    from nlp_service.classify import ClassifierModel

    model = ClassifierModel.load(folder, device=cfg.device)
    model.predict_proba(texts[:64])  # warm-up: first-call costs (spaCy, allocator) off the clock
    runs = []
    for _ in range(max(1, cfg.bare_repeats)):
        t = time.perf_counter()
        model.predict_proba(texts)
        runs.append(time.perf_counter() - t)
    med = statistics.median(runs)
    single_n = min(len(texts), 300)
    lat = []
    for text in texts[:single_n]:
        t = time.perf_counter()
        model.predict_proba([text])
        lat.append(time.perf_counter() - t)
    device = getattr(model.impl, "device_name", "cpu")
    extra: dict[str, Any] = {}
    if model.backend == "rnn" and device == "cpu":
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            one = []
            for _ in range(max(1, cfg.bare_repeats)):
                t = time.perf_counter()
                model.predict_proba(texts)
                one.append(time.perf_counter() - t)
        finally:
            torch.set_num_threads(threads)
        extra["bare_1_thread"] = {"what": "the same call with torch.set_num_threads(1)",
                                  "runs_s": [round(r, 4) for r in one],
                                  "texts_per_s": round(len(texts) / statistics.median(one), 1)}
    del model
    gc.collect()
    return {**extra,
        "bare": {"what": f"model.predict_proba(texts) on {len(texts)} texts in one call", "device": device,
                 "runs_s": [round(r, 4) for r in runs], "median_s": round(med, 4),
                 "texts_per_s": round(len(texts) / med, 1)},
        "bare_one_text_per_call": {"what": f"model.predict_proba([text]) for {single_n} texts, one after another",
                                   "texts_per_s": round(single_n / sum(lat), 1), "latency": latency(lat)},
    }


def _batching(base: str, name: str) -> dict[str, Any] | None:
    import httpx

    body = httpx.get(f"{base}/v1/models", timeout=30).json()
    for m in body.get("models", []):
        if m.get("name") == name:
            return m.get("batching")
    return None


def _batching_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any] | None:
    if after is None:
        return None
    before = before or {"batches": 0, "items": 0, "busy_seconds": 0.0}
    batches = after["batches"] - before["batches"]
    items = after["items"] - before["items"]
    return {"batches": batches, "items": items, "mean_batch": round(items / batches, 2) if batches else None,
            "max_batch_since_start": after["max_batch"],
            "worker_busy_seconds": round(after["busy_seconds"] - before["busy_seconds"], 3)}


def _http_single(server: Server, route: str, payloads: list[dict[str, Any]], warmup: int,
                 max_seconds: float) -> dict[str, Any]:
    import httpx

    statuses: Counter[int] = Counter()
    lat: list[float] = []
    with httpx.Client(base_url=server.base, timeout=60.0) as client:
        for payload in payloads[:warmup]:
            client.post(route, json=payload)
        server_cpu, client_cpu = process_cpu_s(server.pid), own_cpu_s()
        t0 = time.perf_counter()
        for payload in payloads[warmup:]:
            if time.perf_counter() - t0 > max_seconds:
                break
            t = time.perf_counter()
            resp = client.post(route, json=payload)
            lat.append(time.perf_counter() - t)
            statuses[resp.status_code] += 1
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = process_cpu_s(server.pid) - server_cpu, own_cpu_s() - client_cpu
    ok = statuses.get(200, 0)
    return {"requests": len(lat), "stopped_at_time_cap": len(lat) < len(payloads) - warmup,
            "wall_s": round(wall, 3), "texts_per_s": round(ok / wall, 1) if wall else None,
            "latency": latency(lat), "status_codes": {str(k): v for k, v in sorted(statuses.items())},
            "server_cpu_ms_per_request": round(server_cpu * 1000 / len(lat), 3) if lat else None,
            "client_cpu_ms_per_request": round(client_cpu * 1000 / len(lat), 3) if lat else None,
            "_wall": wall, "_server_cpu": server_cpu}


def _http_concurrent(server: Server, route: str, model: str, payloads: list[dict[str, Any]], warmup: int,
                     concurrency: int, max_seconds: float, client_kind: str = "httpx") -> dict[str, Any]:
    """``concurrency`` tasks share the payloads (one text each); the first ``warmup`` are sent untimed."""
    run: LoadRun = asyncio.run(load_test(server, route, payloads, warmup=warmup, concurrency=concurrency,
                                         client_kind=client_kind, max_seconds=max_seconds,
                                         probe=lambda: _batching(server.base, model)))
    ok = run.statuses.get(200, 0)
    return {"client": client_kind, "requests": len(run.latencies), "concurrency": concurrency,
            "stopped_at_time_cap": run.stopped_at_time_cap,
            "wall_s": round(run.wall_s, 3), "texts_per_s": round(ok / run.wall_s, 1) if run.wall_s else None,
            "latency": latency(run.latencies), "status_codes": run.status_codes,
            "client_errors": dict(run.failures), **run.cpu_ms_per_request(3),
            "batching": {"what": "the model's micro-batcher during the timed run (GET /v1/models, difference)",
                         **(_batching_delta(run.probe_before, run.probe_after) or {})},
            "_wall": run.wall_s, "_server_cpu": run.server_cpu_s}


def _serve_and_measure(cfg: Config, state: State, names: dict[str, str], texts: list[str],
                       extra_env: dict[str, str], label: str) -> dict[str, Any]:
    """Start a real server holding both models, measure one client and N concurrent clients per model."""
    env = {"NLP_DEVICE": cfg.device, "NLP_DEFAULT_SENTIMENT_MODEL": names["lstm"],
           "NLP_DEFAULT_CLASSIFIER_MODEL": names["bow"], "NLP_MAX_TEXTS": "256", **extra_env}
    log(f"throughput [{label}]: starting server with {names['lstm']}, {names['bow']} {extra_env or ''}")
    server = start_server(["--models-dir", str(state.models_dir), "--model", names["lstm"], "--model", names["bow"]],
                          state.workdir / f"server-{label}.log", env=env, expect_models=names.values())
    log(f"throughput [{label}]: server ready on {server.base} after {server.ready_s:.2f}s")
    out: dict[str, Any] = {
        "server": {"command": "python -m nlp_service serve --host 127.0.0.1 --models-dir <scratch> --model <lstm> "
                   "--model <bow> (uvicorn, 1 process, access log at info; serve's own thread defaults: "
                   "NLP_BLAS_THREADS=1, OMP_WAIT_POLICY=PASSIVE, torch intra-op threads = cores unless "
                   "OMP_NUM_THREADS is set)",
                   "env": {"NLP_DEVICE": cfg.device, "NLP_MAX_TEXTS": "256",
                           "NLP_DEFAULT_SENTIMENT_MODEL": names["lstm"], **extra_env},
                   "startup_to_ready_s": round(server.ready_s, 2)},
    }
    try:
        routes = {"lstm": ("/v1/sentiment", lambda t: {"texts": [t]}),
                  "bow": ("/v1/classify", lambda t: {"model": names["bow"], "texts": [t]})}
        total, warm_single, warm_conc = cfg.http_requests, 50, 200
        for key, (route, make) in routes.items():
            n = total + warm_conc
            payloads = [make(t) for t in (texts * math.ceil(n / len(texts)))[:n]]
            single = _http_single(server, route, payloads[: total + warm_single], warm_single,
                                  cfg.http_max_seconds)
            lat = single["latency"] or {}
            log(f"throughput [{label}] {key}: http_single {single['texts_per_s']} texts/s p50 {lat.get('p50_ms')} "
                f"ms p99 {lat.get('p99_ms')} ms, server {single['server_cpu_ms_per_request']} ms cpu/req, "
                f"statuses {single['status_codes']}")
            conc = _http_concurrent(server, route, names[key], payloads, warm_conc, cfg.http_concurrency,
                                    cfg.http_max_seconds)
            lat = conc["latency"] or {}
            log(f"throughput [{label}] {key}: http_concurrent {conc['texts_per_s']} texts/s p50 "
                f"{lat.get('p50_ms')} ms p99 {lat.get('p99_ms')} ms, mean batch {conc['batching'].get('mean_batch')}, "
                f"server {conc['server_cpu_ms_per_request']} / client {conc['client_cpu_ms_per_request']} ms "
                f"cpu/req, statuses {conc['status_codes']} errors {conc['client_errors']}")
            light = _http_concurrent(server, route, names[key], payloads, warm_conc, cfg.http_concurrency,
                                     cfg.http_max_seconds, client_kind="light")
            lat = light["latency"] or {}
            log(f"throughput [{label}] {key}: http_concurrent_light_client {light['texts_per_s']} texts/s p50 "
                f"{lat.get('p50_ms')} ms p99 {lat.get('p99_ms')} ms, mean batch {light['batching'].get('mean_batch')}, "
                f"server {light['server_cpu_ms_per_request']} / client {light['client_cpu_ms_per_request']} ms "
                f"cpu/req, statuses {light['status_codes']} errors {light['client_errors']}")
            for res in (single, conc, light):
                wall, server_cpu = res.pop("_wall"), res.pop("_server_cpu")
                res["server_cores_busy"] = round(server_cpu / wall, 2) if wall else None
            out[key] = {"route": route, "http_single": single, "http_concurrent": conc,
                        "http_concurrent_light_client": light}
    finally:
        server.stop()
        log(f"throughput [{label}]: server stopped")
    errors = [line for line in server.log_path.read_text(errors="replace").splitlines()
              if "ERROR" in line or "Traceback" in line]
    out["server"]["log_error_lines"] = errors[:20]
    return out


def bench_throughput(cfg: Config, state: State) -> dict[str, Any]:
    from nlp_service.classify import read_labeled

    models = _throughput_models(cfg, state)
    es_path = dataset(cfg, state, "es")
    split = json.loads((models["lstm"][1] / "split.json").read_text(encoding="utf-8"))
    data = read_labeled([es_path])
    test_texts = [data.texts[i] for i in split["indices"]["test"]]
    n = cfg.throughput_texts
    texts = (test_texts * math.ceil(n / len(test_texts)))[:n]
    out: dict[str, Any] = {
        "texts": f"{n} Spanish test texts ({len(test_texts)} distinct, repeated), mean "
                 f"{np.mean([len(t) for t in texts]):.0f} characters",
        "device": cfg.device,
        "clients": {
            "http_single": "one httpx.Client, keep-alive, one text per request, sequential",
            "http_concurrent": f"{cfg.http_concurrency} asyncio tasks on one httpx.AsyncClient (the reference client)",
            "http_concurrent_light_client": f"{cfg.http_concurrency} asyncio connections speaking minimal HTTP/1.1 "
                                            "keep-alive: much less client CPU, closer to the server's own capacity",
            "note": f"clients run in the benchmark process on the same {os.cpu_count()} cores as the server: "
                    "client_cpu_ms_per_request is CPU the server could not use",
        },
        "models": {k: {"what": what, "name": folder.name} for k, (what, folder) in models.items()},
    }
    for key, (_, folder) in models.items():
        log(f"throughput {key}: bare predict_proba")
        res = _bare(cfg, folder, texts)
        out["models"][key].update(res)
        log(f"throughput {key}: bare {res['bare']['texts_per_s']} texts/s (runs {res['bare']['runs_s']}), "
            f"one per call {res['bare_one_text_per_call']['texts_per_s']} texts/s"
            + (f", 1 thread {res['bare_1_thread']['texts_per_s']} texts/s" if "bare_1_thread" in res else ""))

    names = {k: folder.name for k, (_, folder) in models.items()}
    served = _serve_and_measure(cfg, state, names, texts, {}, "default")
    out["server"] = served.pop("server")
    for key, res in served.items():
        entry = out["models"][key]
        entry.update(res)
        bare = entry["bare"]["texts_per_s"]
        entry["ratio_http_concurrent_to_bare"] = ratio(res["http_concurrent"]["texts_per_s"], bare, 3)
        entry["ratio_http_single_to_bare"] = ratio(res["http_single"]["texts_per_s"], bare, 3)
        entry["ratio_http_concurrent_light_client_to_bare"] = ratio(
            res["http_concurrent_light_client"]["texts_per_s"], bare, 3)
        entry["goal"] = {"target": "http_concurrent texts/s >= 0.5 x bare predict_proba texts/s",
                         "met": (entry["ratio_http_concurrent_to_bare"] or 0) >= 0.5,
                         "met_with_light_client": (entry["ratio_http_concurrent_light_client_to_bare"] or 0) >= 0.5}
    if cfg.threads_diagnostic:
        diag = _serve_and_measure(cfg, state, names, texts, SINGLE_THREAD_BLAS, "1-thread")
        block: dict[str, Any] = {"why": "the same server with torch's intra-op threads also limited to one "
                                 "(OMP_NUM_THREADS=1): on few cores, they compete with the event loop and the client",
                                 "server": diag.pop("server")}
        for key, res in diag.items():
            bare = out["models"][key]["bare"]["texts_per_s"]
            block[key] = {**res, "ratio_http_concurrent_to_bare": ratio(res["http_concurrent"]["texts_per_s"], bare, 3),
                          "ratio_http_concurrent_light_client_to_bare": ratio(
                              res["http_concurrent_light_client"]["texts_per_s"], bare, 3)}
        out["diagnostic_single_thread_server"] = block
    return out


# ---- markdown ------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(doc: dict[str, Any]) -> str:
    lines: list[str] = [f"## benchmarks/classify.py ({doc['started_at']}, {doc['wall_seconds']} s"
                        f"{', quick' if doc['config']['quick'] else ''})", ""]
    m = doc["machine"]
    lines += [f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, torch {m['torch']['version']} "
              f"({m['torch']['threads']} threads), CUDA: {m['torch']['cuda_device'] or 'none'}", ""]
    quality = doc.get("quality", {})
    for lang, res in quality.get("languages", {}).items():
        d = res["data"]
        lines += [f"### Quality, {lang} ({d['rows']} rows; test {d['split_sizes']['test']})", "",
                  "| model | kind | accuracy | macro-F1 | train s | predict s | notes |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        rows = [r for r in res["baselines"] + res["recurrent"] if "error" not in r]
        if res["fasttext"].get("available"):
            rows.append(res["fasttext"])
        for r in sorted(rows, key=lambda r: (-r["accuracy"], -r["macro_f1"])):
            note = ""
            if r["kind"] == "recurrent":
                note = f"best epoch {r['best_epoch']}/{r['epochs_run']}, {r['device']}"
            elif r["kind"] == "bow":
                note = f"{r['n_features']:,} features"
            lines.append(f"| {r['name']} | {r['kind']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                         f"{_fmt(r['train_seconds'], 2)} | {_fmt(r['predict_seconds'], 3)} | {note} |")
        for r in res["baselines"] + res["recurrent"]:
            if "error" in r:
                lines.append(f"| {r['name']} | {r['kind']} | error | | | | {r['error'][:80]} |")
        ft = res["fasttext"]
        lines.append("")
        if not ft.get("available"):
            lines.append(f"fastText: not available ({ft.get('reason')})")
        cv = res.get("best_baseline_cv")
        if cv and "error" not in cv:
            lines.append(f"{cv['k']}-fold CV of {cv['name']}: accuracy {cv['accuracy_mean']:.4f} ± "
                         f"{cv['accuracy_std']:.4f}, macro-F1 {cv['macro_f1_mean']:.4f} ± {cv['macro_f1_std']:.4f}")
        s = res["summary"]
        lines.append(f"Recurrent at or above the best baseline: {s['recurrent_at_or_above_best_bow']} "
                     f"({_fmt(s['recurrent_minus_best_bow_accuracy'])} accuracy)")
        if "goal" in s:
            lines.append(f"Goal {s['goal']['target']}: met={s['goal']['met']} ({s['goal']['by']}, "
                         f"{_fmt(s['goal']['best_accuracy'])})")
        lines.append("")
    tp = doc.get("throughput", {})
    if "models" in tp:
        lines += [f"### Throughput ({tp['texts']}; device {tp['device']})", "",
                  "One text per request. x32: 32 concurrent clients (httpx.AsyncClient; light: minimal HTTP/1.1 "
                  "client). Batch: mean texts per forward pass of the server's micro-batcher.", "",
                  "| model | server | bare texts/s | single texts/s (p50 / p99 ms) | x32 httpx texts/s (p50 / p99 ms) "
                  "| batch | x32 light texts/s (p50 / p99 ms) | batch | x32 / bare (httpx, light) |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

        def row(key: str, server: str, bare: Any, e: dict[str, Any]) -> str:
            cells = []
            for kind in ("http_single", "http_concurrent", "http_concurrent_light_client"):
                r = e.get(kind)
                if r is None:
                    cells.append("-")
                    continue
                lat = r["latency"] or {}
                cells.append(f"{r['texts_per_s']} ({lat.get('p50_ms')} / {lat.get('p99_ms')})")
                if kind != "http_single":
                    cells.append(str(r["batching"].get("mean_batch")))
            ratios = f"{e.get('ratio_http_concurrent_to_bare')}, {e.get('ratio_http_concurrent_light_client_to_bare')}"
            return f"| {key} | {server} | {bare} | {' | '.join(cells)} | {ratios} |"

        for key, e in tp["models"].items():
            if "http_single" in e:
                lines.append(row(f"{key} ({e['name']})", "default", e["bare"]["texts_per_s"], e))
        for key, e in tp.get("diagnostic_single_thread_server", {}).items():
            if isinstance(e, dict) and "http_single" in e:
                lines.append(row(key, "1 torch/BLAS thread", tp["models"][key]["bare"]["texts_per_s"], e))
        for key, e in tp["models"].items():
            if "bare_1_thread" in e:
                lines.append(f"\n{key} bare with torch.set_num_threads(1): {e['bare_1_thread']['texts_per_s']} "
                             f"texts/s; one text per call: {e['bare_one_text_per_call']['texts_per_s']} texts/s")
        lines.append("")
    return "\n".join(lines) + "\n"


# ---- main ----------------------------------------------------------------------------------------

_RUNNERS: dict[str, Callable[[Config, State], dict[str, Any]]] = {
    "quality": bench_quality,
    "throughput": bench_throughput,
}


def _goals(doc: dict[str, Any]) -> dict[str, Any]:
    goals: dict[str, Any] = {}
    for lang, res in doc.get("quality", {}).get("languages", {}).items():
        s = res.get("summary", {})
        if "goal" in s:
            goals["english_accuracy_at_least_0_80"] = s["goal"]["met"]
        goals[f"recurrent_at_or_above_best_bow_{lang}"] = s.get("recurrent_at_or_above_best_bow")
    for key, e in doc.get("throughput", {}).get("models", {}).items():
        if "goal" in e:
            goals[f"http_concurrent_at_least_half_of_bare_{key}"] = e["goal"]["met"]
    return goals


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.chdir(REPO_ROOT)
    use_library()
    with scratch_folder("nlp-bench-classify-", cfg.workdir, cfg.keep_workdir) as scratch:
        state = State(workdir=scratch, models_dir=scratch / "models")
        doc = new_document("benchmarks/classify.py", cfg, machine=machine(cfg))
        if doc["machine"]["other_benchmarks_running_at_start"]:
            log("WARNING: other benchmarks are running; timings will be skewed: "
                + "; ".join(doc["machine"]["other_benchmarks_running_at_start"]))
        log(f"scratch folder {scratch}; sections: {', '.join(cfg.sections)}")
        failed = run_sections(doc, {name: functools.partial(run, cfg, state) for name, run in _RUNNERS.items()},
                              cfg.sections)
    doc["goals"] = _goals(doc)
    write_document(doc, cfg.out)
    if cfg.markdown:
        md = markdown(doc)
        if cfg.markdown == "-":
            sys.stderr.write("\n" + md)
        else:
            Path(cfg.markdown).write_text(md, encoding="utf-8")
            log(f"wrote {cfg.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
