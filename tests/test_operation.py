"""Operating the service, over real uvicorn servers and real sockets: work abandoned by its client or past its
deadline is cancelled (the generation engine stops), a 500 keeps the keep-alive connection, connections
that never finish sending a request are closed, every response and log line carries the request id, logs
as JSON lines (``nlp-service serve`` itself)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from nlp_service.api import create_app
from nlp_service.api.server import uvicorn_options
from nlp_service.config import Settings

from .helpers import assert_error, save_tiny_generator

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
GEN = "gen-long"
MAX_NEW = 1000  # tokens a request asks for: about 4 s for 64 of them on 2 cores


@contextmanager
def serving(app: FastAPI, settings: Settings, **options: Any) -> Iterator[str]:
    """``app`` under a real uvicorn server (in a thread, on a free port) with the options ``nlp-service serve``
    gives it (keep-alive, the read-timeout protocol), logging left as the tests have it; yields its URL."""
    config = uvicorn.Config(app, **{**uvicorn_options(settings), "host": HOST, "port": 0, "log_config": None,
                                    "timeout_graceful_shutdown": 5, **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url + "/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "models not loaded in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def long_gen_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As tests/test_generate_api.py's tiny GPT-2 (a real byte-level BPE trained on Spanish proverbs, random
    weights), with room for 1,024 positions: long generations. Its end-of-text token's embedding is zero, so
    that greedy decoding practically never picks it and every request runs its ``max_new_tokens``."""
    folder = tmp_path_factory.mktemp("long-gen-models")
    save_tiny_generator(folder, GEN, positions=1024, never_eos=True)
    return folder


def gen_settings(models_dir: Path, tmp: Path, **overrides: Any) -> Settings:
    return Settings(models_dir=models_dir, cache_dir=tmp / "cache", device="cpu", default_generator_model=GEN,
                    generation_max_batch=64, generation_max_queue=64, generation_max_input_tokens=40,
                    generation_max_total_tokens=1024, **overrides)


def engine_stats(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/v1/models/{GEN}", timeout=10).json()["engine"]


def settled_tokens(url: str, quiet_s: float = 0.5, timeout: float = 60.0) -> int:
    """The engine's token count once it has stopped growing (unchanged for ``quiet_s``)."""
    deadline = time.monotonic() + timeout
    last = engine_stats(url)["tokens"]
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = engine_stats(url)["tokens"]
        if now == last:
            return now
        last = now
    pytest.fail("the engine never stopped generating")


def raw_request(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def test_requests_abandoned_by_their_clients_stop_generating(long_gen_models: Path, tmp_path: Path) -> None:
    """64 non-streaming generations of 1,000 tokens each, their connections closed after 0.5 s: the engine
    stops far before 64,000 tokens (without cancellation, each ran to its end), and serves the next request."""
    settings = gen_settings(long_gen_models, tmp_path)
    n = 64
    with serving(create_app(settings), settings) as url:
        wait_ready(url)
        sockets = [socket.create_connection((HOST, int(url.rsplit(":", 1)[1]))) for _ in range(n)]
        request = raw_request("/v1/generate", {"inputs": "Más vale", "parameters": {"max_new_tokens": MAX_NEW}})
        for s in sockets:
            s.sendall(request)
        time.sleep(0.5)
        for s in sockets:
            s.close()
        tokens = settled_tokens(url)
        stats = engine_stats(url)
        assert 0 < stats["requests"] <= n and stats["rejected"] == 0
        assert 0 < tokens < n * MAX_NEW // 2, tokens
        r = httpx.post(url + "/v1/generate", json={"inputs": "Más vale", "parameters": {
            "max_new_tokens": 5, "details": True}}, timeout=30)
        assert r.status_code == 200 and r.json()["details"]["generated_tokens"] == 5


def test_request_timeout_cancels_the_work_with_504_or_cuts_the_stream(long_gen_models: Path, tmp_path: Path) -> None:
    settings = gen_settings(long_gen_models, tmp_path, request_timeout_s=0.3)
    body = {"inputs": "Más vale", "parameters": {"max_new_tokens": MAX_NEW}}
    with serving(create_app(settings), settings) as url:
        wait_ready(url)
        started = time.monotonic()
        r = httpx.post(url + "/v1/generate", json=body, headers={"X-Request-ID": "slow-1"}, timeout=30)
        assert time.monotonic() - started < 5
        err = assert_error(r, 504, "timeout", "0.3 s", "NLP_REQUEST_TIMEOUT_S")
        assert err["details"] == {"timeout_s": 0.3} and r.headers["x-request-id"] == "slow-1"
        # A stream past its deadline ends in an error for the client, never as a text that looks whole.
        events = 0
        with pytest.raises(httpx.RemoteProtocolError), \
                httpx.stream("POST", url + "/v1/generate_stream", json=body, timeout=30) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                events += line.startswith("data:")
        assert events > 0
        tokens = settled_tokens(url)
        assert tokens < 2 * MAX_NEW  # neither request ran to its end
        r = httpx.post(url + "/v1/generate", json={"inputs": "Más vale", "parameters": {"max_new_tokens": 3}},
                       timeout=30)
        assert r.status_code == 200, r.text


def _boom_app(tmp_path: Path) -> tuple[FastAPI, Settings]:
    settings = Settings(models_dir=tmp_path / "models", cache_dir=tmp_path / "cache", device="cpu")
    (tmp_path / "models").mkdir(exist_ok=True)
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug")

    async def boom_after_start() -> Any:
        from fastapi.responses import StreamingResponse

        async def chunks() -> Any:
            yield b"part"
            raise RuntimeError("a bug mid-stream")

        return StreamingResponse(chunks())

    app.add_api_route("/boom", boom)
    app.add_api_route("/boom-stream", boom_after_start)
    return app, settings


def test_an_unexpected_error_is_a_500_that_keeps_the_connection(tmp_path: Path) -> None:
    app, settings = _boom_app(tmp_path)
    with serving(app, settings) as url, httpx.Client(base_url=url, timeout=10) as client:
        r = client.get("/boom", headers={"X-Request-ID": "boom-1"})
        assert_error(r, 500, "internal_error")
        assert r.headers["x-request-id"] == "boom-1" and r.headers.get("connection") != "close"
        port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
        again = client.get("/health")
        assert again.status_code == 200
        assert again.extensions["network_stream"].get_extra_info("client_addr")[1] == port  # the same connection
        # Once the response has begun, the connection is closed: the client sees the body cut short.
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/boom-stream")
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
def test_connections_that_do_not_send_a_whole_request_in_time_are_closed(tmp_path: Path,
                                                                          implementation: str) -> None:
    from nlp_service.api.server import http_protocol

    pytest.importorskip(implementation)
    app, settings = _boom_app(tmp_path)
    settings = settings.model_copy(update={"read_timeout_s": 1.0})
    with serving(app, settings, http=http_protocol(1.0, implementation)) as url:
        port = int(url.rsplit(":", 1)[1])

        def closed_after(data: bytes) -> float:
            with socket.create_connection((HOST, port)) as s:
                s.settimeout(10)
                started = time.monotonic()
                if data:
                    s.sendall(data)
                assert s.recv(1024) == b""  # closed by the server, nothing answered
                return time.monotonic() - started

        assert 0.8 < closed_after(b"GET /health HTTP/1.1\r\nHost: x\r\nAccept: */") < 3  # half a header
        half_body = b"POST /v1/similarity HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"word1\""
        assert 0.8 < closed_after(half_body) < 3
        assert 0.8 < closed_after(b"") < 3  # a connection that sends nothing
        # A whole request is not hurried, and an idle keep-alive connection is the keep-alive's business.
        with httpx.Client(base_url=url, timeout=10) as client:
            first = client.get("/health")
            time.sleep(1.5)
            second = client.get("/health")
            assert first.status_code == second.status_code == 200
            ports = {r.extensions["network_stream"].get_extra_info("client_addr")[1] for r in (first, second)}
            assert len(ports) == 1


def test_request_ids_are_kept_when_sane_else_made() -> None:
    from nlp_service.api._logging import request_id_from  # white-box: the rule itself

    assert request_id_from([(b"x-request-id", b"abc.DEF_1-2")]) == "abc.DEF_1-2"
    for bad in (b"", b"a b", b"x" * 129, b"\xc3\xb1", b"a\r\nSet-Cookie: x"):
        made = request_id_from([(b"x-request-id", bad)])
        assert len(made) == 32 and int(made, 16) >= 0
    assert request_id_from([]) != request_id_from([])


@contextmanager
def serve_subprocess(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m nlp_service serve`` with these NLP_* variables; yields its URL and process."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    (tmp_path / "models").mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NLP_")}
    full_env.update({"NLP_CACHE_DIR": str(tmp_path / "cache"), **env})
    cmd = [sys.executable, "-m", "nlp_service", "serve", "--host", HOST, "--port", str(port),
           "--models-dir", str(tmp_path / "models")]
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=tmp_path, env=full_env)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "err").read_text()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "err").read_text()
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_logs_json_lines_with_request_ids_and_applies_its_timeouts(tmp_path: Path) -> None:
    env = {"NLP_LOG_FORMAT": "json", "NLP_API_KEYS": "s3cret-key", "NLP_READ_TIMEOUT_S": "1",
           "NLP_KEEP_ALIVE_S": "2"}
    with serve_subprocess(tmp_path, env) as (url, _):
        assert httpx.get(url + "/health", headers={"X-Request-ID": "probe.1"}).headers["x-request-id"] == "probe.1"
        refused = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong-key"})
        assert refused.status_code == 401
        rid = refused.headers["x-request-id"]
        with socket.create_connection((HOST, int(url.rsplit(":", 1)[1]))) as s:
            s.settimeout(10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert s.recv(1024) == b""
            assert time.monotonic() - started < 3
        time.sleep(0.3)  # the log lines are written
    lines = [json.loads(line) for name in ("out", "err")
             for line in (tmp_path / name).read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in lines)
    access = [e for e in lines if e["logger"] == "uvicorn.access"]
    assert {"request_id": "probe.1", "method": "GET", "path": "/health", "status": 200}.items() <= \
        next(e for e in access if e["request_id"] == "probe.1").items()
    mine = [e for e in lines if e["request_id"] == rid]
    assert {e["logger"] for e in mine} == {"nlp_service.api", "uvicorn.access"}  # the refusal and the access line
    assert any("no complete request within 1 s" in e["message"] for e in lines)
    assert not any("s3cret-key" in json.dumps(e) or "wrong-key" in json.dumps(e) for e in lines)  # keys never logged
    assert any(e["logger"] == "uvicorn.error" and e["request_id"] is None for e in lines)  # start-up lines


def test_text_log_lines_carry_the_request_id_inside_requests() -> None:
    """The text format (the default) of ``serve``'s logging configuration, applied in a fresh interpreter."""
    code = ("import logging.config\n"
            "from nlp_service.api._logging import REQUEST_ID\n"  # white-box: the id a request sets
            "from nlp_service.api.server import uvicorn_options\n"
            "from nlp_service.config import Settings\n"
            "logging.config.dictConfig(uvicorn_options(Settings())['log_config'])\n"
            "logging.getLogger('nlp_service.api').info('outside')\n"
            "REQUEST_ID.set('rid-7')\n"
            "logging.getLogger('nlp_service.api').info('inside')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stderr.splitlines()[-2:] == ["INFO:     outside", "INFO:     [rid-7] inside"]
