#!/usr/bin/env python
"""Benchmark the batch jobs (``nlp-service batch``): rows/s of the local engine and of Ray on this machine,
for sentiment and embeddings, against a loop of HTTP requests of the same batch size to the running service,
and the peak memory as the input grows.

Prints ONE JSON document on stdout (or --out); progress goes to stderr. Nothing is asserted: goals are
reported next to the measurements with "met": true|false.

Input: the shipped Spanish reviews (``nlp_service.data.SENTIMENT_ES``), each cut to its first --words words
(a short survey answer), repeated in order to --rows rows with an ``id`` column (i0, i1, ...), written once
as a gzipped CSV (``id,text``) in the scratch folder; its first --small-rows rows are a second file, for the
memory comparison. The models are the default ones in --models-dir: sentiment-es (BiLSTM, task
``classify``) and w2v-es (vectors, task ``embed``); ``make defaults`` builds them.

Sections (--sections, default all); ``machine``, ``data`` and ``comparison`` blocks are always written:

* ``local``  ``nlp-service batch classify|embed INPUT --output OUT --model M --text-column text --id-column id
             --batch-size B --summary-json``, one child process per run, on the small file, then on the full
             one: wall time of the process, the job's own rows/s (its summary: from the first row read to
             the last part written; start-up and model loading excluded), the child's peak RSS (ru_maxrss
             from wait4: its exact high-water mark), its CPU.
* ``ray``    the same runs with ``--engine ray --num-actors 2 --num-cpus-per-actor 1`` (a local Ray that the
             job starts and stops): wall time (Ray's start-up included), the summary's rows/s (from Ray
             started to the output written: the actors' model loading included, Ray's start-up not), the
             peak memory of all the job's processes (its session: driver, Ray's daemons, workers; RSS and
             PSS summed, sampled every --rss-interval; the driver's own ru_maxrss too).
* ``http``   a real ``nlp-service serve`` with these two models only (NLP_MODELS) and NLP_BATCH_MAX_SIZE=B, twice:
             as shipped, and with NLP_TORCH_THREADS=1 (the job's threads a forward pass; the goal is judged
             against the faster of the two);
             one client (``httpx.Client``, one kept-alive connection) posts the first --http-rows texts of
             the same sequence in requests of B texts, one after the other, to /v1/sentiment and
             /v1/embeddings/texts, parses each answer and keeps nothing: rows/s, latency per request, the
             server's and the client's CPU. The texts are in memory before the clock starts.

Goals, per task: local rows/s >= 3x the HTTP loop's (the job's own rows/s on the full file vs the loop's);
Ray on one machine >= 0.7x local (rows/s over the whole process, start-up included, on the full file);
memory flat: the local job's peak RSS on the full file <= 1.3x its peak on the small file. The comparison
block also says what a cluster would add to Ray.

Each section records ``interference`` (the CPU other processes used meanwhile), and so does each run: on a
shared machine compare runs only when it is near zero. Outputs are deleted right after each run (their size
is recorded); the full embedding output is ~0.5 GB at 1M rows. By default the run imports a copy of
``nlp_service/`` taken at its start (``library`` in the JSON), so that edits made meanwhile do not reach the
children; --no-snapshot imports the working tree. The jobs and the server inherit this environment: e.g.
``OMP_NUM_THREADS=1`` before the command limits torch's threads in all of them (``machine.thread_env`` records
it; Ray sets it to each actor's CPUs itself).

Run from the repository root::

    .venv/bin/python benchmarks/batch.py --quick > bench-out/batch-quick.json              # ~3 min on 2 cores
    .venv/bin/python benchmarks/batch.py --out bench-out/batch.json 2> bench-out/batch.log   # ~20-30 min on 2 cores
    .venv/bin/python benchmarks/batch.py --sections local,http --tasks classify --rows 200000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import gzip
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    REPO_ROOT,
    add_scratch_args,
    benchmark_parser,
    child_env,
    chosen_sections,
    cpu_snapshot,
    git_state,
    interference,
    latency_stats,
    library_root,
    log,
    machine_info,
    new_document,
    nlp_service_cli,
    own_cpu_s,
    process_cpu_s,
    ratio,
    run_sections,
    scratch_folder,
    serving,
    sizes,
    snapshot_library,
    use_library,
    write_document,
)

SECTIONS = ("local", "ray", "http")
TASKS = ("classify", "embed")
ROUTES = {"classify": "/v1/sentiment", "embed": "/v1/embeddings/texts"}
ANSWER_LISTS = {"classify": "results", "embed": "embeddings"}  # the list in each route's answer, one per text
SIZE_LABELS = ("small", "full")
LOCAL_VS_HTTP_MIN = 3.0
RAY_VS_LOCAL_MIN = 0.7
MEMORY_FLAT_MAX = 1.3
MIB = 1024.0**2
RAY_NOTE = (
    "Measured here: Ray on one machine, where it can only add cost: starting Ray (GCS, raylet, workers), the "
    "model loaded once per actor (and once more in the driver, which checks it before Ray starts), every block "
    "of rows turned into Arrow, copied through the object store and back into Python objects, and Ray's read "
    "and write tasks (which reserve no CPU) competing with the actors for the same cores. A cluster would add "
    "what one machine lacks: more actors on more cores or GPUs, each loading the model once, so rows/s grow "
    "with the actors while the per-row work dominates; and its own costs: every worker must see the inputs "
    "and the models folder at the same paths (a shared file system), blocks cross the network, each node "
    "starts and loads the model, and the input is read by at most 2 read tasks (one per file), which "
    "bounds how fast many actors can be fed.")


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    sections: list[str]
    tasks: list[str]
    quick: bool
    rows: int
    small_rows: int
    http_rows: int
    words: int
    batch_size: int
    http_warmup: int
    models_dir: Path
    models: dict[str, str]
    ray_actors: int
    ray_cpus_per_actor: float
    rss_interval: float
    run_timeout: float
    ready_timeout: float
    out: Path | None
    workdir: Path | None
    keep_workdir: bool
    snapshot: bool


_SIZES: dict[str, tuple[Any, Any]] = {  # (full, --quick); an explicit option overrides either
    "rows": (1_000_000, 20_000),
    "small_rows": (100_000, 5_000),
    "http_rows": (100_000, 5_000),
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _setting_default(name: str) -> Any:
    """A service setting's default (Settings.<name>), read without the environment."""
    from nlp_service.config import Settings

    return Settings.model_fields[name].default


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = benchmark_parser(__doc__ or "", SECTIONS,
                         quick_help="smoke run: 20,000 rows (small file 5,000), 5,000 rows over HTTP")
    p.formatter_class = _HelpFormatter
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of: {', '.join(TASKS)}")
    p.add_argument("--rows", type=int, help="rows of the full input file (the reviews repeated) "
                   "[1,000,000; quick 20,000]")
    p.add_argument("--small-rows", type=int, help="rows of the small input file (the full file's first rows), "
                   "run first: the peak memory on it is compared with the full file's [100,000; quick 5,000]")
    p.add_argument("--http-rows", type=int, help="rows sent over HTTP (the same texts, in the same order, from "
                   "the start) [100,000; quick 5,000]")
    p.add_argument("--words", type=int, default=12, help="each review cut to its first WORDS words")
    p.add_argument("--batch-size", type=int, default=_setting_default("batch_max_size"),
                   help="texts per HTTP request, the batch job's --batch-size and the server's "
                   "NLP_BATCH_MAX_SIZE (micro-batch size), the same everywhere [Settings.batch_max_size]")
    p.add_argument("--http-warmup", type=int, default=5, help="untimed HTTP requests per route before the loop")
    p.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models",
                   help="folder holding the models (`make defaults` builds them there)")
    p.add_argument("--sentiment-model", default="sentiment-es", help="the classifier of the classify task")
    p.add_argument("--vectors-model", default="w2v-es", help="the vectors model of the embed task")
    p.add_argument("--ray-actors", type=int, default=2, help="Ray: --num-actors of the job (model actors)")
    p.add_argument("--ray-cpus-per-actor", type=float, default=1.0,
                   help="Ray: --num-cpus-per-actor of the job (CPUs each actor reserves)")
    p.add_argument("--rss-interval", type=float, default=0.5,
                   help="seconds between samples of the memory and CPU of a job's processes (/proc)")
    p.add_argument("--run-timeout", type=float, default=3600.0,
                   help="a batch job running longer than this is killed and recorded as failed")
    p.add_argument("--ready-timeout", type=float, default=300.0, help="longest wait for the server's /ready")
    p.add_argument("--out", type=Path, help="write the JSON document to this file instead of stdout")
    p.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                   help="import the working tree's nlp_service instead of a copy taken at the start")
    add_scratch_args(p, keeps="the input files, the jobs' and the server's logs")
    a = p.parse_args(argv)
    sections = chosen_sections(p, a.sections, SECTIONS)
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if set(tasks) - set(TASKS):
        p.error(f"unknown task(s): {', '.join(sorted(set(tasks) - set(TASKS)))}")
    if not sections or not tasks:
        p.error("no section or no task chosen")
    n = sizes(a, _SIZES)
    if min(n["rows"], n["small_rows"], n["http_rows"], a.words, a.batch_size, a.ray_actors) < 1:
        p.error("--rows, --small-rows, --http-rows, --words, --batch-size and --ray-actors must be at least 1")
    if n["small_rows"] >= n["rows"]:
        p.error(f"--small-rows ({n['small_rows']:,}) must be below --rows ({n['rows']:,})")
    if a.ray_cpus_per_actor <= 0 or a.rss_interval <= 0:
        p.error("--ray-cpus-per-actor and --rss-interval must be positive")
    return Config(sections=sections, tasks=[t for t in TASKS if t in tasks], quick=a.quick, words=a.words,
                  batch_size=a.batch_size, http_warmup=max(0, a.http_warmup), models_dir=a.models_dir.resolve(),
                  models={"classify": a.sentiment_model, "embed": a.vectors_model}, ray_actors=a.ray_actors,
                  ray_cpus_per_actor=a.ray_cpus_per_actor, rss_interval=a.rss_interval,
                  run_timeout=a.run_timeout, ready_timeout=a.ready_timeout,
                  out=a.out.resolve() if a.out else None, workdir=a.workdir.resolve() if a.workdir else None,
                  keep_workdir=a.keep_workdir, snapshot=a.snapshot, **n)


@dataclass
class State:
    scratch: Path
    texts: list[str]  # the distinct short texts; row i is texts[i % len(texts)]
    inputs: dict[str, tuple[Path, int]]  # size label -> (file, rows)
    failures: list[str] = field(default_factory=list)


# ---- input data ----------------------------------------------------------------------------------


def short_texts(words: int) -> list[str]:
    """The shipped Spanish reviews, each cut to its first ``words`` words (empty ones left out)."""
    from nlp_service.data import SENTIMENT_ES

    with gzip.open(SENTIMENT_ES, "rt", encoding="utf-8", newline="") as fh:
        texts = [" ".join(r["text"].split()[:words]) for r in csv.DictReader(fh, delimiter="\t")]
    return [t for t in texts if t]


def write_inputs(cfg: Config, scratch: Path, texts: list[str]) -> tuple[dict[str, tuple[Path, int]], dict[str, Any]]:
    """The full file and its prefix, both gzipped CSV (``id,text``), written in one pass."""
    t0 = time.perf_counter()
    paths = {"small": (scratch / f"answers-{cfg.small_rows}.csv.gz", cfg.small_rows),
             "full": (scratch / f"answers-{cfg.rows}.csv.gz", cfg.rows)}
    with contextlib.ExitStack() as stack:
        writers = {}
        for label, (path, _) in paths.items():
            fh = stack.enter_context(gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6))
            writers[label] = csv.writer(fh)
            writers[label].writerow(["id", "text"])
        small, full = writers["small"], writers["full"]
        n = len(texts)
        for i in range(cfg.rows):
            record = (f"i{i}", texts[i % n])
            full.writerow(record)
            if i < cfg.small_rows:
                small.writerow(record)
    info = {
        "source": "nlp_service.data.SENTIMENT_ES (text column)",
        "distinct_texts": len(texts),
        "words_per_text_max": cfg.words,
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 2),
        "mean_chars": round(sum(len(t) for t in texts) / len(texts), 1),
        "examples": texts[:3],
        "files": {label: {"name": path.name, "rows": rows, "bytes": path.stat().st_size}
                  for label, (path, rows) in paths.items()},
        "write_seconds": round(time.perf_counter() - t0, 1),
    }
    return paths, info


# ---- a batch job in a child process --------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(session id, user + system CPU seconds) of a process, from /proc/<pid>/stat; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[3]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _session_members(sid: int) -> list[int]:
    """The processes of session ``sid``: a job started in a session of its own, with everything it started
    (Ray's daemons and workers change their process group, not their session)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            st = _stat(int(proc.name))
            if st is not None and st[0] == sid:
                found.append(int(proc.name))
    return found


def _proc_kb(path: str, key: str) -> int:
    """The ``key:`` line of a /proc status-like file, in kB; 0 when the process is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


class JobProcesses:
    """A thread sampling the processes of a job's session: memory (RSS, shared pages counted once per process;
    PSS, shared pages split among the processes that map them), summed, and each process's CPU."""

    def __init__(self, sid: int, interval: float) -> None:
        self.sid, self.interval = sid, interval
        self.peak_rss_kb = self.peak_pss_kb = self.max_processes = self.samples = 0
        self.cpu_s: dict[int, float] = {}  # last seen, per process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-processes", daemon=True)

    def __enter__(self) -> JobProcesses:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seen_s(self) -> float:
        """CPU of every process of the session, each as last sampled (what it used after is missed)."""
        return sum(self.cpu_s.values())

    def _run(self) -> None:
        while True:
            pids = _session_members(self.sid)
            for pid in pids:
                st = _stat(pid)
                if st is not None:
                    self.cpu_s[pid] = st[1]
            rss = sum(_proc_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
            pss = sum(_proc_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
            if rss:
                self.samples += 1
                self.peak_rss_kb, self.peak_pss_kb = max(self.peak_rss_kb, rss), max(self.peak_pss_kb, pss)
                self.max_processes = max(self.max_processes, len(pids))
            if self._stop.wait(self.interval):
                return


def _kill_session(sid: int) -> int:
    """SIGKILL every process of session ``sid`` (one this script started); how many there were."""
    pids = _session_members(sid)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _summary_from(text: str) -> dict[str, Any] | None:
    """The job's summary: the last JSON object on stdout with ``rows_per_second``."""
    decoder = json.JSONDecoder()
    for m in reversed(list(re.finditer(r"^\{", text, re.MULTILINE))):
        with contextlib.suppress(ValueError):
            obj, _ = decoder.raw_decode(text[m.start():])
            if isinstance(obj, dict) and "rows_per_second" in obj:
                return obj
    return None


def _folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in files), len(files)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def run_job(cfg: Config, state: State, task: str, size: str, engine: str) -> dict[str, Any]:
    """One ``nlp-service batch`` in a child process (its own session, so that a timeout kills Ray too),
    waited for with wait4 for its exact ru_maxrss and CPU; its output measured, then deleted."""
    path, rows = state.inputs[size]
    name = f"{engine}-{task}-{size}"
    output = state.scratch / "out" / name
    cmd = [*nlp_service_cli(), "batch", task, str(path), "--output", str(output), "--model", cfg.models[task],
           "--text-column", "text", "--id-column", "id", "--batch-size", str(cfg.batch_size), "--summary-json",
           "--models-dir", str(cfg.models_dir)]
    if engine == "ray":
        cmd += ["--engine", "ray", "--num-actors", str(cfg.ray_actors),
                "--num-cpus-per-actor", f"{cfg.ray_cpus_per_actor:g}"]
    out_path, log_path = state.scratch / "logs" / f"{name}.out", state.scratch / "logs" / f"{name}.log"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"  {engine} {task} on {rows:,} rows ...")
    before = cpu_snapshot()
    t0 = time.perf_counter()
    with open(out_path, "wb") as out, open(log_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=library_root(), env=child_env(), stdout=out, stderr=err,
                                start_new_session=True)
    timer = threading.Timer(cfg.run_timeout, _kill_session, (proc.pid,))
    timer.start()
    try:
        with JobProcesses(proc.pid, cfg.rss_interval) as procs:
            _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill_session(proc.pid)
        proc.wait()
        raise
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Still alive in its session after it exited: Ray's daemons, had it not stopped them.
    leftovers = _kill_session(proc.pid)
    after = cpu_snapshot()
    job_cpu = usage.ru_utime + usage.ru_stime  # the job's process and the children it waited for
    # Processes it did not wait for (Ray's workers, reparented when Ray stops) are not in our CPU: count them
    # as ours, not as other processes' (approximate: sampled).
    unwaited_cpu = max(0.0, procs.cpu_seen_s - job_cpu)
    summary = _summary_from(out_path.read_text(errors="replace"))
    out_bytes, out_files = _folder_size(output)
    shutil.rmtree(output, ignore_errors=True)
    result: dict[str, Any] = {
        "command": shlex.join(cmd),
        "input_rows": rows,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kB on Linux: the job's process (the Ray driver)
        "processes_peak_rss_mb": round(procs.peak_rss_kb / 1024, 1),
        "processes_peak_pss_mb": round(procs.peak_pss_kb / 1024, 1),
        "processes_max": procs.max_processes,
        "memory_samples": procs.samples,
        "cpu_s": round(max(job_cpu, procs.cpu_seen_s), 1),
        "cpu_cores_mean": round(max(job_cpu, procs.cpu_seen_s) / wall, 2) if wall > 0 else None,
        "output_bytes": out_bytes,
        "output_files": out_files,
        "leftover_processes_killed": leftovers,
        "interference": interference(before, after, wall, extra_own_s=unwaited_cpu),
    }
    if proc.returncode != 0 or summary is None:
        if proc.returncode == -signal.SIGKILL and wall >= cfg.run_timeout:
            why = f"killed after --run-timeout {cfg.run_timeout:g}s"
        else:
            why = f"exit code {proc.returncode}" + ("" if summary is not None else ", no summary on stdout")
        result["error"] = f"{why}; log tail:\n{_tail(log_path)}"
        state.failures.append(f"{name}: {why}")
        log(f"  FAILED {name}: {why}")
        return result
    done = int(summary["rows"]) - int(summary.get("resumed_rows") or 0)
    job_s = float(summary["seconds"])
    result.update({
        "rows": int(summary["rows"]),
        "errors": int(summary["errors"]),
        "rows_ok": int(summary["rows"]) == rows and int(summary["errors"]) == 0,
        "job_seconds": job_s,
        "rows_per_s": float(summary["rows_per_second"]),
        "rows_per_s_wall": round(done / wall, 1) if wall > 0 else None,
        "startup_and_teardown_s": round(wall - job_s, 2),
        "summary": summary,
    })
    if not result["rows_ok"]:
        state.failures.append(f"{name}: {summary['rows']} rows, {summary['errors']} errors (expected {rows} rows)")
    log(f"  {engine} {task} {rows:,} rows: {wall:.1f}s wall ({result['rows_per_s_wall']:,.0f} rows/s), job "
        f"{job_s:.1f}s ({result['rows_per_s']:,.0f} rows/s), peak RSS {result['peak_rss_mb']:,.0f} MiB (all "
        f"{result['processes_max']} processes: {result['processes_peak_rss_mb']:,.0f} RSS / "
        f"{result['processes_peak_pss_mb']:,.0f} PSS), "
        f"{result['cpu_cores_mean']} cores, others {result['interference']['other_processes_cores']} cores")
    return result


def bench_engine(engine: str, cfg: Config, state: State) -> dict[str, Any]:
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        log("  skipped: Ray is not installed")
        return {"skipped": "Ray is not importable here (pip install 'nlp-service[ray]')"}
    tasks: dict[str, Any] = {}
    for task in cfg.tasks:
        runs = {size: run_job(cfg, state, task, size, engine) for size in SIZE_LABELS}
        small, full = runs["small"], runs["full"]
        tasks[task] = {
            "model": cfg.models[task],
            **runs,
            "peak_rss_ratio_full_to_small": ratio(full.get("peak_rss_mb"), small.get("peak_rss_mb"), 3),
            "processes_peak_pss_ratio_full_to_small": ratio(full.get("processes_peak_pss_mb"),
                                                            small.get("processes_peak_pss_mb"), 3),
        }
    out: dict[str, Any] = {"engine": engine, "batch_size": cfg.batch_size}
    if engine == "ray":
        out.update(num_actors=cfg.ray_actors, num_cpus_per_actor=cfg.ray_cpus_per_actor,
                   note="rows_per_s (the summary's) counts from Ray started to the output written: the actors' "
                   "model loading is in it, Ray's start-up and the driver's model check are not; rows_per_s_wall "
                   "counts everything")
    else:
        out["note"] = ("rows_per_s (the summary's) counts from the first row read to the last part written; "
                       "rows_per_s_wall counts the whole process (imports, model loading)")
    out["tasks"] = tasks
    return out


# ---- the HTTP loop -------------------------------------------------------------------------------


def _http_loop(cfg: Config, state: State, server: Any, task: str) -> dict[str, Any]:
    import httpx

    texts = state.texts
    rows = [texts[i % len(texts)] for i in range(cfg.http_rows)]
    batches = [rows[i:i + cfg.batch_size] for i in range(0, len(rows), cfg.batch_size)]
    route, model, key = ROUTES[task], cfg.models[task], ANSWER_LISTS[task]
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    ok_rows = 0
    with httpx.Client(base_url=server.base, timeout=120.0) as client:
        for batch in batches[:cfg.http_warmup] or batches[:1]:  # untimed; also checks the answers
            r = client.post(route, json={"model": model, "texts": batch})
            if r.status_code != 200 or len(r.json().get(key, ())) != len(batch):
                raise RuntimeError(f"{route}: warm-up request answered {r.status_code}: {r.text[:300]}")
        before = cpu_snapshot()
        server_cpu, client_cpu = process_cpu_s(server.pid), own_cpu_s()
        t0 = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            r = client.post(route, json={"model": model, "texts": batch})
            answer = r.json()  # a real client reads the results
            latencies.append(time.perf_counter() - t)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                ok_rows += len(answer.get(key, ()))
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = process_cpu_s(server.pid) - server_cpu, own_cpu_s() - client_cpu
    after = cpu_snapshot()
    result = {
        "route": route, "model": model, "rows": len(rows), "requests": len(batches), "texts_per_request":
        cfg.batch_size, "rows_ok": ok_rows, "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(wall, 2), "rows_per_s": round(ok_rows / wall, 1) if wall > 0 else None,
        "latency_per_request": latency_stats(latencies, ("p50", "p99", "mean", "max"), digits=2),
        "server_cpu_cores": round(server_cpu / wall, 2) if wall > 0 else None,
        "client_cpu_cores": round(client_cpu / wall, 2) if wall > 0 else None,
        "client_cpu_ms_per_request": round(client_cpu * 1000 / len(batches), 2),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / len(batches), 2),
        "interference": interference(before, after, wall, extra_own_s=server_cpu),
    }
    if ok_rows != len(rows):
        state.failures.append(f"http {task}: {ok_rows} of {len(rows)} rows answered 200")
    log(f"  {route}: {len(rows):,} rows in {len(batches):,} requests, {wall:.1f}s, {result['rows_per_s']:,.0f} "
        f"rows/s, p50 {result['latency_per_request']['p50_ms']} ms, statuses {result['status_codes']}, server "
        f"{result['server_cpu_cores']} cores, client {result['client_cpu_cores']} cores")
    return result


# Server configurations the loop runs against: as shipped, and with the batch job's one thread a forward pass
# (on a CPU the job's default for a classifier; the sentiment BiLSTM runs faster on one thread than on two).
HTTP_VARIANTS: dict[str, dict[str, str]] = {"shipped": {}, "torch_threads_1": {"NLP_TORCH_THREADS": "1"}}


def _http_server(cfg: Config, state: State, variant: str, extra_env: dict[str, str]) -> dict[str, Any]:
    names = [cfg.models[t] for t in cfg.tasks]
    env = {"NLP_MODELS": json.dumps(names), "NLP_BATCH_MAX_SIZE": str(cfg.batch_size), **extra_env}
    if cfg.batch_size > _setting_default("max_texts"):
        env["NLP_MAX_TEXTS"] = str(cfg.batch_size)
    serve_args = ["--models-dir", str(cfg.models_dir)]
    log(f"  starting nlp-service serve with {', '.join(names)} ({variant}: {extra_env or 'no extra settings'})")
    log_path = state.scratch / "logs" / f"server-{variant}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with serving(serve_args, log_path, env=env, expect_models=names, timeout_s=cfg.ready_timeout,
                 cli=nlp_service_cli()) as server:
        log(f"  ready on {server.base} after {server.ready_s:.1f}s")
        cpu0 = process_cpu_s(server.pid)
        tasks = {task: _http_loop(cfg, state, server, task) for task in cfg.tasks}
        server_cpu = process_cpu_s(server.pid) - cpu0
        peak = _proc_kb(f"/proc/{server.pid}/status", "VmHWM:")
        alive = server.proc.poll() is None
    return {
        "server": {"command": f"nlp-service serve {shlex.join(serve_args)}", "env": env,
                   "startup_to_ready_s": round(server.ready_s, 2), "peak_rss_mb": round(peak / 1024, 1),
                   "alive_at_end": alive},
        "server_cpu_s_section": round(server_cpu, 2),
        "tasks": tasks,
    }


def bench_http(cfg: Config, state: State) -> dict[str, Any]:
    variants = {name: _http_server(cfg, state, name, env) for name, env in HTTP_VARIANTS.items()}
    # The goal is judged against the faster server for each task.
    best = {task: max(variants, key=lambda v: variants[v]["tasks"][task].get("rows_per_s") or 0.0)
            for task in cfg.tasks}
    return {
        "client": "one httpx.Client, one kept-alive connection, one request at a time; answers parsed, "
                  "nothing written",
        "note": "tasks: each task's faster server configuration (variant); variants: every configuration",
        "tasks": {task: {"variant": v, **variants[v]["tasks"][task]} for task, v in best.items()},
        "variants": variants,
    }


# ---- the comparison and the goals ----------------------------------------------------------------


def _get(doc: dict[str, Any], *keys: str) -> Any:
    value: Any = doc
    for k in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(k)
    return value


def _goal(value: float | None, target: str, met: Callable[[float], bool], **extra: Any) -> dict[str, Any]:
    return {**extra, "ratio": value, "target": target, "met": None if value is None else met(value)}


def comparison(cfg: Config, doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in cfg.tasks:
        local = _get(doc, "local", "tasks", task, "full") or {}
        ray = _get(doc, "ray", "tasks", task, "full") or {}
        http = _get(doc, "http", "tasks", task) or {}
        small = _get(doc, "local", "tasks", task, "small") or {}
        ray_small = _get(doc, "ray", "tasks", task, "small") or {}
        out[task] = {
            "rows_per_s": {"local": local.get("rows_per_s"), "local_wall": local.get("rows_per_s_wall"),
                           "ray": ray.get("rows_per_s"), "ray_wall": ray.get("rows_per_s_wall"),
                           "http_loop": http.get("rows_per_s"), "http_variant": http.get("variant"),
                           "http_loop_shipped": _get(doc, "http", "variants", "shipped", "tasks", task,
                                                     "rows_per_s")},
            "local_vs_http": _goal(ratio(local.get("rows_per_s"), http.get("rows_per_s")),
                                   f">= {LOCAL_VS_HTTP_MIN:g}", lambda r: r >= LOCAL_VS_HTTP_MIN,
                                   wall_ratio=ratio(local.get("rows_per_s_wall"), http.get("rows_per_s")),
                                   ratio_vs_shipped_server=ratio(local.get("rows_per_s"), _get(
                                       doc, "http", "variants", "shipped", "tasks", task, "rows_per_s")),
                                   note=f"the job's own rows/s on {cfg.rows:,} rows (model loading excluded) vs the "
                                   f"HTTP loop's on {cfg.http_rows:,} (server start excluded); wall_ratio: the "
                                   "job's whole process"),
            "ray_vs_local": _goal(ratio(ray.get("rows_per_s_wall"), local.get("rows_per_s_wall")),
                                  f">= {RAY_VS_LOCAL_MIN:g}", lambda r: r >= RAY_VS_LOCAL_MIN,
                                  job_ratio=ratio(ray.get("rows_per_s"), local.get("rows_per_s")),
                                  note="whole processes on the full file (Ray's start-up and every model load "
                                  "included); job_ratio: the summaries' rows/s"),
            "memory_flat": _goal(ratio(local.get("peak_rss_mb"), small.get("peak_rss_mb"), 3),
                                 f"<= {MEMORY_FLAT_MAX:g}", lambda r: r <= MEMORY_FLAT_MAX,
                                 small_rows=cfg.small_rows, full_rows=cfg.rows,
                                 peak_rss_small_mb=small.get("peak_rss_mb"), peak_rss_full_mb=local.get("peak_rss_mb"),
                                 note="the local job's ru_maxrss"),
            "ray_memory_flat": _goal(ratio(ray.get("processes_peak_pss_mb"), ray_small.get("processes_peak_pss_mb"), 3),
                                     f"<= {MEMORY_FLAT_MAX:g}", lambda r: r <= MEMORY_FLAT_MAX,
                                     peak_pss_small_mb=ray_small.get("processes_peak_pss_mb"),
                                     peak_pss_full_mb=ray.get("processes_peak_pss_mb"),
                                     note="all the Ray job's processes (its session), PSS summed, sampled"),
        }
    out["ray_note"] = RAY_NOTE
    return out


# ---- main ----------------------------------------------------------------------------------------


def other_benchmarks() -> list[str]:
    """Command lines of other benchmark processes running now (they would skew the timings)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if "benchmarks/" in cmd and "python" in cmd:
                found.append(f"{proc.name}: {cmd[:200]}")
    return found


def _missing_models(cfg: Config) -> list[str]:
    return [cfg.models[t] for t in cfg.tasks if not (cfg.models_dir / cfg.models[t] / "manifest.json").is_file()]


def main(argv: Sequence[str] | None = None) -> int:
    use_library()  # Settings' defaults are read before parsing, from the working tree
    cfg = parse_args(argv)
    missing = _missing_models(cfg)
    if missing:
        print(f"batch.py: model(s) {', '.join(missing)} not in {cfg.models_dir}: run `make defaults` (or "
              f"`nlp-service defaults --only {missing[0]}`) first, or name another --models-dir", file=sys.stderr)
        return 2
    os.chdir(REPO_ROOT)
    with scratch_folder("nlp-bench-batch-", cfg.workdir, cfg.keep_workdir) as scratch:
        library = snapshot_library(scratch) if cfg.snapshot else {"snapshot": None, **git_state()}
        doc = new_document("benchmarks/batch.py", cfg, library=library,
                           machine={**machine_info(("nlp-service", "torch", "pyarrow", "ray", "numpy", "httpx",
                                                    "fastapi", "uvicorn"), keep_missing=True),
                                    "other_benchmarks_running_at_start": other_benchmarks()})
        if doc["machine"]["other_benchmarks_running_at_start"]:
            log("WARNING: other benchmarks are running; timings will be skewed")
        texts = short_texts(cfg.words)
        log(f"writing {cfg.rows:,} rows ({len(texts):,} distinct texts of <= {cfg.words} words) to {scratch}")
        inputs, doc["data"] = write_inputs(cfg, scratch, texts)
        log(f"  done in {doc['data']['write_seconds']}s: "
            + ", ".join(f"{f['name']} {f['bytes'] / MIB:.1f} MiB" for f in doc["data"]["files"].values()))
        state = State(scratch, texts, inputs)
        runners = {"local": functools.partial(bench_engine, "local", cfg, state),
                   "ray": functools.partial(bench_engine, "ray", cfg, state),
                   "http": functools.partial(bench_http, cfg, state)}
        failed = run_sections(doc, runners, cfg.sections)
    doc["comparison"] = comparison(cfg, doc)
    doc["goals"] = {f"{g}_{task}": doc["comparison"][task][g]["met"] for task in cfg.tasks
                    for g in ("local_vs_http", "ray_vs_local", "memory_flat", "ray_memory_flat")}
    doc["failures"] = state.failures
    for task in cfg.tasks:
        c = doc["comparison"][task]
        log(f"{task}: rows/s {c['rows_per_s']}; local/http {c['local_vs_http']['ratio']}, ray/local "
            f"{c['ray_vs_local']['ratio']}, memory full/small {c['memory_flat']['ratio']}")
    write_document(doc, cfg.out)
    return 1 if failed or state.failures else 0


if __name__ == "__main__":
    sys.exit(main())
