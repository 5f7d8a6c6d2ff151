"""The downloader against a real local HTTP server that honours Range requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from nlp_service.data import DataError, download
from nlp_service.vectors import fetch_cc_es

PAYLOAD = bytes(range(256)) * 1200  # 307,200 bytes


class _RangeHandler(BaseHTTPRequestHandler):
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _RangeHandler.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cc.es.300.bin.gz"
    httpd.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_and_resume(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin.gz"
    (tmp_path / "file.bin.gz.part").write_bytes(PAYLOAD[:100_000])
    download(server, dest)
    assert dest.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges == ["bytes=100000-"]
    assert not (tmp_path / "file.bin.gz.part").exists()


def test_size_check_keeps_partial_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError, match="incomplete: 307200 of 999999 bytes"):
        download(server, dest, expected_size=999_999)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == len(PAYLOAD)


def test_offline_fails_fast_with_instructions(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        fetch_cc_es(tmp_path, "vec", url=f"http://127.0.0.1:{_closed_port()}/cc.es.300.vec.gz", timeout=3)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "cannot download" in message and "cc.es.300.vec.gz" in message
    assert f"{tmp_path / 'cc.es.300.vec.gz'}" in message and "nlp-service convert" in message


def test_fetch_uses_the_official_address_and_skips_existing(tmp_path: Path, server: str) -> None:
    from nlp_service.vectors import CC_ES

    assert CC_ES["bin"]["url"].endswith("/fasttext/vectors-crawl/cc.es.300.bin.gz")
    path = fetch_cc_es(tmp_path, "bin", url=server)
    assert path.name == "cc.es.300.bin.gz" and path.read_bytes() == PAYLOAD
    assert fetch_cc_es(tmp_path, "bin", url="http://127.0.0.1:1/never-called") == path
    with pytest.raises(DataError, match="format must be one of"):
        fetch_cc_es(tmp_path, "zip")
