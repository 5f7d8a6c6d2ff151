#!/usr/bin/env python
"""Benchmark the native vector store and word2vec pipeline against gensim, in the same run.

Prints ONE JSON document on stdout; progress goes to stderr. Nothing is asserted: goals are
reported next to the measurements with ``"met": true|false``.

Sections (``--sections``, default all):

* ``ready_to_answer``      load + first top-10 query of a synthetic N x 300 set, each in a fresh
                           subprocess: native store vs gensim word2vec binary / text / native mmap.
* ``neighbour_latency``    top-10 latency: exact and HNSW paths vs gensim; recall on real vectors.
* ``word2vec_throughput``  our raw-text pipeline vs gensim on pre-tokenized sentences.
* ``http``                 requests/s and latency of /v1/similarity and /v1/neighbors on a real server.

Run from the repository root::

    .venv/bin/python benchmarks/vectors.py --quick > bench-out/vectors-quick.json
    .venv/bin/python benchmarks/vectors.py > bench-out/vectors.json 2> bench-out/vectors.log
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("ready_to_answer", "neighbour_latency", "word2vec_throughput", "http")
DIM = 300
REAL_MODEL = "w2v-es"
_START = time.perf_counter()


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
    http_requests: int
    http_concurrency: int
    models_dir: Path
    workdir: Path | None
    keep_workdir: bool
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
    "http_requests": (2000, 300),
}


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        description="Native vector store and word2vec pipeline vs gensim. One JSON document on stdout, "
        "progress on stderr.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="small sizes for a smoke run (200k ready words, 50k latency words, 1 epoch, "
                   "1 repeat)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of: {', '.join(SECTIONS)}")
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
    p.add_argument("--ann-m", type=int, default=16, help="HNSW M for the synthetic set")
    p.add_argument("--ann-ef-construction", type=int, default=200, help="HNSW ef_construction")
    p.add_argument("--real-queries", type=int,
                   help=f"vocabulary words for recall@10 on {REAL_MODEL} [1000; quick 300]")
    p.add_argument("--w2v-epochs", type=int, help="word2vec epochs [5; quick 1]")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="word2vec threads, both sides")
    p.add_argument("--http-requests", type=int, help="timed requests per endpoint [2000; quick 300]")
    p.add_argument("--http-concurrency", type=int, default=32, help="concurrent HTTP clients")
    p.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models",
                   help=f"folder holding {REAL_MODEL} (built with `nlp-service defaults` if missing)")
    p.add_argument("--workdir", type=Path, help="scratch folder (a fresh sub-folder is made and removed) "
                   "[a new folder under /tmp]")
    p.add_argument("--keep-workdir", action="store_true", help="do not delete the scratch folder")
    a = p.parse_args(argv)
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s): {', '.join(unknown)}")
    sized = {k: getattr(a, k) if getattr(a, k) is not None else v[1 if a.quick else 0]
             for k, v in _SIZES.items()}
    return Config(sections=sections, ann_m=a.ann_m, ann_ef_construction=a.ann_ef_construction,
                  workers=a.workers, http_concurrency=a.http_concurrency, models_dir=a.models_dir.resolve(),
                  workdir=a.workdir, keep_workdir=a.keep_workdir, quick=a.quick, **sized)


# ---- small helpers -------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _START:8.1f}s] {msg}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def latency_stats(seconds: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": len(arr),
        "median_ms": round(float(np.median(arr)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
        "mean_ms": round(float(arr.mean()), 4),
        "min_ms": round(float(arr.min()), 4),
        "max_ms": round(float(arr.max()), 4),
    }


def ratio(num: float | None, den: float | None, digits: int = 2) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return round(num / den, digits)


def time_calls(
    fn: Callable[[str], Any], items: Sequence[str], warmup: int = 5
) -> tuple[list[float], list[Any]]:
    """Time ``fn(item)`` once per item (after ``warmup`` untimed calls); return seconds and results."""
    for item in items[:warmup]:
        fn(item)
    seconds, results = [], []
    for item in items:
        t = time.perf_counter()
        out = fn(item)
        seconds.append(time.perf_counter() - t)
        results.append(out)
    return seconds, results


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


def machine_info() -> dict[str, Any]:
    cpu_model = None
    mem_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "gensim", "hnswlib", "scipy", "fastapi", "uvicorn", "httpx", "nlp-service"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    blas = None
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]  # type: ignore[index]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy_blas": blas,
        "versions": versions,
    }


# ---- 1. ready to answer --------------------------------------------------------------------------

# Runs in a fresh interpreter: argv = kind, path, query word, second query word.
_READY_CHILD = r"""
import json, resource, sys, time
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
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2, "ready_s": t3 - t1,
                  "second_query_s": t4 - t3, "top10": first,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_READY_KINDS = ("native_store", "gensim_word2vec_binary", "gensim_word2vec_text", "gensim_native_mmap")


def _ready_child(kind: str, path: Path, q1: str, q2: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _READY_CHILD, kind, str(path), q1, q2], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("ready_s", "load_s", "first_query_s", "second_query_s", "import_s", "max_rss_mb")
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
    files = {k: folder_files(p) for k, p in paths.items()}
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
        for kind in _READY_KINDS:
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
                      "share still cached (fincore).",
        "resident_fraction_before_warm_runs": cache_before,
        "write_seconds": {k: round(v, 2) for k, v in write_s.items()},
        "disk_mb": {k: size_mb(v) for k, v in files.items()},
        "top10_agrees_with_native": {k: tops[k] == tops["native_store"] for k in _READY_KINDS},
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


def _real_model_path(cfg: Config) -> Path:
    path = cfg.models_dir / REAL_MODEL
    if not (path / "manifest.json").is_file():
        log(f"{path} missing: building it with `nlp-service defaults` (about a minute)")
        cmd = [*_cli(), "defaults", "--models-dir", str(cfg.models_dir), "--only", REAL_MODEL]
        subprocess.run(cmd, cwd=REPO_ROOT, check=True, stdout=sys.stderr)
    return path


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "nlp-service"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "nlp_service"]


def _latency_synthetic(cfg: Config, workdir: Path) -> dict[str, Any]:
    """Exact, approximate and gensim top-10 latency on an N x 300 synthetic set."""
    from nlp_service.vectors import VectorStore

    n = cfg.latency_words
    log(f"neighbour_latency: {n:,} x {DIM} synthetic vectors")
    words, matrix = synthetic(n)
    folder = workdir / "latency_store"
    VectorStore.from_vectors(words, matrix).save(folder)
    store = VectorStore.load(folder)  # memory-mapped, as the service opens it
    kv = keyed_vectors(words, matrix)
    del matrix
    rng = np.random.default_rng(1)
    queries = [words[i] for i in rng.choice(n, size=min(cfg.latency_queries, n), replace=False)]
    kv.most_similar(queries[0], topn=10)  # gensim computes its norms on the first query: not timed

    def exact(w: str) -> list[str]:
        return [x.word for x in store.most_similar([w], topn=10)]

    def approx(w: str) -> list[str]:
        return [x.word for x in store.most_similar([w], topn=10, approximate=True)]

    def gensim(w: str) -> list[str]:
        return [x for x, _ in kv.most_similar(w, topn=10)]

    t_exact, r_exact = time_calls(exact, queries)
    t_gensim, r_gensim = time_calls(gensim, queries)
    log(f"neighbour_latency: exact median {median(t_exact) * 1e3:.2f} ms, "
        f"gensim {median(t_gensim) * 1e3:.2f} ms; "
        f"building HNSW (M={cfg.ann_m}, ef_construction={cfg.ann_ef_construction})")
    t = time.perf_counter()
    ann_info = store.build_ann(m=cfg.ann_m, ef_construction=cfg.ann_ef_construction, progress=False)
    build_total = time.perf_counter() - t
    t_approx, r_approx = time_calls(approx, queries)
    log(f"neighbour_latency: HNSW built in {ann_info['build_seconds']:.1f}s, approx median "
        f"{median(t_approx) * 1e3:.3f} ms")
    s_exact, s_approx, s_gensim = latency_stats(t_exact), latency_stats(t_approx), latency_stats(t_gensim)
    return {
        "words": n,
        "dim": DIM,
        "queries": len(queries),
        "store": "VectorStore.load(mmap=True) of a saved store (pages cached after warm-up)",
        "exact": s_exact,
        "approximate": s_approx,
        "gensim": s_gensim,
        "ratio_gensim_over_exact_median": ratio(s_gensim["median_ms"], s_exact["median_ms"]),
        "ratio_gensim_over_approximate_median": ratio(s_gensim["median_ms"], s_approx["median_ms"], 1),
        "exact_top10_agrees_with_gensim": mean_overlap(r_exact, r_gensim),
        "ann_build": {"hnsw_build_seconds": ann_info["build_seconds"],
                      "build_ann_total_seconds": round(build_total, 2),
                      "M": cfg.ann_m, "ef_construction": cfg.ann_ef_construction, "ef_search": 128},
        "recall_at_10_random_vectors": {
            "note": "i.i.d. Gaussian vectors have no neighbourhood structure; HNSW recall on them is "
                    "meaningless for real use and only shown for completeness",
            "timed_queries": mean_overlap(r_approx, r_exact),
            "build_ann_estimate": ann_info.get("recall_at_10"),
        },
    }


def _latency_real(cfg: Config) -> dict[str, Any]:
    """Recall@10 of the HNSW path against exact search, and latencies, on the shipped Spanish model."""
    from nlp_service.vectors import VectorsModel

    path = _real_model_path(cfg)
    store = VectorsModel.load(path).store
    store.load_ann()
    words = store.words
    rng = np.random.default_rng(2)
    sample = [words[i] for i in rng.choice(len(words), size=min(cfg.real_queries, len(words)), replace=False)]
    kv = keyed_vectors(list(words), np.asarray(store.unit) * np.asarray(store.norms)[:, None])
    kv.most_similar(sample[0], topn=10)
    log(f"neighbour_latency: real vectors {path.name}: {len(store):,} x {store.dim}, {len(sample)} queries")

    def exact(w: str) -> list[str]:
        return [x.word for x in store.most_similar([w], topn=10)]

    def gensim(w: str) -> list[str]:
        return [x for x, _ in kv.most_similar(w, topn=10)]

    t_exact, r_exact = time_calls(exact, sample)
    t_gensim, _ = time_calls(gensim, sample)
    by_ef: dict[str, Any] = {}
    for ef in (16, 32, 64, 128, 256):
        def approx(w: str, ef: int = ef) -> list[str]:
            return [x.word for x in store.most_similar([w], topn=10, approximate=True, ef=ef)]

        t_approx, r_approx = time_calls(approx, sample)
        by_ef[str(ef)] = {"recall_at_10": mean_overlap(r_approx, r_exact), **latency_stats(t_approx)}
    default = by_ef["128"]
    s_exact, s_gensim = latency_stats(t_exact), latency_stats(t_gensim)
    return {
        "model": path.name,
        "words": len(store),
        "dim": store.dim,
        "queries": len(sample),
        "ann_params": store._ann_params,
        "exact": s_exact,
        "gensim": s_gensim,
        "approximate_ef128": default,
        "recall_at_10_ef128": default["recall_at_10"],
        "approximate_by_ef": by_ef,
        "ratio_gensim_over_exact_median": ratio(s_gensim["median_ms"], s_exact["median_ms"]),
        "ratio_gensim_over_approximate_median": ratio(s_gensim["median_ms"], default["median_ms"], 1),
    }


def bench_latency(cfg: Config, workdir: Path) -> dict[str, Any]:
    synth = _latency_synthetic(cfg, workdir)
    gc.collect()
    real = _latency_real(cfg)
    speedup = synth["ratio_gensim_over_approximate_median"]
    recall = real["recall_at_10_ef128"]
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
                             f"{real['model']} (ef=128)",
                "ratio_gensim_over_approximate_median": speedup,
                "recall_at_10": recall,
                "met": speedup is not None and speedup >= 20 and recall >= 0.95,
            },
        },
    }


# ---- 3. word2vec throughput ----------------------------------------------------------------------


def bench_word2vec(cfg: Config, workdir: Path) -> dict[str, Any]:
    from gensim.models import Word2Vec

    from nlp_service.data import SPANISH_CORPUS
    from nlp_service.text import Tokenizer
    from nlp_service.vectors import Word2VecParams
    from pipelines.word2vec import build_word2vec

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
        _, metrics = build_word2vec(corpus, root / "models", "bench", params=params, tokenizer=Tokenizer(),
                                    cache_dir=cache, ann=False, overwrite=True, progress=False)
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


# ---- 4. HTTP ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load_test(base_url: str, path: str, payloads: list[dict[str, Any]], concurrency: int,
                     warmup: int) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        failures: Counter[str] = Counter()

        async def worker(items: Iterator[dict[str, Any]], record: bool) -> None:
            for payload in items:  # one shared iterator: each task takes the next payload
                t = time.perf_counter()
                try:
                    resp = await client.post(path, json=payload)
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] += int(record)
                    continue
                if record:
                    latencies.append(time.perf_counter() - t)
                    statuses[resp.status_code] += 1

        warm_items = iter(payloads[:warmup])
        await asyncio.gather(*(worker(warm_items, False) for _ in range(concurrency)))
        items = iter(payloads[warmup:])
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(items, True) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    done = len(latencies)
    return {
        "requests": done,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "requests_per_s": round(done / wall, 1) if wall > 0 else None,
        "latency": latency_stats(latencies) if latencies else None,
        "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "client_errors": dict(failures),
    }


def bench_http(cfg: Config, workdir: Path) -> dict[str, Any]:
    import httpx

    from nlp_service.vectors import VectorsModel

    path = _real_model_path(cfg)
    words = VectorsModel.load(path).store.words[:5000]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = workdir / "server.log"
    cmd = [*_cli(), "serve", "--host", "127.0.0.1", "--port", str(port), "--models-dir", str(path.parent),
           "--model", REAL_MODEL]
    log(f"http: starting {' '.join(cmd[-8:])}")
    with open(server_log, "wb") as out:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        ready_s = None
        deadline = time.perf_counter() + 180
        while time.perf_counter() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/ready", timeout=2.0).status_code == 200:
                    ready_s = time.perf_counter() - t_start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        if ready_s is None:
            tail = server_log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server not ready (exit code {proc.poll()}); log tail:\n{tail}")
        log(f"http: server ready after {ready_s:.2f}s on port {port}")
        rng = np.random.default_rng(3)
        total = cfg.http_requests + (warmup := min(200, cfg.http_requests))
        idx = rng.integers(0, len(words), size=(total, 2))
        endpoints: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "similarity": ("/v1/similarity", [{"word1": words[a], "word2": words[b]} for a, b in idx]),
            "neighbors": ("/v1/neighbors", [{"word": words[a], "topn": 10} for a, _ in idx]),
            "neighbors_approximate": ("/v1/neighbors", [{"word": words[a], "topn": 10, "approximate": True}
                                                        for a, _ in idx]),
        }
        results: dict[str, Any] = {}
        for name, (route, payloads) in endpoints.items():
            results[name] = {"route": route, **asyncio.run(
                _load_test(base, route, payloads, cfg.http_concurrency, warmup))}
            lat = results[name]["latency"] or {}
            log(f"http {name}: {results[name]['requests_per_s']} req/s, p50 {lat.get('median_ms')} ms, "
                f"p99 {lat.get('p99_ms')} ms, statuses {results[name]['status_codes']}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "server": f"nlp-service serve (uvicorn, 1 process, default settings incl. access log), "
                  f"model {REAL_MODEL}",
        "client": f"httpx.AsyncClient, {cfg.http_concurrency} concurrent tasks, keep-alive, in this process; "
                  f"client and server share the same {os.cpu_count()} cores",
        "words": f"{REAL_MODEL} store.words[:5000], random draws",
        "warmup_requests_per_endpoint": warmup,
        "startup_to_ready_s": round(ready_s, 2),
        **results,
    }


# ---- main ------------------------------------------------------------------------------------------

_RUNNERS: dict[str, Callable[[Config, Path], dict[str, Any]]] = {
    "ready_to_answer": bench_ready,
    "neighbour_latency": bench_latency,
    "word2vec_throughput": bench_word2vec,
    "http": bench_http,
}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.chdir(REPO_ROOT)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # pipelines/ when not installed
    if cfg.workdir is not None:
        cfg.workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="nlp-bench-vectors-", dir=cfg.workdir or "/tmp"))
    started = datetime.now(UTC)
    doc: dict[str, Any] = {
        "benchmark": "benchmarks/vectors.py",
        "started_at": started.isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "machine": machine_info(),
    }
    failed = False
    log(f"scratch folder {scratch}; sections: {', '.join(cfg.sections)}")
    try:
        for name in SECTIONS:
            if name not in cfg.sections:
                continue
            t = time.perf_counter()
            log(f"== {name}")
            try:
                result = _RUNNERS[name](cfg, scratch)
            except Exception as exc:
                failed = True
                traceback.print_exc(file=sys.stderr)
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["section_seconds"] = round(time.perf_counter() - t, 1)
            doc[name] = result
            gc.collect()
            log(f"== {name} done in {result['section_seconds']}s")
    finally:
        if cfg.keep_workdir:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    doc["goals"] = _goals(doc)
    doc["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["wall_seconds"] = round(time.perf_counter() - _START, 1)
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 1 if failed else 0


def _goals(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ready = doc.get("ready_to_answer", {})
    if "goal" in ready:
        out["ready_under_1s"] = ready["goal"]["met"]
    lat = doc.get("neighbour_latency", {})
    for key, goal in lat.get("goals", {}).items():
        out[key] = goal["met"]
    w2v = doc.get("word2vec_throughput", {})
    if "goal" in w2v:
        out["word2vec_at_least_0_8_of_gensim"] = w2v["goal"]["met"]
    return out


if __name__ == "__main__":
    sys.exit(main())
