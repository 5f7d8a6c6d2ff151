#!/usr/bin/env python
"""Benchmark converting a fastText ``.bin`` of cc.es.300's shape: wall time and peak memory of
``nlp-service convert FILE --name x --no-ann`` in a child process, and its vectors against gensim's.

Prints ONE JSON document on stdout (or ``--out``); progress goes to stderr. Nothing is asserted: the
goals (peak RSS under 2 GB, vectors equal to gensim's) are reported with ``"met": true|false``.

* ``full``   a synthetic .bin of cc.es.300's shape (2,000,000 random Spanish-like words, 2,000,000
             buckets, dim 300, and a 2M x 300 output matrix: ~7.2 GB), written streaming, converted once.
* ``check``  a smaller file of the same construction, converted the same way and loaded by gensim's
             ``load_facebook_vectors`` in another child: words, vectors and out-of-vocabulary vectors
             compared, and gensim's peak RSS on it reported next to ours (nothing is extrapolated:
             gensim needs ~15 GB for the full shape).

Run from the repository root (needs ~2x the file's size free under --workdir; it deletes what it wrote)::

    .venv/bin/python benchmarks/fasttext_bin.py --quick
    nice -n 10 .venv/bin/python benchmarks/fasttext_bin.py --out bench-out/fasttext_bin.json
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _harness import (
    REPO_ROOT,
    add_scratch_args,
    benchmark_parser,
    child_env,
    git_state,
    log,
    machine_info,
    new_document,
    nlp_service_cli,
    scratch_folder,
    sizes,
    use_library,
    write_document,
)

SECTIONS = ("full", "check")
MAGIC = 793712314  # fastText's file format, version 12 (FastText::saveModel)
PEAK_RSS_GOAL_MB = 2048
_SIZES = {  # option -> (full default, --quick default)
    "words": (2_000_000, 50_000),
    "bucket": (2_000_000, 50_000),
    "check_words": (100_000, 5_000),
    "check_bucket": (100_000, 5_000),
}
_SYLLABLES = ("ca", "de", "la", "ción", "mien", "to", "ñu", "qué", "rá", "es", "pa", "ro", "güe", "sí", "tri", "bl",
              "an", "cho", "llo", "zu", "má", "en", "gi", "fo", "vi", "ré", "xo", "us", "ter", "ha", "nó", "pe")
OOV_WORDS = ("informaciónes", "ñandúes", "zzqxyz", "corazoncito", "Kölnische")  # each has a 5-gram


@dataclass
class Config:
    sections: list[str]
    words: int
    bucket: int
    dim: int
    check_words: int
    check_bucket: int
    workdir: Path | None
    keep_workdir: bool
    out: Path | None
    quick: bool


def parse_args(argv: Sequence[str] | None = None) -> Config:
    from _harness import chosen_sections

    p = benchmark_parser("Convert a cc.es.300-shaped fastText .bin: time, peak memory, equality with gensim. One "
                         "JSON document on stdout, progress on stderr.", SECTIONS,
                         quick_help="small shapes for a smoke run (50k words and buckets; check 5k)")
    p.add_argument("--words", type=int, help="words of the full file [2,000,000; quick 50,000]")
    p.add_argument("--bucket", type=int, help="n-gram buckets of the full file [2,000,000; quick 50,000]")
    p.add_argument("--dim", type=int, default=300, help="dimensions")
    p.add_argument("--check-words", type=int, help="words of the file gensim also loads [100,000; quick 5,000]")
    p.add_argument("--check-bucket", type=int, help="its buckets [100,000; quick 5,000]")
    p.add_argument("--out", type=Path, help="write the JSON document here instead of stdout")
    add_scratch_args(p)
    a = p.parse_args(argv)
    return Config(sections=chosen_sections(p, a.sections, SECTIONS), dim=a.dim, workdir=a.workdir,
                  keep_workdir=a.keep_workdir, out=a.out, quick=a.quick, **sizes(a, _SIZES))


# ---- the synthetic file ----------------------------------------------------------------------------


def spanish_like_words(count: int, seed: int) -> list[str]:
    """``count`` unique words of 1-5 random Spanish syllables (a numeric suffix would be unlike words)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        parts = rng.integers(0, len(_SYLLABLES), size=(count, 6))
        lengths = rng.integers(1, 7, size=count)
        for row, k in zip(parts.tolist(), lengths.tolist(), strict=True):
            word = "".join(_SYLLABLES[j] for j in row[:k])
            if word not in seen:
                seen.add(word)
                out.append(word)
                if len(out) == count:
                    break
    return out


def write_bin(path: Path, words: int, bucket: int, dim: int, seed: int, chunk_rows: int = 32_768) -> dict[str, Any]:
    """A fastText .bin (version 12) as FastText::saveModel lays it out, written a chunk of rows at a time:
    random float32 input rows (words, then buckets), then an output matrix of ``words`` rows (zeros)."""
    t = time.perf_counter()
    vocab = spanish_like_words(words, seed)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<2i", MAGIC, 12))
        # dim ws epoch minCount neg wordNgrams loss(ns) model(cbow) bucket minn maxn lrUpdateRate t: cc.es.300's
        fh.write(struct.pack("<12id", dim, 5, 1, 5, 10, 1, 2, 1, bucket, 5, 5, 100, 1e-4))
        fh.write(struct.pack("<3i2q", words, words, 0, 100 * words, -1))
        fh.write(b"".join(w.encode() + b"\0" + struct.pack("<qb", words - i, 0) for i, w in enumerate(vocab)))
        del vocab
        fh.write(b"\0" + struct.pack("<2q", words + bucket, dim))
        for start in range(0, words + bucket, chunk_rows):
            n = min(chunk_rows, words + bucket - start)
            fh.write((rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.05)).tobytes())
        fh.write(b"\0" + struct.pack("<2q", words, dim))
        zeros = bytes(chunk_rows * dim * 4)
        for start in range(0, words, chunk_rows):
            fh.write(zeros[: min(chunk_rows, words - start) * dim * 4])
    return {"bytes": path.stat().st_size, "words": words, "bucket": bucket, "dim": dim,
            "write_seconds": round(time.perf_counter() - t, 1)}


# ---- children ------------------------------------------------------------------------------------


def measured(cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit status and peak RSS (this child's own rusage, via wait4)."""
    t = time.perf_counter()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env or child_env())
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"wall_seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "exit": proc.returncode}
    if proc.returncode:
        result["log_tail"] = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    return result


def convert(path: Path, models: Path, name: str, scratch: Path) -> dict[str, Any]:
    cmd = [*nlp_service_cli(), "convert", str(path), "--name", name, "--no-ann", "--models-dir", str(models)]
    log(f"{' '.join(cmd)}")
    result = measured(cmd, scratch / f"convert-{name}.log")
    model = models / name
    if model.is_dir():
        result["model_bytes"] = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
    return result


GENSIM_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from gensim.models.fasttext import load_facebook_vectors

    kv = load_facebook_vectors(sys.argv[1])
    out = sys.argv[2]
    np.save(out + "/vectors.npy", kv.vectors)
    np.save(out + "/oov.npy", np.stack([kv[w] for w in json.loads(sys.argv[3])]))
    with open(out + "/words.txt", "w", encoding="utf-8") as fh:
        fh.write("\\n".join(kv.index_to_key) + "\\n")
""")


def compare(model_dir: Path, gensim_out: Path) -> dict[str, Any]:
    from nlp_service.vectors import VectorsModel

    model = VectorsModel.load(model_dir)
    theirs = np.load(gensim_out / "vectors.npy", mmap_mode="r")
    words = (gensim_out / "words.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    store = model.store
    worst, worst_rel = 0.0, 0.0
    for start in range(0, len(store), 50_000):
        ours = np.asarray(store.unit[start : start + 50_000]) * np.asarray(store.norms[start : start + 50_000])[:, None]
        diff = np.abs(ours - theirs[start : start + 50_000])
        worst = max(worst, float(diff.max()))
        worst_rel = max(worst_rel, float((diff / np.maximum(np.abs(theirs[start : start + 50_000]), 1e-3)).max()))
    oov = np.stack([v for v, _ in model.word_vectors(list(OOV_WORDS))])
    oov_diff = float(np.abs(oov - np.load(gensim_out / "oov.npy")).max())
    same = store.words == words
    return {"words_equal": same, "max_abs_diff": worst, "max_rel_diff": worst_rel, "oov_max_abs_diff": oov_diff,
            "met": same and worst <= 1e-5 and oov_diff <= 1e-6}


# ---- sections ------------------------------------------------------------------------------------


def run_full(cfg: Config, scratch: Path) -> dict[str, Any]:
    path = scratch / "cc.es.300-shaped.bin"
    log(f"writing {path} ({cfg.words} words, {cfg.bucket} buckets, dim {cfg.dim})")
    result: dict[str, Any] = {"file": write_bin(path, cfg.words, cfg.bucket, cfg.dim, seed=1)}
    log(f"wrote {result['file']['bytes'] / 1e9:.2f} GB in {result['file']['write_seconds']}s")
    try:
        result["convert"] = convert(path, scratch / "models", "x", scratch)
    finally:
        path.unlink(missing_ok=True)
    conv = result["convert"]
    log(f"converted in {conv['wall_seconds']}s, peak RSS {conv['peak_rss_mb']} MB")
    result["goal"] = {"peak_rss_under_mb": PEAK_RSS_GOAL_MB,
                      "met": conv["exit"] == 0 and conv["peak_rss_mb"] < PEAK_RSS_GOAL_MB}
    return result


def run_check(cfg: Config, scratch: Path) -> dict[str, Any]:
    path = scratch / "check.bin"
    result: dict[str, Any] = {"file": write_bin(path, cfg.check_words, cfg.check_bucket, cfg.dim, seed=2)}
    try:
        result["ours"] = convert(path, scratch / "models", "check", scratch)
        gensim_out = scratch / "gensim"
        gensim_out.mkdir()
        log("gensim load_facebook_vectors on the same file")
        result["gensim"] = measured([sys.executable, "-c", GENSIM_CHILD, str(path), str(gensim_out),
                                     json.dumps(OOV_WORDS)], scratch / "gensim.log")
    finally:
        path.unlink(missing_ok=True)
    if result["ours"]["exit"] == 0 and result["gensim"]["exit"] == 0:
        result["equal_to_gensim"] = compare(scratch / "models" / "check", gensim_out)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    os.chdir(REPO_ROOT)
    use_library()
    doc = new_document("benchmarks/fasttext_bin.py", cfg, library=git_state(),
                       machine=machine_info(["numpy", "scipy", "gensim"]))
    failed = False
    with scratch_folder("nlp-bench-fasttext-bin-", cfg.workdir, cfg.keep_workdir) as scratch:
        for name, run in (("check", run_check), ("full", run_full)):
            if name not in cfg.sections:
                continue
            t = time.perf_counter()
            log(f"== {name}")
            try:
                doc[name] = run(cfg, scratch)
            except Exception as exc:
                failed = True
                doc[name] = {"error": f"{type(exc).__name__}: {exc}"}
            doc[name]["section_seconds"] = round(time.perf_counter() - t, 1)
    doc["goals"] = {"peak_rss_under_2gb": doc.get("full", {}).get("goal", {}).get("met"),
                    "equal_to_gensim": doc.get("check", {}).get("equal_to_gensim", {}).get("met")}
    write_document(doc, cfg.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
