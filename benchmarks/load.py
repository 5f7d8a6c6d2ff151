#!/usr/bin/env python
"""Load test of a real ``nlp-service serve``: many concurrent clients per kind of request, and a mixed
run in which a light request measures its own latency while heavy ones saturate the server.

One server process (``nlp-service serve --models-dir DIR --model ...``, default settings, or
``--server-env NLP_...=...``) serves every section. Each section runs ``--clients`` concurrent clients
(``httpx.AsyncClient``, one kept-alive connection each, see --client-pool), each looping
requests back to back for ``--warmup-seconds`` (not recorded) and then ``--seconds`` (recorded). At the
end clients send nothing new and the requests in flight finish (``drain_s``). A request that takes
longer than ``--request-timeout`` (in total, streams included) counts as a timeout.

Sections (``--sections``, default all), clients spread evenly over the section's routes:

* ``vectors``         /v1/similarity, /v1/neighbors (topn 10)          model: --vectors-model
* ``classification``  /v1/sentiment, /v1/classify (one short text)      --sentiment-model, --classifier-model
* ``translation``     /v1/translate (one short sentence, es->en, beam 4) --translator-model
* ``generation``      /v1/generate, /v1/generate_stream, /v1/completions, /v1/completions with stream
                      (short Spanish prompts, 32 new tokens)              --generator-model
* ``mixed``           half the clients on /v1/translate, half on the four generation routes, while a
                      separate process (one blocking http.client connection, not slowed by this process's
                      event loop) sends a light /v1/similarity every --probe-interval-ms and measures it;
                      the same probe first runs on the idle server for comparison. Goal: p99 < 100 ms.

Per route and per section: requests (started in the window), throughput (200s completed in the window,
per second), p50/p99 latency of the 200s (and time to first event of streams), counts by status, timeouts, connection
errors, errors inside 200 streams; per section the server's RSS (the process and its children, psutil
or /proc VmRSS, sampled every --rss-interval: start, peak, end), the server's and the clients' CPU and
the client event loop's lag (the clients run in this process on the same cores: a high lag inflates
the latencies measured here). Goals (reported, never asserted): zero 5xx, zero timeouts, 429 when
saturated, the mixed section's light-request p99 < 100 ms.

A section whose model is not in --models-dir is skipped and says so (``nlp-service defaults``
builds the default models). One JSON document on stdout (or --out); progress on stderr.

    .venv/bin/python benchmarks/load.py --out bench-out/load.json 2> bench-out/load.log    # ~2.5 min
    .venv/bin/python benchmarks/load.py --seconds 3 --clients 32 --sections vectors,mixed   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import itertools
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _harness import (
    HOST,
    REPO_ROOT,
    Server,
    add_scratch_args,
    chosen_sections,
    git_state,
    log,
    machine_info,
    new_document,
    nlp_service_cli,
    own_cpu_s,
    process_cpu_s,
    run_sections,
    scratch_folder,
    serving,
    snapshot_library,
    use_library,
    write_document,
)

SECTIONS = ("vectors", "classification", "translation", "generation", "mixed")
MODEL_KINDS = ("vectors", "classifier", "sentiment", "translator", "generator")
SECTION_MODELS = {"vectors": ("vectors",), "classification": ("sentiment", "classifier"),
                  "translation": ("translator",), "generation": ("generator",),
                  "mixed": ("translator", "generator", "vectors")}

# Realistic, short Spanish requests.
WORDS = ("casa", "perro", "gato", "rey", "reina", "hombre", "mujer", "ciudad", "agua", "tiempo", "día", "noche",
         "libro", "mundo", "vida", "tierra", "cielo", "mar", "padre", "madre", "hijo", "pueblo", "camino", "fuego",
         "amor", "guerra", "paz", "sol", "luna", "casa", "archivo", "programa", "sistema", "usuario", "nombre",
         "palabra", "corazón", "mano", "ojo", "voz")
REVIEWS = (
    "Una película preciosa y emocionante.",
    "Aburrida de principio a fin.",
    "Los actores están muy bien, pero el guion es flojo.",
    "No la recomiendo, es una pérdida de tiempo.",
    "Me reí muchísimo, la volvería a ver.",
    "La fotografía es espectacular y la música también.",
    "Demasiado larga y previsible.",
    "Un final sorprendente que no esperaba.",
    "Los efectos especiales no salvan una historia sin alma.",
    "Una obra maestra del cine español.",
    "Ni fu ni fa, se deja ver.",
    "El peor estreno del año.",
)
SENTENCES = (
    "Pulse el icono para más información.",
    "Y dijo Dios: Sea la luz.",
    "El archivo no se puede abrir.",
    "Guarde el documento antes de salir.",
    "La casa está cerca del río.",
    "Mañana vamos a la ciudad.",
    "Seleccione una celda de la tabla.",
    "El hombre camina por el camino.",
    "No hay ninguna impresora instalada.",
    "Y vio Dios que la luz era buena.",
    "Haga clic en Aceptar para continuar.",
    "Mi hermano vive en Madrid.",
)
PROMPTS = (
    "En el principio",
    "El hombre que",
    "La ciudad estaba",
    "Había una vez un",
    "El programa permite",
    "Cuando llegó la noche",
    "Para instalar el paquete",
    "Mi madre siempre decía que",
)
MAX_NEW_TOKENS = 32
TRANSLATION_BEAM = 4


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class Config:
    sections: list[str]
    seconds: float
    warmup_seconds: float
    clients: int
    client_pool: str
    retry_after: str
    request_timeout: float
    models_dir: Path
    models: dict[str, str]
    probe_interval_ms: float
    rss_interval: float
    server_env: dict[str, str]
    ready_timeout: float
    out: Path | None
    workdir: Path | None
    keep_workdir: bool
    snapshot: bool


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _default_models() -> dict[str, str]:
    """The service's default model names (Settings.default_*_model), read without the environment."""
    from nlp_service.config import Settings

    return {kind: Settings.model_fields[f"default_{kind}_model"].default for kind in MODEL_KINDS}


def parse_args(argv: Sequence[str] | None = None) -> Config:
    defaults = _default_models()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    p.add_argument("--seconds", type=float, default=20.0, help="recorded duration of each section")
    p.add_argument("--warmup-seconds", type=float, default=2.0,
                   help="unrecorded load before each section's recorded part (connections, caches, batches)")
    p.add_argument("--clients", type=int, default=256, help="concurrent clients (and httpx pool size) per section")
    p.add_argument("--retry-after", choices=("honor", "ignore"), default="honor",
                   help="honor: a client answered 429 waits its Retry-After seconds before its next request, as "
                   "the openai and TGI clients do; ignore: it retries at once (a flood of refusals, which costs the "
                   "server CPU that the accepted requests needed)")
    p.add_argument("--client-pool", choices=("per-client", "shared"), default="per-client",
                   help="per-client: one httpx.AsyncClient (pool of 1) per client; shared: one httpx.AsyncClient "
                   "with a pool of --clients connections. httpcore scans its whole pool on every request, so a "
                   "shared pool of 256 costs ~10x the client CPU per request and itself becomes the bottleneck "
                   "on a small machine (measured on 2 cores, /v1/similarity: 68 vs 551 req/s)")
    p.add_argument("--request-timeout", type=float, default=30.0,
                   help="a request taking longer than this in total (streams included) counts as a timeout")
    p.add_argument("--models-dir", type=Path, default=Path(os.environ.get("NLP_MODELS_DIR", "models")),
                   help="folder of the models (NLP_MODELS_DIR or ./models)")
    for kind in MODEL_KINDS:
        p.add_argument(f"--{kind}-model", default=defaults[kind], help=f"the {kind} model to load and name in requests")
    p.add_argument("--probe-interval-ms", type=float, default=20.0,
                   help="mixed section: pause between the light /v1/similarity probe's requests")
    p.add_argument("--rss-interval", type=float, default=0.25, help="seconds between samples of the server's RSS")
    p.add_argument("--server-env", action="append", default=[], metavar="NLP_X=VALUE",
                   help="environment of the server (repeat), e.g. NLP_GENERATION_MAX_QUEUE=64")
    p.add_argument("--ready-timeout", type=float, default=300.0, help="longest wait for the server's /ready")
    p.add_argument("--out", type=Path, help="write the JSON document to this file instead of stdout")
    p.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                   help="import the working tree's nlp_service instead of a copy taken at the start")
    add_scratch_args(p, keeps="the server log")
    a = p.parse_args(argv)
    sections = chosen_sections(p, a.sections, SECTIONS)
    if not sections:
        p.error("no section chosen")
    if a.clients < 1 or a.seconds <= 0 or a.request_timeout <= 0:
        p.error("--clients, --seconds and --request-timeout must be positive")
    env: dict[str, str] = {}
    for item in a.server_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--server-env wants KEY=VALUE, got {item!r}")
        env[key] = value
    return Config(sections=sections, seconds=a.seconds, warmup_seconds=max(0.0, a.warmup_seconds),
                  clients=a.clients, client_pool=a.client_pool, retry_after=a.retry_after,
                  request_timeout=a.request_timeout,
                  models_dir=a.models_dir.resolve(),
                  models={kind: getattr(a, f"{kind}_model") for kind in MODEL_KINDS},
                  probe_interval_ms=a.probe_interval_ms, rss_interval=a.rss_interval, server_env=env,
                  ready_timeout=a.ready_timeout, out=a.out.resolve() if a.out else None,
                  workdir=a.workdir.resolve() if a.workdir else None, keep_workdir=a.keep_workdir,
                  snapshot=a.snapshot)


# ---- the server's memory -------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, from /proc/<pid>/task/*/children."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _vmrss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process and its descendants (psutil if installed, else /proc VmRSS); None once
    it is gone."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            proc = psutil.Process(pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return total
        except psutil.Error:
            return None
    if not Path(f"/proc/{pid}").exists():
        return None
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _vmrss_bytes(p)
        todo += _children(p)
    return total


class RssSampler:
    """A thread sampling a process's RSS every ``interval`` seconds while the server runs."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (perf_counter, bytes)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        try:
            import psutil  # noqa: F401

            self.source = "psutil (process and children)"
        except ImportError:
            self.source = "/proc/<pid>/status VmRSS (process and children)"

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> int | None:
        value = rss_bytes(self.pid)
        if value is not None:
            with self._lock:
                self.samples.append((time.perf_counter(), value))
        return value

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Start (last sample at or before ``start``, else the first after), peak and end of the window, MiB."""
        with self._lock:
            samples = list(self.samples)
        inside = [(t, v) for t, v in samples if start <= t <= end]
        before = [(t, v) for t, v in samples if t < start]
        if before:
            inside.insert(0, before[-1])
        if not inside:
            return {"samples": 0}
        mib = 1024.0**2
        peak_t, peak = max(inside, key=lambda s: s[1])
        return {"start_mb": round(inside[0][1] / mib, 1), "peak_mb": round(peak / mib, 1),
                "end_mb": round(inside[-1][1] / mib, 1),
                "peak_at_s": round(max(0.0, peak_t - start), 1), "samples": len(inside)}


# ---- requests ------------------------------------------------------------------------------------


@dataclass
class RouteSpec:
    """One kind of request of a section: the route, its payloads (cycled) and how to read an answer."""

    name: str
    route: str
    payloads: list[dict[str, Any]]
    stream: bool = False
    tokens: Callable[[dict[str, Any]], int] | None = None  # generated tokens of a JSON answer


@dataclass
class RouteStats:
    latencies: list[float] = field(default_factory=list)  # seconds, 200s only
    first_event: list[float] = field(default_factory=list)  # streams: seconds to the first event (200s)
    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    connection_errors: Counter[str] = field(default_factory=Counter)
    stream_errors: int = 0  # 200 streams whose last event is an error
    ok_in_window: int = 0  # 200 answers completed inside the recorded window (started in it or before)
    tokens_in_window: int = 0  # generated tokens (non-streaming) or stream events, completed in the window
    warmup_requests: int = 0
    error_samples: dict[int, str] = field(default_factory=dict)  # first body of each non-200 status

    def merge(self, other: RouteStats) -> None:
        self.latencies += other.latencies
        self.first_event += other.first_event
        self.statuses.update(other.statuses)
        self.timeouts += other.timeouts
        self.connection_errors.update(other.connection_errors)
        self.stream_errors += other.stream_errors
        self.ok_in_window += other.ok_in_window
        self.tokens_in_window += other.tokens_in_window
        self.warmup_requests += other.warmup_requests
        for k, v in other.error_samples.items():
            self.error_samples.setdefault(k, v)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.timeouts + sum(self.connection_errors.values())


def _pct(values: Sequence[float]) -> dict[str, Any] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    return {"n": len(arr), "p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p99_ms": round(float(np.percentile(arr, 99)), 2), "mean_ms": round(float(arr.mean()), 2),
            "max_ms": round(float(arr.max()), 2)}


def _stats_json(s: RouteStats, window: float, stream: bool | None, tokens_label: str | None) -> dict[str, Any]:
    five = sum(v for k, v in s.statuses.items() if k >= 500)
    out: dict[str, Any] = {
        "requests": s.requests,
        "throughput_rps": round(s.ok_in_window / window, 1),
        "latency_200": _pct(s.latencies),
        "status_codes": {str(k): v for k, v in sorted(s.statuses.items())},
        "5xx": five,
        "429": s.statuses.get(429, 0),
        "timeouts": s.timeouts,
        "connection_errors": dict(s.connection_errors),
    }
    if stream is not False:
        out["first_event_200"] = _pct(s.first_event)
        out["stream_errors"] = s.stream_errors
    if tokens_label:
        out[tokens_label] = round(s.tokens_in_window / window, 1)
    if s.error_samples:
        out["error_samples"] = {str(k): v for k, v in sorted(s.error_samples.items())}
    return out


async def _one(client: Any, spec: RouteSpec, payload: dict[str, Any], timeout: float
               ) -> tuple[str, int | None, float, float | None, int, bool, str | None, float | None]:
    """Send one request: (outcome 'ok'|'timeout'|<exception name>, status, seconds, seconds to the first
    stream event, tokens or stream events, stream ended in an error event, body of a non-200, a 429's
    Retry-After seconds)."""
    import httpx

    t = time.perf_counter()
    first: float | None = None
    tokens, stream_error, body = 0, False, None
    status: int | None = None
    retry_after: float | None = None
    try:
        async with asyncio.timeout(timeout):
            if spec.stream:
                async with client.stream("POST", spec.route, json=payload) as resp:
                    status = resp.status_code
                    retry_after = _retry_after(resp)
                    if status != 200:
                        body = (await resp.aread()).decode(errors="replace")
                    else:
                        async for line in resp.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            if first is None:
                                first = time.perf_counter() - t
                            data = line[5:].strip()
                            if data == "[DONE]":
                                continue
                            if '"error"' in data:
                                with contextlib.suppress(ValueError):
                                    stream_error = stream_error or "error" in json.loads(data)
                            tokens += 1
            else:
                resp = await client.post(spec.route, json=payload)
                status = resp.status_code
                retry_after = _retry_after(resp)
                if status != 200:
                    body = resp.text
                elif spec.tokens is not None:
                    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                        tokens = spec.tokens(resp.json())
    except (TimeoutError, httpx.TimeoutException):
        return "timeout", status, time.perf_counter() - t, first, tokens, stream_error, body, None
    except (httpx.HTTPError, OSError) as exc:
        return type(exc).__name__, status, time.perf_counter() - t, first, tokens, stream_error, body, None
    return "ok", status, time.perf_counter() - t, first, tokens, stream_error, body, retry_after


def _retry_after(resp: Any) -> float | None:
    """Seconds of a 429's ``Retry-After`` (delta-seconds form), else None."""
    if resp.status_code != 429:
        return None
    try:
        return float(resp.headers.get("retry-after", ""))
    except ValueError:
        return None


@dataclass
class LoadResult:
    stats: dict[str, RouteStats]
    window_s: float
    drain_s: float
    t_start: float  # perf_counter at the start of the warm-up
    t_record: float  # ... of the recorded window
    t_end: float  # ... once every client stopped
    client_cpu_s: float
    server_cpu_s: float
    loop_lag: list[float]


async def run_load(server: Server, specs: Sequence[RouteSpec], clients: int, seconds: float, warmup: float,
                   timeout: float, pool: str = "per-client",
                   on_record: Callable[[float], None] | None = None, honor_retry_after: bool = True) -> LoadResult:
    """``clients`` tasks, client i on ``specs[i % len(specs)]``, each sending back to back: for ``warmup``
    seconds unrecorded, then ``seconds`` recorded; requests in flight at the end finish (drain).
    ``pool``: ``per-client`` (an ``httpx.AsyncClient`` each) or ``shared`` (one, with a pool of ``clients``).
    ``on_record`` is called (in a thread) with the recorded window's start time when it begins."""
    import httpx

    stats = {s.name: RouteStats() for s in specs}
    t0 = t_record = t_stop = 0.0  # set once the clients exist
    lags: list[float] = []
    stop_lag = asyncio.Event()

    async def lag_monitor() -> None:
        while not stop_lag.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            if t >= t_record:
                lags.append(time.perf_counter() - t - 0.05)

    async def worker(i: int, client: Any) -> None:
        spec = specs[i % len(specs)]
        st = stats[spec.name]
        payloads = itertools.cycle(spec.payloads[i % len(spec.payloads):] + spec.payloads[:i % len(spec.payloads)])
        while (start := time.perf_counter()) < t_stop:
            outcome, status, secs, first, tokens, stream_error, body, retry_after = await _one(
                client, spec, next(payloads), timeout)
            if honor_retry_after and retry_after is not None:
                # as a real client does; never past the end of the run
                await asyncio.sleep(max(0.0, min(retry_after, t_stop - time.perf_counter())))
            end = start + secs
            if outcome == "ok" and status == 200 and t_record <= end <= t_stop:  # throughput: answers completed
                st.ok_in_window += 1  # in the window, whenever they started
                st.tokens_in_window += tokens
            if start < t_record:
                st.warmup_requests += 1
                continue
            if outcome == "timeout":
                st.timeouts += 1
            elif outcome != "ok":
                st.connection_errors[outcome] += 1
            else:
                assert status is not None
                st.statuses[status] += 1
                if status == 200:
                    st.latencies.append(secs)
                    if first is not None:
                        st.first_event.append(first)
                    st.stream_errors += stream_error
                elif body is not None and status not in st.error_samples:
                    st.error_samples[status] = body[:300]

    async def recorder() -> tuple[float, float]:
        await asyncio.sleep(max(0.0, t_record - time.perf_counter()))
        if on_record is not None:
            await asyncio.to_thread(on_record, t_record)
        return process_cpu_s(server.pid), own_cpu_s()

    timeouts = httpx.Timeout(timeout, pool=timeout)
    tls = ssl.create_default_context()  # unused over http://, but each client would build one (~45 ms)
    async with contextlib.AsyncExitStack() as stack:
        def new_client(size: int) -> Any:
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            return httpx.AsyncClient(base_url=server.base, limits=limits, timeout=timeouts, verify=tls)

        if pool == "shared":
            shared = await stack.enter_async_context(new_client(clients))
            http_clients = [shared] * clients
        else:
            http_clients = [await stack.enter_async_context(new_client(1)) for _ in range(clients)]
        t0 = time.perf_counter()
        t_record = t0 + warmup
        t_stop = t_record + seconds
        lag_task = asyncio.create_task(lag_monitor())
        rec_task = asyncio.create_task(recorder())
        await asyncio.gather(*(worker(i, http_clients[i]) for i in range(clients)))
        t_end = time.perf_counter()
        server_cpu, client_cpu = process_cpu_s(server.pid), own_cpu_s()
        stop_lag.set()
        await lag_task
        server_cpu0, client_cpu0 = await rec_task
    return LoadResult(stats, seconds, max(0.0, t_end - t_stop), t0, t_record, t_end, client_cpu - client_cpu0,
                      server_cpu - server_cpu0, lags)


# ---- the light probe (a separate process) --------------------------------------------------------


def probe_main(argv: Sequence[str]) -> None:
    """Child process: until wall-clock ``end_at``, from ``start_at``, POST the payloads (cycled) one at a
    time on one kept-alive connection, pausing ``interval_ms`` between them. Prints JSON on stdout."""
    port, route, start_at, end_at, interval_ms, timeout, payloads_json = argv
    payloads = json.loads(payloads_json)
    interval, tmo = float(interval_ms) / 1000.0, float(timeout)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    timeouts = 0
    conn = http.client.HTTPConnection(HOST, int(port), timeout=tmo)
    time.sleep(max(0.0, float(start_at) - time.time()))
    for payload in itertools.cycle(payloads):
        if time.time() >= float(end_at):
            break
        body = json.dumps(payload).encode()
        t = time.perf_counter()
        try:
            conn.request("POST", route, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            statuses[resp.status] += 1
            if resp.status == 200:
                latencies.append(time.perf_counter() - t)
        except TimeoutError:
            timeouts += 1
            conn.close()
        except (OSError, http.client.HTTPException) as exc:
            errors[type(exc).__name__] += 1
            conn.close()
        time.sleep(interval)
    conn.close()
    print(json.dumps({"latencies": latencies, "statuses": statuses, "timeouts": timeouts, "errors": errors}))


def start_probe(server: Server, route: str, payloads: list[dict[str, Any]], start_at: float, seconds: float,
                cfg: Config) -> subprocess.Popen[str]:
    code = "import sys, load; load.probe_main(sys.argv[1:])"
    args = [str(server.port), route, repr(start_at), repr(start_at + seconds), str(cfg.probe_interval_ms),
            str(cfg.request_timeout), json.dumps(payloads)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)


def probe_result(proc: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0:
        return {"error": f"probe exited with {proc.returncode}"}
    data = json.loads(out)
    statuses = {str(k): v for k, v in sorted(data["statuses"].items(), key=lambda kv: int(kv[0]))}
    return {"requests": sum(data["statuses"].values()) + data["timeouts"] + sum(data["errors"].values()),
            "latency_200": _pct(data["latencies"]), "status_codes": statuses, "timeouts": data["timeouts"],
            "connection_errors": data["errors"]}


# ---- sections ------------------------------------------------------------------------------------


@dataclass
class State:
    server: Server
    rss: RssSampler
    available: dict[str, bool]  # model kind -> loaded
    words: list[str] | None = None  # vocabulary words that answer 200


def _model_check(cfg: Config, state: State, section: str) -> str | None:
    missing = [cfg.models[k] for k in SECTION_MODELS[section] if not state.available[k]]
    if missing:
        return (f"model(s) {', '.join(dict.fromkeys(missing))} not in {cfg.models_dir} (build the defaults with "
                "`nlp-service defaults --models-dir DIR`, or name others with --<kind>-model)")
    return None


def _vocabulary_words(cfg: Config, state: State) -> list[str]:
    """Those of WORDS that the vectors model knows (a /v1/neighbors that answers 200)."""
    import httpx

    if state.words is None:
        found = []
        with httpx.Client(base_url=state.server.base, timeout=30) as client:
            for w in dict.fromkeys(WORDS):
                r = client.post("/v1/neighbors", json={"model": cfg.models["vectors"], "word": w, "topn": 1})
                if r.status_code == 200:
                    found.append(w)
        if len(found) < 2:
            raise RuntimeError(f"the vectors model knows fewer than 2 of the probe words: {found}")
        state.words = found
    return state.words


def _similarity_payloads(cfg: Config, words: list[str]) -> list[dict[str, Any]]:
    return [{"model": cfg.models["vectors"], "word1": a, "word2": b}
            for a, b in zip(words, words[1:] + words[:1], strict=True)]


def _vectors_specs(cfg: Config, state: State) -> list[RouteSpec]:
    words = _vocabulary_words(cfg, state)
    return [RouteSpec("similarity", "/v1/similarity", _similarity_payloads(cfg, words)),
            RouteSpec("neighbors", "/v1/neighbors", [{"model": cfg.models["vectors"], "word": w, "topn": 10}
                                                     for w in words])]


def _classification_specs(cfg: Config) -> list[RouteSpec]:
    return [RouteSpec("sentiment", "/v1/sentiment", [{"model": cfg.models["sentiment"], "texts": [t]}
                                                     for t in REVIEWS]),
            RouteSpec("classify", "/v1/classify", [{"model": cfg.models["classifier"], "texts": [t]}
                                                   for t in REVIEWS])]


def _translation_specs(cfg: Config) -> list[RouteSpec]:
    return [RouteSpec("translate", "/v1/translate", [{"model": cfg.models["translator"], "texts": [s], "source": "es",
                                                      "target": "en", "beam_size": TRANSLATION_BEAM}
                                                     for s in SENTENCES])]


def _generation_specs(cfg: Config) -> list[RouteSpec]:
    m = cfg.models["generator"]
    tgi = [{"model": m, "inputs": p, "parameters": {"max_new_tokens": MAX_NEW_TOKENS, "details": True}}
           for p in PROMPTS]
    oai = [{"model": m, "prompt": p, "max_tokens": MAX_NEW_TOKENS} for p in PROMPTS]
    return [
        RouteSpec("generate", "/v1/generate", tgi, tokens=lambda j: int(j["details"]["generated_tokens"])),
        RouteSpec("generate_stream", "/v1/generate_stream", [{**p, "parameters": {"max_new_tokens": MAX_NEW_TOKENS}}
                                                             for p in tgi], stream=True),
        RouteSpec("completions", "/v1/completions", oai, tokens=lambda j: int(j["usage"]["completion_tokens"])),
        RouteSpec("completions_stream", "/v1/completions", [{**p, "stream": True} for p in oai], stream=True),
    ]


def _preflight(server: Server, specs: Sequence[RouteSpec]) -> None:
    """One request per route: a first payload not answered 200 is a mistake of this script (or of the
    server), and the section fails saying so rather than measuring errors."""
    import httpx

    bad = {}
    with httpx.Client(base_url=server.base, timeout=120) as client:
        for spec in specs:
            r = client.post(spec.route, json=spec.payloads[0])
            if r.status_code != 200:
                bad[spec.name] = f"{r.status_code}: {r.text[:300]}"
    if bad:
        raise RuntimeError(f"preflight request failed: {bad}")


def _goals(total: dict[str, Any]) -> dict[str, Any]:
    return {
        "zero_5xx": {"count": total["5xx"], "met": total["5xx"] == 0},
        "zero_timeouts": {"count": total["timeouts"], "met": total["timeouts"] == 0},
        "429_when_saturated": {
            "count": total["429"], "met": total["429"] > 0,
            "note": "overload should be answered with 429 rather than queued into timeouts; false may also "
                    "mean these clients did not saturate the server (see the p99 and the client CPU)"},
    }


def _check_alive(server: Server) -> None:
    if server.proc.poll() is not None:
        tail = server.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the server exited (code {server.proc.returncode}); log tail:\n{tail}")


def _load_section(cfg: Config, state: State, specs: Sequence[RouteSpec], clients_note: str,
                  on_record: Callable[[float], None] | None = None) -> tuple[dict[str, Any], LoadResult]:
    _check_alive(state.server)
    unique = list({s.name: s for s in specs}.values())  # a route may appear more than once in the spread
    _preflight(state.server, unique)
    per_route_clients = Counter(specs[i % len(specs)].name for i in range(cfg.clients))
    log(f"  {cfg.clients} clients over {', '.join(s.name for s in unique)}: {cfg.warmup_seconds:g}s warm-up + "
        f"{cfg.seconds:g}s")
    res = asyncio.run(run_load(state.server, specs, cfg.clients, cfg.seconds, cfg.warmup_seconds,
                               cfg.request_timeout, cfg.client_pool, on_record,
                               honor_retry_after=cfg.retry_after == "honor"))
    state.rss.sample()
    routes: dict[str, Any] = {}
    total = RouteStats()
    for spec in unique:
        s = res.stats[spec.name]
        total.merge(s)
        label = ("stream_events_per_s" if spec.stream else "generated_tokens_per_s" if spec.tokens else None)
        routes[spec.name] = {"route": spec.route, "stream": spec.stream, "clients": per_route_clients[spec.name],
                             **_stats_json(s, res.window_s, spec.stream, label)}
    total_json = _stats_json(total, res.window_s, None if any(s.stream for s in unique) else False, None)
    done = sum(s.requests for s in res.stats.values())
    out = {
        "clients": cfg.clients, "client_pool": cfg.client_pool, "retry_after": cfg.retry_after,
        "client_spread": clients_note,
        "recorded_seconds": cfg.seconds,
        "warmup_seconds": cfg.warmup_seconds, "warmup_requests": total.warmup_requests,
        "drain_s": round(res.drain_s, 2),
        "routes": routes,
        "total": total_json,
        "server_rss": state.rss.summary(res.t_start, time.perf_counter()),
        "server_rss_recorded_window": state.rss.summary(res.t_record, res.t_end),
        "server_cpu_cores": round(res.server_cpu_s / (res.t_end - res.t_record), 2),
        "client_cpu_cores": round(res.client_cpu_s / (res.t_end - res.t_record), 2),
        "client_cpu_ms_per_request": round(res.client_cpu_s * 1000 / done, 2) if done else None,
        "client_event_loop_lag": _pct(res.loop_lag),
        "goals": _goals(total_json),
    }
    for name, r in routes.items():
        lat = r["latency_200"] or {}
        log(f"  {name}: {r['requests']} requests, {r['throughput_rps']} ok/s, p50 {lat.get('p50_ms')} ms, "
            f"p99 {lat.get('p99_ms')} ms, statuses {r['status_codes']}, timeouts {r['timeouts']}, "
            f"connection errors {r['connection_errors']}")
    rss = out["server_rss"]
    log(f"  server RSS {rss.get('start_mb')} -> peak {rss.get('peak_mb')} -> {rss.get('end_mb')} MiB; "
        f"client loop lag p99 {(out['client_event_loop_lag'] or {}).get('p99_ms')} ms")
    return out, res


def _kind_section(section: str, make_specs: Callable[[Config, State], list[RouteSpec]]
                  ) -> Callable[[Config, State], dict[str, Any]]:
    def run(cfg: Config, state: State) -> dict[str, Any]:
        skipped = _model_check(cfg, state, section)
        if skipped:
            log(f"  skipped: {skipped}")
            return {"skipped": skipped}
        out, _ = _load_section(cfg, state, make_specs(cfg, state), "client i sends route i mod routes")
        return {"models": {k: cfg.models[k] for k in SECTION_MODELS[section]}, **out}

    return run


def bench_mixed(cfg: Config, state: State) -> dict[str, Any]:
    skipped = _model_check(cfg, state, "mixed")
    if skipped:
        log(f"  skipped: {skipped}")
        return {"skipped": skipped}
    probe_payloads = _similarity_payloads(cfg, _vocabulary_words(cfg, state))
    idle_s = min(5.0, cfg.seconds)
    log(f"  light /v1/similarity probe on the idle server, {idle_s:g}s")
    idle = probe_result(start_probe(state.server, "/v1/similarity", probe_payloads, time.time() + 0.5, idle_s, cfg),
                        idle_s)
    gen = _generation_specs(cfg)
    translate = _translation_specs(cfg)[0]
    # Even clients translate, odd ones cycle over the four generation routes.
    specs = [translate, gen[0], translate, gen[1], translate, gen[2], translate, gen[3]]
    probe: dict[str, subprocess.Popen[str]] = {}

    def start(t_record: float) -> None:
        # perf_counter -> wall clock for the child
        probe["proc"] = start_probe(state.server, "/v1/similarity", probe_payloads,
                                    time.time() + (t_record - time.perf_counter()), cfg.seconds, cfg)

    out, _ = _load_section(cfg, state, specs, "half the clients on /v1/translate, half over the four generation "
                           "routes", on_record=start)
    under = probe_result(probe["proc"], cfg.seconds) if "proc" in probe else {"error": "probe not started"}
    p99 = (under.get("latency_200") or {}).get("p99_ms")
    log(f"  light /v1/similarity p50 {(idle.get('latency_200') or {}).get('p50_ms')} ms idle, under load: "
        f"p50 {(under.get('latency_200') or {}).get('p50_ms')} ms, p99 {p99} ms, statuses {under.get('status_codes')}, "
        f"timeouts {under.get('timeouts')}")
    out["goals"]["light_similarity_p99_under_100ms"] = {"p99_ms": p99, "met": p99 is not None and p99 < 100.0}
    return {"models": {k: cfg.models[k] for k in SECTION_MODELS["mixed"]},
            "light_probe": {"route": "/v1/similarity", "client": "a separate process, one blocking http.client "
                            f"connection, one request at a time, {cfg.probe_interval_ms:g} ms apart",
                            "idle_server": idle, "under_load": under},
            **out}


_RUNNERS: dict[str, Callable[[Config, State], dict[str, Any]]] = {
    "vectors": _kind_section("vectors", _vectors_specs),
    "classification": _kind_section("classification", lambda cfg, _: _classification_specs(cfg)),
    "translation": _kind_section("translation", lambda cfg, _: _translation_specs(cfg)),
    "generation": _kind_section("generation", lambda cfg, _: _generation_specs(cfg)),
    "mixed": bench_mixed,
}


# ---- main ----------------------------------------------------------------------------------------


def _with_server_cpu(run: Callable[[Config, State], dict[str, Any]], cfg: Config, state: State) -> dict[str, Any]:
    """The section's result with the CPU seconds the server used during all of it."""
    before = process_cpu_s(state.server.pid)
    result = run(cfg, state)
    result["server_cpu_s_section"] = round(process_cpu_s(state.server.pid) - before, 2)
    return result


def _server_out_of_interference(doc: dict[str, Any], sections: Sequence[str]) -> None:
    """``interference.other_processes_cores`` counts the server (a child not yet waited for) as another
    process: add the figure without it."""
    for name in sections:
        sec = doc.get(name)
        if not isinstance(sec, dict) or "interference" not in sec or "server_cpu_s_section" not in sec:
            continue
        wall = sec.get("section_seconds") or 0
        other = sec["interference"]["other_processes_cores"]
        sec["interference"]["other_processes_cores_without_server"] = (
            round(max(0.0, other - sec["server_cpu_s_section"] / wall), 2) if wall > 0 else None)


def _server_log_summary(path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    bad = [line for line in lines if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", line)]
    return {"lines": len(lines), "error_lines": len(bad), "first_error_lines": [b[:300] for b in bad[:5]]}


def main(argv: Sequence[str] | None = None) -> int:
    # Settings' default model names are read before parsing, from the working tree.
    use_library()
    cfg = parse_args(argv)
    os.chdir(REPO_ROOT)
    with scratch_folder("nlp-bench-load-", cfg.workdir, cfg.keep_workdir) as scratch:
        library = snapshot_library(scratch) if cfg.snapshot else {"snapshot": None, **git_state()}
        doc = new_document("benchmarks/load.py", cfg, library=library,
                           machine=machine_info(("nlp-service", "torch", "fastapi", "uvicorn", "httpx", "psutil"),
                                                keep_missing=True))
        wanted = {kind for s in cfg.sections for kind in SECTION_MODELS[s]}
        available = {k: k in wanted and (cfg.models_dir / cfg.models[k] / "manifest.json").is_file()
                     for k in MODEL_KINDS}
        names = sorted({cfg.models[k] for k, ok in available.items() if ok})
        failed = False
        if not names:
            log(f"none of the models of these sections is in {cfg.models_dir}")
            for s in cfg.sections:
                doc[s] = {"skipped": f"no model in {cfg.models_dir} (`nlp-service defaults` builds the defaults)"}
        else:
            serve_args = ["--models-dir", str(cfg.models_dir), *itertools.chain.from_iterable(("--model", n)
                                                                                                for n in names)]
            log(f"starting nlp-service serve with {', '.join(names)}")
            log_path = scratch / "server.log"
            with serving(serve_args, log_path, env=cfg.server_env, expect_models=names, timeout_s=cfg.ready_timeout,
                         cli=nlp_service_cli()) as server, RssSampler(server.pid, cfg.rss_interval) as rss:
                rss.sample()
                log(f"ready on {server.base} after {server.ready_s:.1f}s, RSS "
                    f"{(rss_bytes(server.pid) or 0) / 1024**2:.0f} MiB")
                doc["server"] = {"command": f"nlp-service serve {' '.join(serve_args)}", "env": cfg.server_env,
                                 "models": names, "startup_to_ready_s": round(server.ready_s, 2),
                                 "rss_source": rss.source,
                                 "rss_after_ready_mb": round((rss_bytes(server.pid) or 0) / 1024**2, 1)}
                state = State(server, rss, available)
                runners = {name: functools.partial(_with_server_cpu, run, cfg, state) for name, run in _RUNNERS.items()}
                failed = run_sections(doc, runners, cfg.sections)
                _server_out_of_interference(doc, cfg.sections)
                doc["server"]["rss_end_mb"] = round((rss_bytes(server.pid) or 0) / 1024**2, 1)
                doc["server"]["rss_peak_mb"] = rss.summary(0.0, time.perf_counter()).get("peak_mb")
                doc["server"]["exit_code_during_run"] = server.proc.poll()
            doc["server"]["log"] = _server_log_summary(log_path)
    doc["goals"] = {f"{s}.{g}": doc[s]["goals"][g]["met"] for s in cfg.sections
                    if isinstance(doc.get(s), dict) and "goals" in doc[s] for g in doc[s]["goals"]}
    write_document(doc, cfg.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
