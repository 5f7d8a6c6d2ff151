#!/usr/bin/env python
"""Benchmark the native vector store and the word2vec / fastText pipelines against gensim (and the fastText
library), in the same run.

Prints ONE JSON document on stdout; progress goes to stderr. Nothing is asserted: goals are
reported next to the measurements with ``"met": true|false``.

Sections (``--sections``, default all):

* ``ready_to_answer``      load + first top-10 query of a synthetic N x 300 set, each in a fresh
                           subprocess: native store vs gensim word2vec binary / text / native mmap.
* ``neighbour_latency``    top-10 latency: exact and HNSW paths vs gensim; recall on real vectors.
* ``ann_libraries``        the HNSW index itself: usearch (ours) vs hnswlib (when importable) vs exact
                           search on the same vectors (real and synthetic): build, load, size/memory,
                           recall@10 and latency per ef.
* ``word2vec_throughput``  our raw-text pipeline vs gensim on pre-tokenized sentences.
* ``fasttext_throughput``  ``train fasttext`` from raw text vs gensim ``FastText`` (sentences; corpus_file) vs
                           the fastText library's ``train_unsupervised``: same hyper-parameters, same threads.
* ``typos``                one-edit misspellings (deletion, swap of neighbours, accent dropped) of frequent
                           corpus words: how often the correct word is the misspelling's nearest neighbour
                           (top-1, top-5), for word2vec (no vector at all), our fastText, and cc.es.300 adapted
                           to the corpus (``--cc-es-bin``, when given: it is not downloadable here).
* ``http``                 requests/s and latency of /v1/similarity and /v1/neighbors on a real server.

Run from the repository root::

    .venv/bin/python benchmarks/vectors.py --quick > bench-out/vectors-quick.json
    .venv/bin/python benchmarks/vectors.py > bench-out/vectors.json 2> bench-out/vectors.log
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _harness import (
    REPO_ROOT,
    SINGLE_THREAD_BLAS,
    LoadRun,
    add_load_test_args,
    add_scratch_args,
    benchmark_parser,
    child_env,
    chosen_sections,
    finish_document,
    git_state,
    latency_stats,
    library_root,
    load_test,
    log,
    machine_info,
    median,
    new_document,
    nlp_service_cli,
    paired_ratio,
    ratio,
    run_sections,
    scratch_folder,
    serving,
    sizes,
    snapshot_library,
    use_library,
)

SECTIONS = ("ready_to_answer", "neighbour_latency", "ann_libraries", "word2vec_throughput", "fasttext_throughput",
            "typos", "http")
DIM = 300
REAL_MODEL = "w2v-es"
# The ef of the "approximate" figures and the 20x goal: the service's default (NLP_ANN_EF_SEARCH). Runs
# before usearch were at 64 as well (most_similar's default), though their output said 128.
ANN_EF = 64


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    sections: list[str]
    repeats: int
    cold_repeats: int
    ready_words: int
    text_words: int
    latency_words: int
    latency_queries: int
    ann_m: int
    ann_ef_construction: int
    real_queries: int
    w2v_epochs: int
    workers: int
    typo_words: int
    cc_es_bin: Path | None
    http_requests: int
    http_concurrency: int
    http_blas_diagnostic: bool
    http_max_seconds: float
    models_dir: Path
    workdir: Path | None
    keep_workdir: bool
    snapshot: bool
    quick: bool


# (full default, --quick default); an explicit option overrides either.
_SIZES: dict[str, tuple[int, int]] = {
    "repeats": (3, 1),
    "cold_repeats": (1, 1),
    "ready_words": (2_000_000, 200_000),
    "text_words": (200_000, 200_000),
    "latency_words": (200_000, 50_000),
    "latency_queries": (200, 100),
    "real_queries": (1000, 300),
    "w2v_epochs": (5, 1),
    "typo_words": (1000, 200),
    "http_requests": (2000, 300),
}


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = benchmark_parser("Native vector store and word2vec pipeline vs gensim. One JSON document on stdout, "
                         "progress on stderr.", SECTIONS,
                         quick_help="small sizes for a smoke run (200k ready words, 50k latency words, 1 epoch, "
                         "1 repeat)")
    p.add_argument("--repeats", type=int, help="fresh-process runs per variant (ready_to_answer, word2vec); "
                   "medians are reported [3; quick 1]")
    p.add_argument("--cold-repeats", type=int,
                   help="ready_to_answer runs after evicting the files from the page cache; 0 skips [1]")
    p.add_argument("--ready-words", type=int,
                   help="N of the synthetic N x 300 set [2,000,000; quick 200,000]")
    p.add_argument("--text-words", type=int,
                   help="words in the gensim text-format file (extrapolated linearly to N) [200,000]")
    p.add_argument("--latency-words", type=int,
                   help="synthetic set for neighbour latency [200,000; quick 50,000]")
    p.add_argument("--latency-queries", type=int, help="timed queries per path [200; quick 100]")
    p.add_argument("--ann-m", type=int, default=16,
                   help="HNSW M (usearch: connectivity) for every index built here")
    p.add_argument("--ann-ef-construction", type=int, default=200,
                   help="HNSW ef_construction (usearch: expansion_add)")
    p.add_argument("--real-queries", type=int,
                   help=f"vocabulary words for recall@10 on {REAL_MODEL} [1000; quick 300]")
    p.add_argument("--w2v-epochs", type=int, help="word2vec epochs [5; quick 1]")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="word2vec / fastText threads, every side")
    p.add_argument("--typo-words", type=int, help="frequent corpus words misspelled in the typos section "
                   "[1000; quick 200]")
    p.add_argument("--cc-es-bin", type=Path, help="cc.es.300.bin (or another fastText .bin) to adapt to the corpus "
                   "for the typos section (needs ~16 GB of memory for cc.es.300); skipped when not given")
    add_load_test_args(p, requests_help="timed requests per endpoint [2000; quick 300]",
                       max_seconds_help="time cap per endpoint and client: stop sending after this long")
    p.add_argument("--no-http-blas-diagnostic", dest="http_blas_diagnostic", action="store_false",
                   help="skip the second server run with single-threaded BLAS")
    p.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models",
                   help=f"folder holding {REAL_MODEL} (built with `nlp-service defaults` if missing)")
    add_scratch_args(p)
    p.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                   help="import the library from the working tree instead of a copy taken at start "
                   "(the default copy keeps a long run consistent while others edit the code)")
    a = p.parse_args(argv)
    return Config(sections=chosen_sections(p, a.sections, SECTIONS), ann_m=a.ann_m,
                  ann_ef_construction=a.ann_ef_construction, workers=a.workers, http_concurrency=a.http_concurrency,
                  http_blas_diagnostic=a.http_blas_diagnostic, http_max_seconds=a.http_max_seconds,
                  models_dir=a.models_dir.resolve(), workdir=a.workdir, keep_workdir=a.keep_workdir,
                  cc_es_bin=a.cc_es_bin.resolve() if a.cc_es_bin else None,
                  snapshot=a.snapshot, quick=a.quick, **sizes(a, _SIZES))


# ---- small helpers -------------------------------------------------------------------------------


def time_interleaved(
    fns: dict[str, Callable[[Any], Any]], items: Sequence[Any], warmup: int = 5
) -> dict[str, tuple[list[float], list[Any]]]:
    """Time every ``fn(item)`` once per item, the functions interleaved (order rotating per item) so
    that machine noise and drift hit them alike; ``warmup`` untimed items first.

    Returns, per function name, the seconds and the results in item order.
    """
    names = list(fns)
    for item in items[:warmup]:
        for name in names:
            fns[name](item)
    out: dict[str, tuple[list[float], list[Any]]] = {name: ([], []) for name in names}
    for i, item in enumerate(items):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t = time.perf_counter()
            result = fns[name](item)
            out[name][0].append(time.perf_counter() - t)
            out[name][1].append(result)
    return out


def synthetic(n: int, dim: int = DIM) -> tuple[list[str], np.ndarray]:
    """Words ``w0..w{n-1}`` and a standard-normal float32 matrix from ``default_rng(0)``."""
    rng = np.random.default_rng(0)
    return [f"w{i}" for i in range(n)], rng.standard_normal((n, dim), dtype=np.float32)


def keyed_vectors(words: list[str], matrix: np.ndarray) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(matrix.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, matrix)
    return kv


def mean_overlap(results: Sequence[Sequence[str]], reference: Sequence[Sequence[str]], k: int = 10) -> float:
    """Mean share of each reference top-k found in the matching result top-k (recall@k)."""
    hits = [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(results, reference, strict=True)]
    return round(float(np.mean(hits)), 4)


def folder_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def size_mb(paths: Sequence[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths) / 1e6, 1)


def evict_from_page_cache(paths: Sequence[Path]) -> None:
    """Ask the kernel to drop these files' cached pages (fsync first so none are dirty)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached_fraction(paths: Sequence[Path]) -> float | None:
    """Share of the files' pages resident in the page cache (util-linux ``fincore``), if available."""
    if shutil.which("fincore") is None:
        return None
    try:
        cmd = ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *map(str, paths)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    res = size = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            res, size = res + int(parts[0]), size + int(parts[1])
    return round(res / size, 3) if size else None


def machine() -> dict[str, Any]:
    blas = None
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]  # type: ignore[index]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:
        pass
    packages = ("numpy", "gensim", "usearch", "hnswlib", "scipy", "fastapi", "uvicorn", "httpx", "nlp-service")
    return {**machine_info(packages, keep_missing=True), "numpy_blas": blas}


# ---- 1. ready to answer --------------------------------------------------------------------------

# Runs in a fresh interpreter: argv = kind, path, query word, second query word.
_READY_CHILD = r"""
import json, sys, time
kind, path, q1, q2 = sys.argv[1:5]
t0 = time.perf_counter()
if kind == "native_store":
    from pathlib import Path
    from nlp_service.vectors import VectorStore
else:
    from gensim.models import KeyedVectors
t1 = time.perf_counter()
if kind == "native_store":
    store = VectorStore.load(Path(path))
    def query(word):
        return [n.word for n in store.most_similar([word], topn=10)]
else:
    if kind == "gensim_native_mmap":
        kv = KeyedVectors.load(path, mmap="r")
    else:
        kv = KeyedVectors.load_word2vec_format(path, binary=kind == "gensim_word2vec_binary")
    def query(word):
        return [w for w, _ in kv.most_similar(word, topn=10)]
t2 = time.perf_counter()
first = query(q1)
t3 = time.perf_counter()
query(q2)
t4 = time.perf_counter()
# VmHWM, not ru_maxrss: the latter is inherited from the (large) parent across fork + exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2, "ready_s": t3 - t1,
                  "second_query_s": t4 - t3, "top10": first, "peak_rss_mb": hwm / 1024}))
"""

_READY_KINDS = ("native_store", "gensim_word2vec_binary", "gensim_word2vec_text", "gensim_native_mmap")
# The text format is bound by parsing, not I/O: a cold-cache run of it would only cost minutes.
_COLD_KINDS = ("native_store", "gensim_word2vec_binary", "gensim_native_mmap")


def _ready_child(kind: str, path: Path, q1: str, q2: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _READY_CHILD, kind, str(path), q1, q2], cwd=library_root(),
                          env=child_env(), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("ready_s", "load_s", "first_query_s", "second_query_s", "import_s", "peak_rss_mb")
    out: dict[str, Any] = {f"median_{k}": round(median([r[k] for r in runs]), 4) for k in keys}
    out["runs_ready_s"] = [round(r["ready_s"], 4) for r in runs]
    return out


def bench_ready(cfg: Config, workdir: Path) -> dict[str, Any]:
    from nlp_service.vectors import VectorStore

    n = cfg.ready_words
    n_text = min(cfg.text_words, n)
    root = workdir / "ready"
    root.mkdir(parents=True)
    paths = {
        "native_store": root / "native_store",
        "gensim_word2vec_binary": root / "vectors.bin",
        "gensim_word2vec_text": root / f"vectors-{n_text}.txt",
        "gensim_native_mmap": root / "gensim" / "vectors.kv",
    }
    paths["gensim_native_mmap"].parent.mkdir()
    write_s: dict[str, float] = {}

    log(f"ready_to_answer: generating {n:,} x {DIM} float32")
    words, matrix = synthetic(n)
    t = time.perf_counter()
    VectorStore.from_vectors(words, matrix).save(paths["native_store"])
    write_s["native_store"] = time.perf_counter() - t
    gc.collect()
    log(f"ready_to_answer: native store written in {write_s['native_store']:.1f}s; writing gensim files")
    kv = keyed_vectors(words, matrix)
    del matrix
    t = time.perf_counter()
    kv.save_word2vec_format(str(paths["gensim_word2vec_binary"]), binary=True)
    write_s["gensim_word2vec_binary"] = time.perf_counter() - t
    t = time.perf_counter()
    kv.save(str(paths["gensim_native_mmap"]))
    write_s["gensim_native_mmap"] = time.perf_counter() - t
    t = time.perf_counter()
    keyed_vectors(words[:n_text], kv.vectors[:n_text]).save_word2vec_format(
        str(paths["gensim_word2vec_text"]), binary=False)
    write_s["gensim_word2vec_text"] = time.perf_counter() - t
    del kv, words
    gc.collect()
    os.sync()
    # gensim's save() puts large arrays beside the file (vectors.kv.vectors.npy): take its whole folder.
    files = {k: folder_files(p.parent if k == "gensim_native_mmap" else p) for k, p in paths.items()}
    log("ready_to_answer: files written " + ", ".join(f"{k} {size_mb(v):,.0f} MB" for k, v in files.items()))

    q1, q2 = f"w{123_457 % n_text}", f"w{987_653 % n_text}"  # in every file, including the text one
    warm: dict[str, list[dict[str, Any]]] = {k: [] for k in _READY_KINDS}
    cache_before: dict[str, float | None] = {k: cached_fraction(files[k]) for k in _READY_KINDS}
    for rep in range(cfg.repeats):  # interleaved, so drift hits every variant alike
        for kind in _READY_KINDS:
            run = _ready_child(kind, paths[kind], q1, q2)
            warm[kind].append(run)
            log(f"ready_to_answer warm {rep + 1}/{cfg.repeats} {kind}: ready {run['ready_s']:.3f}s "
                f"(load {run['load_s']:.3f} + first query {run['first_query_s']:.3f})")
    cold: dict[str, list[dict[str, Any]]] = {k: [] for k in _READY_KINDS}
    for rep in range(cfg.cold_repeats):
        for kind in _COLD_KINDS:
            evict_from_page_cache(files[kind])
            resident = cached_fraction(files[kind])
            run = _ready_child(kind, paths[kind], q1, q2)
            run["resident_before"] = resident
            cold[kind].append(run)
            log(f"ready_to_answer cold {rep + 1}/{cfg.cold_repeats} {kind}: ready {run['ready_s']:.3f}s "
                f"(resident before: {resident})")

    def block(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in _READY_KINDS:
            if not runs[kind]:
                continue
            out[kind] = _summarise_runs(runs[kind])
            if "resident_before" in runs[kind][0]:
                out[kind]["resident_fraction_before"] = [r["resident_before"] for r in runs[kind]]
            if kind == "gensim_word2vec_text" and n_text < n:
                out[kind]["measured_words"] = n_text
                out[kind]["extrapolated_from"] = n_text
                out[kind]["median_ready_s_extrapolated"] = round(out[kind]["median_ready_s"] * n / n_text, 2)
        return out

    def ready_of(summary: dict[str, Any], kind: str) -> float | None:
        if kind not in summary:
            return None
        return summary[kind].get("median_ready_s_extrapolated", summary[kind]["median_ready_s"])

    warm_block, cold_block = block(warm), block(cold)
    tops = {k: warm[k][0]["top10"] for k in _READY_KINDS}
    native_ready = ready_of(warm_block, "native_store")
    return {
        "words": n,
        "dim": DIM,
        "repeats": cfg.repeats,
        "cold_repeats": cfg.cold_repeats,
        "query_words": [q1, q2],
        "timed": "load + first most_similar(topn=10) in a fresh subprocess, imports excluded (reported "
                 "separately as median_import_s); gensim's first query includes its norm computation",
        "page_cache": "warm_cache: files were just written and read by earlier runs (all fit in RAM), so "
                      "reads come from the OS page cache, not disk. cold_cache: the variant's files were "
                      "evicted with posix_fadvise(DONTNEED) right before the run; 'resident_before' is the "
                      "share still cached (fincore). The text format is not run cold (parse-bound).",
        "resident_fraction_before_warm_runs": cache_before,
        "write_seconds": {k: round(v, 2) for k, v in write_s.items()},
        "disk_mb": {k: size_mb(v) for k, v in files.items()},
        "top10_agrees_with_native": {  # the text file holds fewer words when n_text < n: not comparable
            k: tops[k] == tops["native_store"] if k != "gensim_word2vec_text" or n_text == n else None
            for k in _READY_KINDS
        },
        "warm_cache": warm_block,
        "cold_cache": cold_block,
        "ratio_gensim_over_native_warm": {
            k: ratio(ready_of(warm_block, k), native_ready, 1) for k in _READY_KINDS if k != "native_store"
        },
        "ratio_gensim_over_native_cold": {
            k: ratio(ready_of(cold_block, k), ready_of(cold_block, "native_store"), 1)
            for k in _READY_KINDS if k != "native_store" and k in cold_block
        },
        "goal": {
            "target": f"native store ready (load + first top-10 query) < 1 s at {n:,} words "
                      "(warm page cache)",
            "native_ready_s": native_ready,
            "native_ready_s_cold_cache": ready_of(cold_block, "native_store"),
            "met": native_ready is not None and native_ready < 1.0,
        },
    }


# ---- 2. neighbour latency ------------------------------------------------------------------------


_REAL_MODEL_CACHE: dict[str, tuple[Path, str]] = {}
# Store folders holding the synthetic set with its index, by (words, connectivity, expansion_add):
# ann_libraries reuses the one neighbour_latency built (minutes at 200k on 2 cores).
_SYNTHETIC_INDEX: dict[tuple[int, int, int], Path] = {}
_OPENS_CHILD = "import sys; from pathlib import Path; from nlp_service.vectors import VectorsModel; " \
               "VectorsModel.load(Path(sys.argv[1]))"


def _real_model_path(cfg: Config, workdir: Path) -> tuple[Path, str]:
    """The shipped Spanish model, and where it came from.

    Uses ``<models-dir>/w2v-es``, built with ``nlp-service defaults`` if missing. If it exists but the
    library as it is now cannot open it (checked in a fresh interpreter, as the server would open it),
    a fresh copy is built in the scratch folder instead, leaving the shared models folder alone.
    """
    if "path" in _REAL_MODEL_CACHE:
        return _REAL_MODEL_CACHE["path"]
    path = cfg.models_dir / REAL_MODEL
    models_dir, note = cfg.models_dir, f"{path}"
    if not (path / "manifest.json").is_file():
        note = f"{path} was missing: built with `nlp-service defaults`"
    else:
        check = subprocess.run([sys.executable, "-c", _OPENS_CHILD, str(path)], cwd=library_root(), env=child_env(),
                               capture_output=True, text=True, timeout=600)
        if check.returncode != 0:
            error = (check.stderr.strip().splitlines() or ["?"])[-1]
            models_dir = workdir / "models"
            note = f"{path} cannot be opened by the current library ({error}); rebuilt in the scratch folder"
    if not (models_dir / REAL_MODEL / "manifest.json").is_file():
        log(f"building {REAL_MODEL} with `nlp-service defaults --models-dir {models_dir}` (about a minute)")
        cmd = [*nlp_service_cli(), "defaults", "--models-dir", str(models_dir), "--only", REAL_MODEL]
        subprocess.run(cmd, cwd=library_root(), env=child_env(), check=True, stdout=sys.stderr)
    ann = json.loads((models_dir / REAL_MODEL / "store" / "store.json").read_text(encoding="utf-8")).get("ann") or {}
    if ann.get("library") != "usearch":  # hnswlib's (or none): its approximate queries would be exact
        copy = workdir / "models-reindexed" / REAL_MODEL
        shutil.copytree(models_dir / REAL_MODEL, copy)
        log(f"{REAL_MODEL}: index {ann.get('library')!r}, not usearch: `nlp-service convert --reindex` on a copy")
        subprocess.run([*nlp_service_cli(), "convert", "--reindex", str(copy)], cwd=library_root(),
                       env=child_env(), check=True, stdout=sys.stderr)
        models_dir = copy.parent
        note += f"; its {ann.get('library')} index rebuilt with usearch in a copy (`nlp-service convert --reindex`)"
    log(f"real model: {note}")
    _REAL_MODEL_CACHE["path"] = (models_dir / REAL_MODEL, note)
    return _REAL_MODEL_CACHE["path"]


def _latency_synthetic(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Exact, approximate and gensim top-10 latency on an N x 300 synthetic set."""
    from nlp_service.vectors import VectorStore

    n = cfg.latency_words
    log(f"neighbour_latency: {n:,} x {DIM} synthetic vectors")
    words, matrix = synthetic(n)
    folder = workdir / "latency_store"
    VectorStore.from_vectors(words, matrix).save(folder)
    store = VectorStore.load(folder)  # memory-mapped, as the service opens it
    in_memory = VectorStore.load(folder, mmap=False)
    kv = keyed_vectors(words, matrix)
    del matrix
    rng = np.random.default_rng(1)
    queries = [words[i] for i in rng.choice(n, size=min(cfg.latency_queries, n), replace=False)]
    kv.most_similar(queries[0], topn=10)  # gensim computes its norms on the first query: not timed
    log(f"neighbour_latency: building HNSW (connectivity={cfg.ann_m}, expansion_add={cfg.ann_ef_construction})")
    t = time.perf_counter()
    ann_info = store.build_ann(connectivity=cfg.ann_m, expansion_add=cfg.ann_ef_construction, progress=False)
    build_total = time.perf_counter() - t
    # Served as the service does: the saved index, memory-mapped (built indexes live in memory).
    store.save_ann(folder)
    store = VectorStore.load(folder)
    store.load_ann()
    log(f"neighbour_latency: HNSW built in {ann_info['build_seconds']:.1f}s; timing {len(queries)} queries")

    _SYNTHETIC_INDEX[(n, cfg.ann_m, cfg.ann_ef_construction)] = folder
    # Two groups, each interleaved: OpenBLAS's threads spin for a while after every call (exact,
    # gensim), taking a core from a single-threaded search that follows on 2 cores. One untimed pass
    # first (steady state: the index's mapped pages are in).
    timed = time_interleaved({
        "exact": lambda w: [x.word for x in store.most_similar([w], topn=10)],
        "exact_in_memory": lambda w: [x.word for x in in_memory.most_similar([w], topn=10)],
        "gensim": lambda w: [x for x, _ in kv.most_similar(w, topn=10)],
    }, queries)
    timed.update(time_interleaved({
        "approximate": lambda w: [x.word for x in store.most_similar([w], topn=10, approximate=True, ef=ANN_EF)],
        "approximate_ef128": lambda w: [x.word for x in store.most_similar([w], topn=10, approximate=True, ef=128)],
    }, queries, warmup=len(queries)))
    stats = {name: latency_stats(seconds) for name, (seconds, _) in timed.items()}
    log("neighbour_latency: medians " + ", ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in stats.items()))
    results = {name: res for name, (_, res) in timed.items()}
    gensim_ms = stats["gensim"]["median_ms"]
    return {
        "words": n,
        "dim": DIM,
        "queries": len(queries),
        "timing": "one call per query word; the BLAS paths (exact, exact_in_memory, gensim) interleaved, then "
                  "the approximate ones interleaved after one untimed pass over the same words (steady state: "
                  "usearch maps its file, pages come in as searches touch them); apart because OpenBLAS threads "
                  "spin after each call, taking a core from a search that follows; gensim's norms computed "
                  "before",
        "exact": {"what": "VectorStore.load(folder) (memory-mapped, as served), most_similar([w], topn=10)",
                  **stats["exact"]},
        "exact_in_memory": {"what": "VectorStore.load(folder, mmap=False), same call",
                            **stats["exact_in_memory"]},
        "approximate": {"what": "same store after build_ann, saved and reopened (index memory-mapped), "
                                 f"most_similar(..., approximate=True, ef={ANN_EF})", **stats["approximate"]},
        "approximate_ef128": {"what": "same, ef=128", **stats["approximate_ef128"]},
        "gensim": {"what": "KeyedVectors.most_similar(w, topn=10)", **stats["gensim"]},
        "ratio_gensim_over_exact_median": ratio(gensim_ms, stats["exact"]["median_ms"]),
        "ratio_gensim_over_exact_in_memory_median": ratio(gensim_ms, stats["exact_in_memory"]["median_ms"]),
        "ratio_gensim_over_approximate_median": ratio(gensim_ms, stats["approximate"]["median_ms"], 1),
        "ratio_gensim_over_approximate_ef128_median": ratio(gensim_ms, stats["approximate_ef128"]["median_ms"], 1),
        "paired_ratio_gensim_over_exact": paired_ratio(timed["gensim"][0], timed["exact"][0]),
        "exact_top10_agrees_with_gensim": mean_overlap(results["exact"], results["gensim"]),
        "ann_build": {"hnsw_build_seconds": ann_info["build_seconds"],
                      "build_ann_total_seconds_incl_recall_check": round(build_total, 2),
                      "library": ann_info["library"], "dtype": ann_info["dtype"],
                      "connectivity": cfg.ann_m, "expansion_add": cfg.ann_ef_construction, "ef_search": ANN_EF},
        "recall_at_10_random_vectors": {
            "note": "i.i.d. Gaussian vectors have no neighbourhood structure; HNSW recall on them is "
                    "meaningless for real use and only shown for completeness",
            "timed_queries": mean_overlap(results["approximate"], results["exact"]),
            "build_ann_estimate": ann_info.get("recall_at_10"),
        },
    }


_EF_SWEEP = (16, 32, 64, 128, 256)


def _latency_real(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Recall@10 of the HNSW path against exact search, and latencies, on the shipped Spanish model."""
    from nlp_service.vectors import VectorsModel

    path, source = _real_model_path(cfg, workdir)
    model = VectorsModel.load(path)
    store = model.store
    store.load_ann()
    words = store.words
    rng = np.random.default_rng(2)
    sample = [words[i] for i in rng.choice(len(words), size=min(cfg.real_queries, len(words)), replace=False)]
    kv = keyed_vectors(list(words), np.asarray(store.unit) * np.asarray(store.norms)[:, None])
    kv.most_similar(sample[0], topn=10)
    log(f"neighbour_latency: real vectors {path.name}: {len(store):,} x {store.dim}, {len(sample)} queries")

    def approx(ef: int) -> Callable[[str], list[str]]:
        return lambda w: [x.word for x in store.most_similar([w], topn=10, approximate=True, ef=ef)]

    fns: dict[str, Callable[[str], Any]] = {
        "exact": lambda w: [x.word for x in store.most_similar([w], topn=10)],
        "gensim": lambda w: [x for x, _ in kv.most_similar(w, topn=10)],
        **{f"ef{ef}": approx(ef) for ef in _EF_SWEEP},
    }
    timed = time_interleaved(fns, sample)
    exact_results = timed["exact"][1]
    by_ef = {str(ef): {"recall_at_10": mean_overlap(timed[f"ef{ef}"][1], exact_results),
                       **latency_stats(timed[f"ef{ef}"][0])} for ef in _EF_SWEEP}
    default = by_ef[str(ANN_EF)]
    s_exact, s_gensim = latency_stats(timed["exact"][0]), latency_stats(timed["gensim"][0])
    return {
        "model": path.name,
        "model_source": source,
        "model_params": model.manifest.params,
        "words": len(store),
        "dim": store.dim,
        "queries": len(sample),
        "recall": "recall@10 = share of the exact top-10 (input word excluded) found by the approximate "
                  "top-10, averaged over the query words (vocabulary words)",
        "ann_params": store.ann_info,
        "exact": s_exact,
        "gensim": s_gensim,
        f"approximate_ef{ANN_EF}": default,
        "recall_at_10_ef64": by_ef["64"]["recall_at_10"],
        "recall_at_10_ef128": by_ef["128"]["recall_at_10"],
        "approximate_by_ef": by_ef,
        "exact_top10_agrees_with_gensim": mean_overlap(exact_results, timed["gensim"][1]),
        "ratio_gensim_over_exact_median": ratio(s_gensim["median_ms"], s_exact["median_ms"]),
        "paired_ratio_gensim_over_exact": paired_ratio(timed["gensim"][0], timed["exact"][0]),
        "ratio_gensim_over_approximate_median": ratio(s_gensim["median_ms"], default["median_ms"], 1),
    }


def bench_latency(cfg: Config, workdir: Path) -> dict[str, Any]:
    synth = _latency_synthetic(cfg, workdir)
    gc.collect()
    real = _latency_real(cfg, workdir)
    speedup = synth["ratio_gensim_over_approximate_median"]
    recall = real[f"recall_at_10_ef{ANN_EF}"]
    return {
        "topn": 10,
        "synthetic": synth,
        "real_vectors": real,
        "goals": {
            "exact_no_slower_than_gensim": {
                "ratio_gensim_over_exact_median": synth["ratio_gensim_over_exact_median"],
                "met": synth["exact"]["median_ms"] <= synth["gensim"]["median_ms"],
            },
            "approximate_20x_faster_at_recall_0_95": {
                "judged_on": f"speed on the {synth['words']:,}-word synthetic set, recall@10 on "
                             f"{real['model']} (ef={ANN_EF})",
                "ratio_gensim_over_approximate_median": speedup,
                "recall_at_10": recall,
                "met": speedup is not None and speedup >= 20 and recall >= 0.95,
            },
        },
    }


# ---- 3. ANN libraries ------------------------------------------------------------------------------

_ANN_EF_SWEEP = (16, 32, 64, 128, 256)

# Runs in a fresh interpreter: argv = library, index file, count, dim, queries. Load time and memory of
# an index as a restarting service gets it; random unit queries touch pages all over the graph.
_ANN_LOAD_CHILD = r"""
import json, sys, time
lib, path, n, dim, nq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def rss_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
import numpy as np
if lib == "usearch":
    from pathlib import Path
    import usearch.index  # imported when the index loads: not part of the load time
    from nlp_service.vectors import HnswIndex
else:
    import hnswlib
rng = np.random.default_rng(5)
qs = rng.standard_normal((nq, dim)).astype(np.float32)
qs /= np.linalg.norm(qs, axis=1, keepdims=True)
before = rss_mb()
t = time.perf_counter()
if lib == "usearch":
    index = HnswIndex.load(Path(path))
    def query(q):
        return index.query(q, 10, ef=64)
else:
    index = hnswlib.Index(space="ip", dim=dim)
    index.load_index(path, max_elements=n)
    index.set_ef(64)
    def query(q):
        return index.knn_query(q, k=10, num_threads=1)
load_s = time.perf_counter() - t
after_load = rss_mb()
t = time.perf_counter()
query(qs[0])
first = time.perf_counter() - t
for q in qs[1:]:
    query(q)
print(json.dumps({"load_s": load_s, "first_query_s": first, "rss_delta_after_load_mb": after_load - before,
                  f"rss_delta_after_{nq}_queries_mb": rss_mb() - before}))
"""


def _ann_load_child(lib: str, path: Path, n: int, dim: int, queries: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _ANN_LOAD_CHILD, lib, str(path), str(n), str(dim), str(queries)],
                          cwd=library_root(), env=child_env(), capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} load child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {k: round(v, 4) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def _exact_top10(unit: np.ndarray, rows: np.ndarray) -> list[list[int]]:
    out: list[list[int]] = []
    for lo in range(0, len(rows), 64):
        scores = np.asarray(unit[rows[lo: lo + 64]]) @ unit.T
        part = np.argpartition(-scores, 9, axis=1)[:, :10]
        out += [p.tolist() for p in part]
    return out


def _ann_compare(cfg: Config, workdir: Path, label: str, unit: np.ndarray, n_queries: int,
                 prebuilt: Path | None = None) -> dict[str, Any]:
    """usearch (through HnswIndex, as served) vs hnswlib vs exact search on one set of unit vectors
    (``prebuilt``: a store folder whose usearch index was built on exactly these vectors)."""
    from nlp_service.vectors import ANN_FILE, HnswIndex

    n, dim = unit.shape
    root = workdir / "ann" / label
    root.mkdir(parents=True)
    rows = np.random.default_rng(4).choice(n, size=min(n_queries, n), replace=False)
    reference = _exact_top10(unit, rows)
    libs: dict[str, dict[str, Any]] = {}
    search: dict[str, Callable[[int, int], list[int]]] = {}

    keys = ("library_version", "metric", "dtype", "connectivity", "expansion_add")
    if prebuilt is not None:
        path = prebuilt / ANN_FILE
        built_params = json.loads((prebuilt / "store.json").read_text(encoding="utf-8"))["ann"]
        build_s, params = built_params["build_seconds"], {k: built_params[k] for k in keys}
        params["built_by"] = "neighbour_latency (same vectors, same parameters): build_s is its build"
        log(f"ann_libraries [{label}]: usearch index from neighbour_latency (built in {build_s:.1f}s)")
    else:
        log(f"ann_libraries [{label}]: usearch build, {n:,} x {dim} (connectivity {cfg.ann_m}, "
            f"expansion_add {cfg.ann_ef_construction})")
        t = time.perf_counter()
        built = HnswIndex.build(unit, connectivity=cfg.ann_m, expansion_add=cfg.ann_ef_construction, progress=False)
        build_s = time.perf_counter() - t
        path = root / "index.usearch"
        built.save(path)
        params = {k: built.params[k] for k in keys}
        del built
        gc.collect()
    libs["usearch"] = {"build_s": round(build_s, 2), "file_mb": size_mb([path]),
                       "params": {**params, "threads": "all cores"},
                       "load": _ann_load_child("usearch", path, n, dim, 200)}
    view = HnswIndex.load(path)
    search["usearch"] = lambda i, ef: view.query(unit[i], 10, ef=ef)[0][0].tolist()

    try:
        import hnswlib
    except ImportError:
        hnswlib = None
        libs["hnswlib"] = {"skipped": "hnswlib is not importable"}
    if hnswlib is not None:
        log(f"ann_libraries [{label}]: hnswlib build (M {cfg.ann_m}, ef_construction {cfg.ann_ef_construction})")
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, ef_construction=cfg.ann_ef_construction, M=cfg.ann_m, random_seed=100)
        t = time.perf_counter()
        index.add_items(np.ascontiguousarray(unit), np.arange(n), num_threads=-1)
        build_s = time.perf_counter() - t
        hpath = root / "hnsw.bin"
        index.save_index(str(hpath))
        del index
        gc.collect()
        loaded = hnswlib.Index(space="ip", dim=dim)
        loaded.load_index(str(hpath), max_elements=n)
        libs["hnswlib"] = {"build_s": round(build_s, 2), "file_mb": size_mb([hpath]),
                           "params": {"M": cfg.ann_m, "ef_construction": cfg.ann_ef_construction, "space": "ip",
                                      "threads": "all cores"},
                           "load": _ann_load_child("hnswlib", hpath, n, dim, 200)}

        def hnsw_search(i: int, ef: int) -> list[int]:
            loaded.set_ef(max(ef, 10))  # one thread here: the index-wide ef is safe
            return loaded.knn_query(unit[i], k=10, num_threads=1)[0][0].tolist()

        search["hnswlib"] = hnsw_search

    def exact(i: int, _ef: int) -> list[int]:
        scores = unit @ unit[i]
        part = np.argpartition(-scores, 9)[:10]
        return part[np.argsort(-scores[part])].tolist()

    items = rows.tolist()
    log(f"ann_libraries [{label}]: timing {len(items)} queries per ef {_ANN_EF_SWEEP} ({', '.join(search)}, exact)")
    exact_timed = time_interleaved({"exact": lambda i: exact(i, 0)}, items)["exact"]
    libs["exact"] = {"what": "unit @ q (BLAS gemv) + argpartition, as VectorStore's exact path",
                     "file_mb": None, **latency_stats(exact_timed[0], ("median", "p99", "mean"))}
    # A first pass at the largest ef touches every page the sweep will: usearch's mapped file is
    # paged into this process as searches reach it (what a fresh service pays once); timed apart.
    top_ef = max(_ANN_EF_SWEEP)
    first = time_interleaved({lib: functools.partial(fn, ef=top_ef) for lib, fn in search.items()}, items, warmup=0)
    for lib in search:
        libs[lib]["first_pass"] = {"ef": top_ef, **latency_stats(first[lib][0], ("median", "p99", "mean"))}
        libs[lib]["by_ef"] = {}
    for ef in _ANN_EF_SWEEP:
        timed = time_interleaved({lib: functools.partial(fn, ef=ef) for lib, fn in search.items()}, items)
        for lib, (seconds, results) in timed.items():
            libs[lib]["by_ef"][str(ef)] = {"recall_at_10": mean_overlap(results, reference),
                                           **latency_stats(seconds, ("median", "p99", "mean"))}
        log(f"ann_libraries [{label}] ef {ef}: " + ", ".join(
            f"{lib} recall {libs[lib]['by_ef'][str(ef)]['recall_at_10']} median "
            f"{libs[lib]['by_ef'][str(ef)]['median_ms']:.3f} ms" for lib in search))
    exact_ms = libs["exact"]["median_ms"]
    for lib in search:
        for row in libs[lib]["by_ef"].values():
            row["speedup_over_exact"] = ratio(exact_ms, row["median_ms"], 1)
    return {"vectors": n, "dim": dim, "queries": len(items),
            "recall": "recall@10 = share of the exact top-10 (query row included) in the index's top-10",
            "libraries": libs}


def bench_ann(cfg: Config, workdir: Path) -> dict[str, Any]:
    from nlp_service.vectors import VectorStore

    path, source = _real_model_path(cfg, workdir)
    real_unit = np.ascontiguousarray(VectorStore.load(path / "store").unit, dtype=np.float32)
    real = _ann_compare(cfg, workdir, REAL_MODEL, real_unit, cfg.real_queries)
    real["model_source"] = source
    del real_unit
    gc.collect()
    prebuilt = _SYNTHETIC_INDEX.get((cfg.latency_words, cfg.ann_m, cfg.ann_ef_construction))
    if prebuilt is not None:
        matrix = np.ascontiguousarray(VectorStore.load(prebuilt).unit)
    else:
        matrix = VectorStore.from_vectors(*synthetic(cfg.latency_words)).unit  # normalised as the store does
    synth = _ann_compare(cfg, workdir, "synthetic", matrix, cfg.latency_queries, prebuilt)
    synth["note"] = ("i.i.d. Gaussian vectors (benchmark's synthetic set) have no neighbourhood structure: "
                     "the hardest case for HNSW; recall on them says little about real vectors")
    ours = real["libraries"]["usearch"]["by_ef"]
    return {
        "topn": 10,
        "timing": "one call per query row, the libraries interleaved per ef, single-threaded queries, after an "
                  "untimed-for-by_ef first pass over the same queries (first_pass: its timings)",
        "memory": "rss_delta_*: resident memory of a fresh process after loading the index, and after 200 "
                  "random queries. hnswlib reads the file into memory; usearch maps it (a view), so its pages "
                  "are file-backed and shared with the page cache and other processes",
        "real_vectors": real,
        "synthetic": synth,
        "goal": {"target": f"usearch recall@10 >= 0.95 on {REAL_MODEL} at the service's default ef (64)",
                 "recall_at_10_ef64": ours["64"]["recall_at_10"], "met": ours["64"]["recall_at_10"] >= 0.95},
    }


# ---- 4. word2vec throughput ----------------------------------------------------------------------


def bench_word2vec(cfg: Config, workdir: Path) -> dict[str, Any]:
    from gensim.models import Word2Vec

    from nlp_service.config import Settings
    from nlp_service.data import SPANISH_CORPUS
    from nlp_service.text import Tokenizer
    from nlp_service.vectors import Word2VecParams, Word2VecRun, build_word2vec

    corpus = list(SPANISH_CORPUS)
    params = Word2VecParams(architecture="skipgram", vector_size=100, window=5, min_count=3,
                            epochs=cfg.w2v_epochs, workers=cfg.workers)
    gensim_kwargs: dict[str, Any] = {
        "vector_size": params.vector_size, "window": params.window, "min_count": params.min_count,
        "sample": params.sample, "sg": 1, "hs": 0, "negative": params.negative, "epochs": params.epochs,
        "alpha": params.alpha, "seed": params.seed, "workers": params.workers,
    }
    root = workdir / "word2vec"
    ours: list[dict[str, Any]] = []
    gensim_list: list[dict[str, Any]] = []
    gensim_file: list[dict[str, Any]] = []
    sentences: list[list[str]] | None = None
    corpus_file: Path | None = None
    for rep in range(cfg.repeats):
        cache = root / f"cache-{rep}"  # fresh: tokenization is part of every timed pipeline run
        t = time.perf_counter()
        run = Word2VecRun(corpus=corpus, name="bench", eval_analogy=None, ann=False, overwrite=True)
        _, metrics = build_word2vec(run, params, Tokenizer(), settings=Settings(models_dir=root / "models",
                                                                              cache_dir=cache), progress=False)
        wall = time.perf_counter() - t
        tokens = int(metrics["tokenize"]["words"])
        ours.append({
            "wall_s": wall, "words_per_s": tokens * params.epochs / wall, "tokens": tokens,
            "tokenize_s": metrics["tokenize"]["seconds"], "train_s": metrics["train"]["train_seconds"],
            "train_words_per_s": metrics["train"]["words_per_second"],
            "vocabulary": metrics["train"]["vocabulary"],
        })
        log(f"word2vec {rep + 1}/{cfg.repeats} ours: {wall:.1f}s, {ours[-1]['words_per_s']:,.0f} words/s "
            f"(tokenize {ours[-1]['tokenize_s']}s, train {ours[-1]['train_s']}s)")
        if sentences is None:
            corpus_file = next((cache / "tokenized").glob("*.txt"))
            with open(corpus_file, encoding="utf-8") as fh:
                sentences = [line.split() for line in fh]
        assert corpus_file is not None
        n_words = sum(len(s) for s in sentences)

        t = time.perf_counter()
        model = Word2Vec(sentences=sentences, **gensim_kwargs)
        wall = time.perf_counter() - t
        gensim_list.append({"wall_s": wall, "words_per_s": n_words * params.epochs / wall,
                            "tokens": n_words, "vocabulary": len(model.wv)})
        log(f"word2vec {rep + 1}/{cfg.repeats} gensim sentences: {wall:.1f}s, "
            f"{gensim_list[-1]['words_per_s']:,.0f} words/s")
        t = time.perf_counter()
        model = Word2Vec(corpus_file=str(corpus_file), **gensim_kwargs)
        wall = time.perf_counter() - t
        total_words = int(model.corpus_total_words)
        gensim_file.append({"wall_s": wall, "words_per_s": total_words * params.epochs / wall,
                            "tokens": total_words, "vocabulary": len(model.wv)})
        log(f"word2vec {rep + 1}/{cfg.repeats} gensim corpus_file: {wall:.1f}s, "
            f"{gensim_file[-1]['words_per_s']:,.0f} words/s")
        del model
        gc.collect()

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_wall_s": round(median([r["wall_s"] for r in runs]), 2),
            "median_words_per_s": round(median([r["words_per_s"] for r in runs])),
            "runs_words_per_s": [round(r["words_per_s"]) for r in runs],
            "tokens": runs[0]["tokens"],
            "vocabulary": runs[0]["vocabulary"],
        }
        for key in ("tokenize_s", "train_s", "train_words_per_s"):
            if key in runs[0]:
                out[f"median_{key}"] = round(median([r[key] for r in runs]), 2)
        return out

    s_ours, s_list, s_file = summary(ours), summary(gensim_list), summary(gensim_file)
    r = ratio(s_ours["median_words_per_s"], s_list["median_words_per_s"])
    return {
        "corpus": [p.name for p in corpus],
        "params": {**asdict(params), "note": "identical gensim hyper-parameters on both sides"},
        "repeats": cfg.repeats,
        "ours_pipeline": {
            "what": "build_word2vec from the raw .gz files with a fresh cache (tokenization + training + "
                    "store conversion + save, ann=False); words/s = corpus tokens * epochs / total wall time",
            **s_ours,
        },
        "gensim_sentences": {
            "what": "gensim Word2Vec(sentences=list of token lists) on the same tokens, tokenized in memory "
                    "outside the timer; words/s = corpus words * epochs / wall time",
            **s_list,
        },
        "gensim_corpus_file": {
            "what": "reference: gensim Word2Vec(corpus_file=our tokenized cache file); tokenization "
                    "not timed",
            **s_file,
        },
        "ratio_ours_over_gensim_sentences": r,
        "ratio_ours_over_gensim_corpus_file": ratio(s_ours["median_words_per_s"],
                                                    s_file["median_words_per_s"]),
        "goal": {"target": "ours (from raw text) >= 0.8 x gensim (pre-tokenized sentences)",
                 "ratio": r, "met": r is not None and r >= 0.8},
    }


# ---- 5. fastText ------------------------------------------------------------------------------

# The fastText library in a fresh interpreter per run (a crash in its C++ code cannot take the benchmark
# down, and one training per process is what it does reliably). argv: input file, output prefix, JSON options.
_FASTTEXT_UNSUPERVISED = r"""
import json, sys, time
import fasttext
opts = json.loads(sys.argv[3])
t = time.perf_counter()
model = fasttext.train_unsupervised(input=sys.argv[1], verbose=0, **opts)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "vocabulary": len(model.words)}))
"""


def _fasttext_params(cfg: Config) -> Any:
    from nlp_service.vectors import FastTextParams

    return FastTextParams(architecture="skipgram", vector_size=100, window=5, min_count=3, epochs=cfg.w2v_epochs,
                          workers=cfg.workers, min_n=3, max_n=6, bucket=200_000)


def bench_fasttext(cfg: Config, workdir: Path) -> dict[str, Any]:
    import importlib.util

    from gensim.models import FastText

    from nlp_service.config import Settings
    from nlp_service.data import SPANISH_CORPUS
    from nlp_service.text import Tokenizer
    from nlp_service.vectors import FastTextRun, build_fasttext

    corpus = list(SPANISH_CORPUS)
    params = _fasttext_params(cfg)
    gensim_kwargs: dict[str, Any] = {
        "vector_size": params.vector_size, "window": params.window, "min_count": params.min_count,
        "sample": params.sample, "sg": 1, "hs": 0, "negative": params.negative, "epochs": params.epochs,
        "alpha": params.alpha, "seed": params.seed, "workers": params.workers, "min_n": params.min_n,
        "max_n": params.max_n, "bucket": params.bucket,
    }
    # The fastText library's names for the same hyper-parameters (its defaults differ: lr 0.05, t 1e-4).
    library_opts = {"model": "skipgram", "dim": params.vector_size, "ws": params.window, "minCount": params.min_count,
                    "t": params.sample, "neg": params.negative, "epoch": params.epochs, "lr": params.alpha,
                    "minn": params.min_n, "maxn": params.max_n, "bucket": params.bucket, "thread": params.workers}
    have_library = importlib.util.find_spec("fasttext") is not None
    root = workdir / "fasttext"
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "gensim_sentences": [], "gensim_corpus_file": [],
                                             "fasttext_library": []}
    sentences: list[list[str]] | None = None
    corpus_file: Path | None = None
    library_error = None if have_library else "the fasttext package is not installed (pip install " \
                                              "'nlp-service[fasttext]')"
    for rep in range(cfg.repeats):
        cache = root / f"cache-{rep}"  # fresh: tokenization is part of every timed pipeline run
        t = time.perf_counter()
        run = FastTextRun(corpus=corpus, name="bench", ann=False, overwrite=True)
        _, metrics = build_fasttext(run, params, Tokenizer(), settings=Settings(models_dir=root / "models",
                                                                               cache_dir=cache), progress=False)
        wall = time.perf_counter() - t
        tokens = int(metrics["tokenize"]["words"])
        runs["ours"].append({"wall_s": wall, "words_per_s": tokens * params.epochs / wall, "tokens": tokens,
                             "tokenize_s": metrics["tokenize"]["seconds"],
                             "train_s": metrics["train"]["train_seconds"],
                             "vocabulary": metrics["train"]["vocabulary"]})
        log(f"fasttext {rep + 1}/{cfg.repeats} ours: {wall:.1f}s, {runs['ours'][-1]['words_per_s']:,.0f} words/s")
        if sentences is None:
            corpus_file = next((cache / "tokenized").glob("*.txt"))
            with open(corpus_file, encoding="utf-8") as fh:
                sentences = [line.split() for line in fh]
        assert corpus_file is not None
        n_words = sum(len(s) for s in sentences)
        for key, kwargs in (("gensim_sentences", {"sentences": sentences}),
                            ("gensim_corpus_file", {"corpus_file": str(corpus_file)})):
            t = time.perf_counter()
            model = FastText(**kwargs, **gensim_kwargs)
            wall = time.perf_counter() - t
            runs[key].append({"wall_s": wall, "words_per_s": n_words * params.epochs / wall, "tokens": n_words,
                              "vocabulary": len(model.wv)})
            log(f"fasttext {rep + 1}/{cfg.repeats} {key}: {wall:.1f}s, {runs[key][-1]['words_per_s']:,.0f} words/s")
            del model
            gc.collect()
        if have_library:
            proc = subprocess.run([sys.executable, "-c", _FASTTEXT_UNSUPERVISED, str(corpus_file),
                                   str(root / "library"), json.dumps(library_opts)],
                                  capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                library_error = (proc.stderr or proc.stdout)[-400:].strip()
            else:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                runs["fasttext_library"].append({"wall_s": res["seconds"], "tokens": n_words,
                                                 "words_per_s": n_words * params.epochs / res["seconds"],
                                                 "vocabulary": res["vocabulary"]})
                log(f"fasttext {rep + 1}/{cfg.repeats} library: {res['seconds']:.1f}s")

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not rs:
            return None
        out = {"median_wall_s": round(median([r["wall_s"] for r in rs]), 2),
               "median_words_per_s": round(median([r["words_per_s"] for r in rs])),
               "runs_words_per_s": [round(r["words_per_s"]) for r in rs], "tokens": rs[0]["tokens"],
               "vocabulary": rs[0]["vocabulary"]}
        for key in ("tokenize_s", "train_s"):
            if key in rs[0]:
                out[f"median_{key}"] = round(median([r[key] for r in rs]), 2)
        return out

    s = {k: summary(v) for k, v in runs.items()}
    wps = {k: v["median_words_per_s"] if v else None for k, v in s.items()}
    return {
        "corpus": [p.name for p in corpus],
        "params": {**asdict(params), "note": "identical hyper-parameters on every side (the fastText library's "
                   "names: " + json.dumps(library_opts) + ")"},
        "repeats": cfg.repeats,
        "ours_pipeline": {"what": "build_fasttext from the raw .gz files with a fresh cache (tokenization + "
                                  "training + store + save, ann=False); words/s = tokens * epochs / wall time",
                          **(s["ours"] or {})},
        "gensim_sentences": {"what": "gensim FastText(sentences=token lists), tokenized outside the timer",
                             **(s["gensim_sentences"] or {})},
        "gensim_corpus_file": {"what": "gensim FastText(corpus_file=our tokenized cache)",
                               **(s["gensim_corpus_file"] or {})},
        "fasttext_library": ({"what": "fasttext.train_unsupervised on our tokenized cache, in a child process "
                                      "(training only: its load and save not timed)", **s["fasttext_library"]}
                             if s["fasttext_library"] else {"available": False, "reason": library_error}),
        "ratio_ours_over_gensim_sentences": ratio(wps["ours"], wps["gensim_sentences"]),
        "ratio_ours_over_gensim_corpus_file": ratio(wps["ours"], wps["gensim_corpus_file"]),
        "ratio_ours_over_fasttext_library": ratio(wps["ours"], wps["fasttext_library"]),
    }


_ACCENTS = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")


def one_edit_typos(word: str, rng: np.random.Generator) -> dict[str, str]:
    """One misspelling of ``word`` per kind that applies: a letter deleted, two neighbours swapped (inside the
    word, not the first letter: the typos people make), the accents dropped (all of them: "canción" -> "cancion")."""
    out: dict[str, str] = {}
    if len(word) >= 4:
        i = int(rng.integers(1, len(word)))
        out["deletion"] = word[:i] + word[i + 1:]
        candidates = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
        if candidates:
            i = int(rng.choice(candidates))
            out["swap"] = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    plain = word.translate(_ACCENTS)
    if plain != word:
        out["accent"] = plain
    return out


ANALOGIES_ES = REPO_ROOT / "nlp_service" / "datasets" / "eval" / "analogies_es.txt"


def bench_typos(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Misspell frequent corpus words once each; is the correct word the misspelling's nearest neighbour?"""
    from nlp_service.config import Settings
    from nlp_service.data import SPANISH_CORPUS
    from nlp_service.text import Tokenizer
    from nlp_service.vectors import (
        FastTextRun,
        VectorsModel,
        Word2VecParams,
        Word2VecRun,
        build_fasttext,
        build_word2vec,
        evaluate_keyed_vectors,
    )

    corpus = list(SPANISH_CORPUS)
    root = workdir / "typos"
    settings = Settings(models_dir=root / "models", cache_dir=root / "cache")
    ft_params = _fasttext_params(cfg)
    w2v_params = Word2VecParams(**{k: v for k, v in asdict(ft_params).items() if k not in ("min_n", "max_n", "bucket")})
    log("typos: training word2vec and fastText on the shipped corpus (same hyper-parameters)")
    w2v_path, _ = build_word2vec(Word2VecRun(corpus=corpus, name="w2v", ann=False), w2v_params, Tokenizer(),
                                 settings=settings, progress=False)
    ft_path, _ = build_fasttext(FastTextRun(corpus=corpus, name="ft", ann=False), ft_params, Tokenizer(),
                                settings=settings, progress=False)
    # Shorter n-grams (single letters too) and CBOW: more of a misspelling's n-grams survive the edit.
    tolerant = dataclasses.replace(ft_params, architecture="cbow", min_n=1, max_n=4)
    log("typos: training the typo-tolerant fastText (cbow, n-grams 1-4)")
    tolerant_path, _ = build_fasttext(FastTextRun(corpus=corpus, name="ft-tolerant", ann=False), tolerant,
                                      Tokenizer(), settings=settings, progress=False)
    models = {"word2vec": VectorsModel.load(w2v_path), "fasttext": VectorsModel.load(ft_path),
              "fasttext_cbow_ngrams_1_4": VectorsModel.load(tolerant_path)}
    configs = {"word2vec": "skipgram, 100d, window 5, min_count 3, 5 epochs (as below, no n-grams)",
               "fasttext": "the same, n-grams 3-6 (fastText's default), 200k buckets",
               "fasttext_cbow_ngrams_1_4": "the same, CBOW, n-grams 1-4"}
    adapted_note = None
    if cfg.cc_es_bin is not None:
        log(f"typos: adapting {cfg.cc_es_bin.name} to the corpus")
        path, _ = build_fasttext(FastTextRun(corpus=corpus, name="cc-es-adapted", init=cfg.cc_es_bin, ann=False),
                                 ft_params, Tokenizer(), settings=settings, progress=False)
        models["cc_es_adapted"] = VectorsModel.load(path)
        configs["cc_es_adapted"] = f"{cfg.cc_es_bin.name} adapted to the corpus (5 epochs)"
    else:
        adapted_note = "not run: give --cc-es-bin cc.es.300.bin (7 GB, not downloadable here; ~16 GB of memory)"

    vocab = models["fasttext"].store.words
    known = set(vocab) | set(models["word2vec"].store.words)
    # Frequent words (the vocabulary is by frequency), alphabetic, 5+ letters, past the 100 most frequent
    # (function words): the words a survey answer misspells.
    words = [w for w in vocab[100:] if w.isalpha() and len(w) >= 5][: cfg.typo_words]
    rng = np.random.default_rng(13)
    cases = [(w, kind, typo) for w in words for kind, typo in one_edit_typos(w, rng).items()]
    real_words = [c for c in cases if c[2] in known]  # a misspelling that is itself a word is no typo to fix
    cases = [c for c in cases if c[2] not in known]
    out: dict[str, Any] = {
        "corpus": [p.name for p in corpus], "words": len(words),
        "typos": {kind: sum(1 for c in cases if c[1] == kind) for kind in ("deletion", "swap", "accent")},
        "skipped_typos_that_are_words": len(real_words),
        "how": "the misspelling's vector (fastText: the mean of its character n-grams'; word2vec: none) -> its 5 "
               "nearest vocabulary words by cosine (exact search); hit when the correct word is first / among them",
        "models": {},
    }
    for name, model in models.items():
        hits1: dict[str, list[bool]] = {}
        hits5: dict[str, list[bool]] = {}
        no_vector = 0
        for word, kind, typo in cases:
            try:
                near = [n.word for n in model.neighbors([typo], topn=5)]
            except KeyError:  # WordNotFound: word2vec has no vector for an unseen word
                near = []
                no_vector += 1
            hits1.setdefault(kind, []).append(near[:1] == [word])
            hits5.setdefault(kind, []).append(word in near)
        every5 = [h for v in hits5.values() for h in v]
        every1 = [h for v in hits1.values() for h in v]
        analogy = evaluate_keyed_vectors(model.to_keyed_vectors(), analogy_file=ANALOGIES_ES)["analogy"]
        out["models"][name] = {
            "config": configs[name],
            "top1": round(float(np.mean(every1)), 4), "top5": round(float(np.mean(every5)), 4),
            # What the n-grams cost in meaning: analogies (in-vocabulary words only), and a word's neighbours.
            "analogy_accuracy": analogy["accuracy"],
            "neighbours": {w: [n.word for n in model.neighbors([w], topn=5)] for w in ("rey", "ciudad", "archivo")
                           if w in model.store},
            "no_vector": round(no_vector / len(cases), 4),
            "by_kind": {k: {"top1": round(float(np.mean(hits1[k])), 4), "top5": round(float(np.mean(hits5[k])), 4)}
                        for k in hits5},
        }
        log(f"typos {name}: top-1 {out['models'][name]['top1']:.3f}, top-5 {out['models'][name]['top5']:.3f}, "
            f"no vector {out['models'][name]['no_vector']:.3f}")
    if adapted_note:
        out["models"]["cc_es_adapted"] = {"available": False, "reason": adapted_note}
    best = max((m["top5"], n) for n, m in out["models"].items() if "top5" in m)
    out["goal"] = {"target": "top-5 >= 70% on one-edit typos", "best": best[1], "top5": best[0],
                   "met": best[0] >= 0.70}
    out["examples"] = [{"word": w, "kind": k, "typo": t} for w, k, t in cases[:6]]
    return out


# ---- 6. HTTP ---------------------------------------------------------------------------------

def _endpoint_result(run: LoadRun, concurrency: int) -> dict[str, Any]:
    done = len(run.latencies)
    return {
        "requests": done,
        "stopped_at_time_cap": run.stopped_at_time_cap,
        "concurrency": concurrency,
        "wall_s": round(run.wall_s, 3),
        "requests_per_s": round(done / run.wall_s, 1) if run.wall_s > 0 else None,
        "latency": latency_stats(run.latencies) if done else None,
        **run.cpu_ms_per_request(2),
        "status_codes": run.status_codes,
        "client_errors": dict(run.failures),
    }


def _serve_and_load(cfg: Config, model_path: Path, words: list[str], workdir: Path,
                    extra_env: dict[str, str], label: str) -> dict[str, Any]:
    """Start a real server, wait for /ready, load-test each endpoint, stop the server."""
    log(f"http [{label}]: starting server {extra_env or ''}")
    serve_args = ["--models-dir", str(model_path.parent), "--model", REAL_MODEL]
    with serving(serve_args, workdir / f"server-{label}.log", env=extra_env, expect_models=[REAL_MODEL],
                 cli=nlp_service_cli()) as server:
        log(f"http [{label}]: ready on {server.base} after {server.ready_s:.2f}s")
        rng = np.random.default_rng(3)
        warmup = min(200, cfg.http_requests)
        idx = rng.integers(0, len(words), size=(cfg.http_requests + warmup, 2))
        endpoints: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "similarity": ("/v1/similarity", [{"word1": words[a], "word2": words[b]} for a, b in idx]),
            "neighbors": ("/v1/neighbors", [{"word": words[a], "topn": 10} for a, _ in idx]),
            "neighbors_approximate": ("/v1/neighbors", [{"word": words[a], "topn": 10, "approximate": True}
                                                        for a, _ in idx]),
        }
        out: dict[str, Any] = {"server_env": extra_env or "inherited (no thread limits)",
                               "startup_to_ready_s": round(server.ready_s, 2),
                               "warmup_requests_per_endpoint": warmup}
        for client_kind in ("httpx", "light"):
            per_client: dict[str, Any] = {}
            for name, (route, payloads) in endpoints.items():
                run = asyncio.run(load_test(server, route, payloads, warmup=warmup, concurrency=cfg.http_concurrency,
                                            client_kind=client_kind, max_seconds=cfg.http_max_seconds))
                res = _endpoint_result(run, cfg.http_concurrency)
                per_client[name] = {"route": route, **res}
                lat = res["latency"] or {}
                log(f"http [{label}, {client_kind}] {name}: {res['requests']} requests, "
                    f"{res['requests_per_s']} req/s, p50 {lat.get('median_ms')} ms, "
                    f"p99 {lat.get('p99_ms')} ms, "
                    f"server cpu {res['server_cpu_ms_per_request']} ms/req, "
                    f"client cpu {res['client_cpu_ms_per_request']} ms/req, statuses {res['status_codes']}")
            out[f"{client_kind}_client"] = per_client
            bad = {k: v["status_codes"] for k, v in per_client.items() if set(v["status_codes"]) - {"200"}}
            if bad:
                log(f"http [{label}, {client_kind}]: WARNING non-200 answers {bad}")
        return out


def bench_http(cfg: Config, workdir: Path) -> dict[str, Any]:
    from nlp_service.vectors import VectorsModel

    path, source = _real_model_path(cfg, workdir)
    words = list(VectorsModel.load(path).store.words[:5000])
    result: dict[str, Any] = {
        "server": f"nlp-service serve --model {REAL_MODEL} (uvicorn, 1 process, default settings incl. "
                  "access log at info)",
        "clients": {
            "httpx_client": f"httpx.AsyncClient, {cfg.http_concurrency} concurrent tasks, keep-alive (the "
                            "reference client)",
            "light_client": f"{cfg.http_concurrency} asyncio connections speaking minimal HTTP/1.1 "
                            "keep-alive: much less client CPU, so closer to the server's own capacity",
            "note": f"both run in the benchmark process on the same {os.cpu_count()} cores as the server: "
                    "client_cpu_ms_per_request is CPU the server could not use. Each endpoint run stops "
                    f"after {cfg.http_max_seconds:g}s (stopped_at_time_cap).",
        },
        "words": f"{REAL_MODEL} store.words[:5000], random draws",
        "model_source": source,
        "default": _serve_and_load(cfg, path, words, workdir, {}, "default"),
    }
    if cfg.http_blas_diagnostic:
        result["diagnostic_single_thread_blas"] = {
            "why": "same server with BLAS limited to one thread per call: routes run in a thread pool, and "
                   "concurrent multi-threaded BLAS calls oversubscribe the cores",
            **_serve_and_load(cfg, path, words, workdir, SINGLE_THREAD_BLAS, "blas1"),
        }
    return result


# ---- main ------------------------------------------------------------------------------------------

_RUNNERS: dict[str, Callable[[Config, Path], dict[str, Any]]] = {
    "ready_to_answer": bench_ready,
    "neighbour_latency": bench_latency,
    "ann_libraries": bench_ann,
    "word2vec_throughput": bench_word2vec,
    "fasttext_throughput": bench_fasttext,
    "typos": bench_typos,
    "http": bench_http,
}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.chdir(REPO_ROOT)
    with scratch_folder("nlp-bench-vectors-", cfg.workdir, cfg.keep_workdir) as scratch:
        if cfg.snapshot:
            library = snapshot_library(scratch)
        else:
            use_library()
            library = {"snapshot": None, **git_state()}
        doc = new_document("benchmarks/vectors.py", cfg, library=library, machine=machine())
        log(f"scratch folder {scratch}; sections: {', '.join(cfg.sections)}")
        runners = {name: functools.partial(run, cfg, scratch) for name, run in _RUNNERS.items()}
        failed = run_sections(doc, runners, cfg.sections)
    doc["goals"] = _goals(doc)
    sys.stdout.write(finish_document(doc))
    return 1 if failed else 0


def _goals(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ready = doc.get("ready_to_answer", {})
    if "goal" in ready:
        out["ready_under_1s"] = ready["goal"]["met"]
    lat = doc.get("neighbour_latency", {})
    for key, goal in lat.get("goals", {}).items():
        out[key] = goal["met"]
    ann = doc.get("ann_libraries", {})
    if "goal" in ann:
        out["ann_recall_0_95_on_real_vectors"] = ann["goal"]["met"]
    w2v = doc.get("word2vec_throughput", {})
    if "goal" in w2v:
        out["word2vec_at_least_0_8_of_gensim"] = w2v["goal"]["met"]
    typos = doc.get("typos", {})
    if "goal" in typos:
        out["typos_top5_at_least_0_70"] = typos["goal"]["met"]
    return out


if __name__ == "__main__":
    sys.exit(main())
