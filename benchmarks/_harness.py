"""What the benchmark scripts share: progress lines, summary statistics, the CPU that other processes
use meanwhile, the machine, the library copy that children import, a real ``nlp-service serve`` and
load-testing clients for it, and the run of a benchmark's sections.

The scripts run as ``python benchmarks/<name>.py``: Python puts ``benchmarks/`` first on ``sys.path``,
so they import this file as ``_harness``. Nothing here imports the library (``nlp_service``) at import
time: a script first says where it comes from (:func:`use_library`, :func:`snapshot_library`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY_PACKAGES = ("nlp_service",)
HOST = "127.0.0.1"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SINGLE_THREAD_BLAS = dict.fromkeys(THREAD_ENV_VARS, "1")
"""Environment that limits OpenMP / MKL / OpenBLAS (and so torch's intra-op pool) to one thread."""

_START = time.perf_counter()
_library_root = REPO_ROOT


# ---- progress ------------------------------------------------------------------------------------


def elapsed() -> float:
    """Seconds since the benchmark started (this module's import)."""
    return time.perf_counter() - _START


def log(msg: str) -> None:
    """A progress line on stderr, stamped with the seconds since the start."""
    print(f"[{elapsed():8.1f}s] {msg}", file=sys.stderr, flush=True)


# ---- statistics ----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


_LATENCY_STATS: dict[str, Callable[[np.ndarray], Any]] = {
    "median": np.median,
    "p50": np.median,
    "p99": lambda a: np.percentile(a, 99),
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
}


def latency_stats(seconds: Sequence[float], fields: Sequence[str] = ("median", "p99", "mean", "min", "max"),
                  digits: int = 4) -> dict[str, Any]:
    """``n`` and ``<field>_ms`` for each of ``fields`` (median/p50, p99, mean, min, max) of the latencies."""
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"n": len(arr), **{f"{f}_ms": round(float(_LATENCY_STATS[f](arr)), digits) for f in fields}}


def ratio(num: float | None, den: float | None, digits: int = 2) -> float | None:
    """``num / den`` rounded, or None when either is missing or ``den`` is 0."""
    if num is None or den is None or den == 0:
        return None
    return round(num / den, digits)


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """Per-query ratios of two interleaved timings: median and the 25th-75th percentile range."""
    r = np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    return {"median": round(float(np.median(r)), 3), "p25": round(float(np.percentile(r, 25)), 3),
            "p75": round(float(np.percentile(r, 75)), 3)}


# ---- CPU used by others --------------------------------------------------------------------------


def cpu_snapshot() -> dict[str, float]:
    """Machine-wide busy and steal CPU seconds (/proc/stat) and this process's own, children included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    t = os.times()
    return {"busy": (sum(fields[:8]) - idle - fields[7]) / tick, "steal": fields[7] / tick,
            "own": t.user + t.system + t.children_user + t.children_system}


def interference(before: dict[str, float], after: dict[str, float], wall: float,
                 extra_own_s: float = 0.0) -> dict[str, float]:
    """Average cores used by other processes (and stolen by the hypervisor) during ``wall`` seconds.

    ``extra_own_s``: CPU of our own children not yet waited for (a server), counted as ours.
    Approximate: a child's CPU counts as ours only once it has been waited for.
    """
    other = (after["busy"] - before["busy"]) - (after["own"] - before["own"]) - extra_own_s
    return {"other_processes_cores": round(max(0.0, other) / wall, 2) if wall > 0 else 0.0,
            "steal_cores": round((after["steal"] - before["steal"]) / wall, 2) if wall > 0 else 0.0,
            "load_average_1min_end": round(os.getloadavg()[0], 2)}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (threads included), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (threads included, children not)."""
    t = os.times()
    return t.user + t.system


# ---- the machine ---------------------------------------------------------------------------------


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo, if it says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def memory_gb() -> float | None:
    """Total memory (GiB, /proc/meminfo), if it says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def package_versions(names: Iterable[str], keep_missing: bool = False) -> dict[str, str | None]:
    """Installed versions of these distributions; one not installed is left out (or None with ``keep_missing``)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if keep_missing:
                versions[name] = None
    return versions


def machine_info(packages: Iterable[str], keep_missing: bool = False) -> dict[str, Any]:
    """CPUs, memory, platform, package versions, load and thread settings at the start of a run."""
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(packages, keep_missing),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "thread_env": {k: os.environ.get(k) for k in THREAD_ENV_VARS},
    }


# ---- the library this run measures ---------------------------------------------------------------


def use_library(root: Path = REPO_ROOT) -> None:
    """Import the library from ``root`` here (call it before the first import of ``nlp_service``) and in
    every child started with :func:`child_env` or :func:`start_server`."""
    global _library_root
    _library_root = root
    if sys.path[:1] != [str(root)]:
        sys.path.insert(0, str(root))


def library_root() -> Path:
    """The folder the library is imported from: the repository or a snapshot of it."""
    return _library_root


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a subprocess: this one's, plus ``extra``, importing the same library copy."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_library_root), os.environ.get("PYTHONPATH")) if p)
    return env


def nlp_service_cli() -> list[str]:
    """The command line tool: the virtualenv's ``nlp-service`` next to this Python, else ``python -m``."""
    exe = Path(sys.executable).parent / "nlp-service"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "nlp_service"]


def git_state() -> dict[str, Any]:
    """The checked-out commit and how many library files differ from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", *LIBRARY_PACKAGES).splitlines()
    return {"git_head": git("rev-parse", "--short", "HEAD") or None, "uncommitted_library_files": len(changed)}


def snapshot_library(scratch: Path) -> dict[str, Any]:
    """Copy the library into ``scratch/src`` and import it from there (:func:`use_library`).

    The working tree may be edited while a run of many minutes goes on; with a snapshot every section,
    subprocess and server of the run uses the same code. Returns what was copied.
    """
    dest = scratch / "src"
    digest = hashlib.sha256()
    for pkg in LIBRARY_PACKAGES:
        shutil.copytree(REPO_ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for f in sorted((dest / pkg).rglob("*.py")):
            digest.update(str(f.relative_to(dest)).encode() + b"\0" + f.read_bytes())
    use_library(dest)
    return {"snapshot": str(dest), "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sha256_of_py_files": digest.hexdigest()[:16], **git_state()}


# ---- a real server -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ServerNotReady(RuntimeError):
    """The server exited, did not answer /ready in time, or did not load the models asked for."""


@dataclass
class Server:
    """A running ``nlp-service serve`` on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    port: int
    ready_s: float  # from the start of the process to the first 200 from /ready
    ready: dict[str, Any]  # that /ready answer
    log_path: Path  # its stdout and stderr

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Terminate it (kill after 15 s) and wait for it."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(serve_args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 expect_models: Collection[str] = (), timeout_s: float = 180.0, poll_s: float = 0.05,
                 cli: Sequence[str] | None = None) -> Server:
    """Start ``<cli> serve --host 127.0.0.1 --port <free> <serve_args>`` (default cli: ``python -m
    nlp_service``) with :func:`child_env` plus ``env``, its output in ``log_path``, and wait until
    /ready answers 200 with none of its models failed and ``expect_models`` loaded.

    Raises :class:`ServerNotReady` (with the log's tail) after stopping it when that does not happen.
    """
    import httpx

    port = free_port()
    cmd = [*(cli or (sys.executable, "-m", "nlp_service")), "serve", "--host", HOST, "--port", str(port),
           *serve_args]
    with open(log_path, "wb") as out:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=_library_root, stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(env))
    server = Server(proc, port, 0.0, {}, log_path)
    ready: dict[str, Any] | None = None
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and proc.poll() is None:
        try:
            resp = httpx.get(f"{server.base}/ready", timeout=2.0)
            if resp.status_code == 200:
                server.ready_s = time.perf_counter() - t_start
                ready = resp.json()
                break
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    if ready is None or ready.get("failed") or set(expect_models) - set(ready.get("models", [])):
        server.stop()  # /ready says 200 even when a model failed to load
        tail = log_path.read_text(errors="replace")[-3000:]
        raise ServerNotReady(f"server not ready or models missing (exit code {proc.poll()}, /ready {ready}); "
                             f"log tail:\n{tail}")
    server.ready = ready
    return server


@contextlib.contextmanager
def serving(serve_args: Sequence[str], log_path: Path, **kwargs: Any) -> Iterator[Server]:
    """:func:`start_server`, stopped when the block ends."""
    server = start_server(serve_args, log_path, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# ---- load tests ----------------------------------------------------------------------------------


async def light_post(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], port: int, route: str,
                     payload: dict[str, Any]) -> int:
    """One POST on a kept-alive connection, minimal HTTP/1.1: a fraction of httpx's CPU per request.
    Returns the status code."""
    reader, writer = conn
    body = json.dumps(payload).encode()
    head = (f"POST {route} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


@dataclass
class LoadRun:
    """What the clients saw in the timed part of a load test, and the CPU it cost."""

    latencies: list[float]  # seconds, one per answered request
    statuses: Counter[int]
    failures: Counter[str]  # transport errors by exception name
    planned: int  # timed payloads there were
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float  # this process: the clients (and whatever else it did meanwhile)
    probe_before: Any = None  # probe() right before and right after the timed part
    probe_after: Any = None

    @property
    def stopped_at_time_cap(self) -> bool:
        return len(self.latencies) + sum(self.failures.values()) < self.planned

    @property
    def status_codes(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.statuses.items())}

    def cpu_ms_per_request(self, digits: int) -> dict[str, float | None]:
        n = len(self.latencies)
        return {"server_cpu_ms_per_request": round(self.server_cpu_s * 1000 / n, digits) if n else None,
                "client_cpu_ms_per_request": round(self.client_cpu_s * 1000 / n, digits) if n else None}


async def load_test(server: Server, route: str, payloads: Sequence[dict[str, Any]], *, warmup: int,
                    concurrency: int, client_kind: str, max_seconds: float,
                    probe: Callable[[], Any] | None = None) -> LoadRun:
    """POST the payloads to ``route`` from ``concurrency`` tasks sharing them, each on its own kept-alive
    connection: the first ``warmup`` untimed, then the rest timed; each part stops sending after
    ``max_seconds``.

    ``client_kind``: ``httpx`` (one ``httpx.AsyncClient``, the reference client) or ``light``
    (:func:`light_post`). ``probe`` (run in a thread) is called right before and after the timed part.
    """
    import httpx

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=120.0) as client:

        async def worker(items: Iterator[dict[str, Any]], record: bool, deadline: float) -> None:
            conn = await asyncio.open_connection(HOST, server.port) if client_kind == "light" else None
            try:
                for payload in items:  # one shared iterator: each task takes the next payload
                    if time.perf_counter() > deadline:
                        return
                    t = time.perf_counter()
                    try:
                        if conn is not None:
                            status = await light_post(conn, server.port, route, payload)
                        else:
                            status = (await client.post(route, json=payload)).status_code
                    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        if record:
                            failures[type(exc).__name__] += 1
                        if conn is not None:  # the connection state is unknown: start a new one
                            conn[1].close()
                            conn = await asyncio.open_connection(HOST, server.port)
                        continue
                    if record:
                        latencies.append(time.perf_counter() - t)
                        statuses[status] += 1
            finally:
                if conn is not None:
                    conn[1].close()

        async def run(items: Sequence[dict[str, Any]], record: bool) -> None:
            shared = iter(items)
            deadline = time.perf_counter() + max_seconds
            await asyncio.gather(*(worker(shared, record, deadline) for _ in range(concurrency)))

        await run(payloads[:warmup], False)
        before = await asyncio.to_thread(probe) if probe is not None else None
        server_cpu, client_cpu = process_cpu_s(server.pid), own_cpu_s()
        t0 = time.perf_counter()
        await run(payloads[warmup:], True)
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = process_cpu_s(server.pid) - server_cpu, own_cpu_s() - client_cpu
        after = await asyncio.to_thread(probe) if probe is not None else None
    return LoadRun(latencies, statuses, failures, max(0, len(payloads) - warmup), wall, server_cpu, client_cpu,
                   before, after)


# ---- a benchmark run -----------------------------------------------------------------------------


def benchmark_parser(description: str, sections: Sequence[str], quick_help: str) -> argparse.ArgumentParser:
    """A parser with ``--quick`` (smaller sizes, see :func:`sizes`) and ``--sections`` (see
    :func:`chosen_sections`; default: all of ``sections``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--sections", default=",".join(sections),
                        help=f"comma-separated subset of: {', '.join(sections)}")
    return parser


def add_load_test_args(parser: argparse.ArgumentParser, requests_help: str, max_seconds_help: str) -> None:
    """``--http-requests`` (no default: give it one with :func:`sizes`), ``--http-concurrency`` and
    ``--http-max-seconds``: the options of :func:`load_test`."""
    parser.add_argument("--http-requests", type=int, help=requests_help)
    parser.add_argument("--http-concurrency", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--http-max-seconds", type=float, default=120.0, help=max_seconds_help)


def add_scratch_args(parser: argparse.ArgumentParser, keeps: str = "") -> None:
    """``--workdir`` and ``--keep-workdir`` (see :func:`scratch_folder`)."""
    parser.add_argument("--workdir", type=Path, help="scratch folder (a fresh sub-folder is made and removed) "
                        "[a new folder under /tmp]")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="do not delete the scratch folder" + (f" ({keeps})" if keeps else ""))


def chosen_sections(parser: argparse.ArgumentParser, text: str, known: Sequence[str]) -> list[str]:
    """The comma-separated ``--sections`` value as a list; an unknown name is a usage error."""
    sections = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(known))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    return sections


def sizes(args: argparse.Namespace, defaults: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Each option of ``defaults`` (name -> (full default, ``--quick`` default)) as given, else its default."""
    return {k: getattr(args, k) if getattr(args, k) is not None else v[1 if args.quick else 0]
            for k, v in defaults.items()}


@contextlib.contextmanager
def scratch_folder(prefix: str, parent: Path | None, keep: bool) -> Iterator[Path]:
    """A fresh folder under ``parent`` (default /tmp), removed at the end unless ``keep``."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or "/tmp"))
    try:
        yield scratch
    finally:
        if keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def new_document(script: str, config: Any, **blocks: Any) -> dict[str, Any]:
    """The head of a result document: the script, when, its configuration (a dataclass) and ``blocks``."""
    return {"benchmark": script, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}, **blocks}


def run_sections(doc: dict[str, Any], runners: Mapping[str, Callable[[], dict[str, Any]]],
                 chosen: Collection[str]) -> bool:
    """Run the chosen sections in the order of ``runners``, each result in ``doc[name]`` with its
    ``section_seconds`` and ``interference``; one that raises is recorded as ``{"error": ...}`` and the
    next one runs. Returns whether any failed."""
    failed = False
    for name, runner in runners.items():
        if name not in chosen:
            continue
        t = time.perf_counter()
        before = cpu_snapshot()
        log(f"== {name}")
        try:
            result = runner()
        except Exception as exc:
            failed = True
            traceback.print_exc(file=sys.stderr)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        wall = time.perf_counter() - t
        result["section_seconds"] = round(wall, 1)
        result["interference"] = interference(before, cpu_snapshot(), wall)
        doc[name] = result
        gc.collect()
        log(f"== {name} done in {result['section_seconds']}s")
    return failed


def finish_document(doc: dict[str, Any]) -> str:
    """Stamp ``finished_at`` and ``wall_seconds`` on the document; return it as JSON text."""
    doc["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["wall_seconds"] = round(elapsed(), 1)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_document(doc: dict[str, Any], out: Path | None) -> None:
    """Finish the document (:func:`finish_document`) and write it to ``out``, or to stdout without one."""
    text = finish_document(doc)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        log(f"wrote {out}")
    else:
        sys.stdout.write(text)
