"""Access control over real uvicorn servers: API keys (the official ``openai`` client sends them), key files
made with ``nlp-service hash-key``, a bad key file stops the start, the per-key rate limit, CORS."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nlp_service.api import create_app
from nlp_service.cli import app as cli
from nlp_service.config import Settings

from .helpers import assert_error
from .test_operation import serving

pytestmark = pytest.mark.slow


def settings_for(tmp_path: Path, **values: object) -> Settings:
    (tmp_path / "models").mkdir(exist_ok=True)
    return Settings(models_dir=tmp_path / "models", cache_dir=tmp_path / "cache", device="cpu", **values)


def hash_key(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, ["hash-key", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_hash_key_prints_the_line_of_a_keys_file() -> None:
    digest = hashlib.sha256(b"mi-clave").hexdigest()
    assert hash_key("mi-clave") == digest
    assert hash_key(stdin="mi-clave\n") == digest  # from standard input: not in the shell history
    assert hash_key("mi-clave", "--label", "equipo web") == f"{digest}  equipo web"
    assert CliRunner().invoke(cli, ["hash-key"], input="\n").exit_code == 1


def test_keys_are_required_and_the_openai_client_sends_them(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# the keys of the service\n\n{hash_key('clave-de-ci', '--label', 'ci')}\n"
                         f"{hash_key('clave-web')}\n")
    settings = settings_for(tmp_path, api_keys="clave-uno, clave-dos,clave-ñandú", api_keys_file=keys_file)
    with serving(create_app(settings), settings) as url:
        for key in ("clave-uno", "clave-dos", "clave-de-ci", "clave-web"):
            client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
            assert client.models.list().data == []
        with pytest.raises(openai.AuthenticationError) as refused:
            openai.OpenAI(base_url=url + "/v1", api_key="clave-mala", max_retries=0).models.list()
        assert refused.value.status_code == 401
        assert refused.value.response.headers["www-authenticate"] == "Bearer"
        assert len(refused.value.response.headers["x-request-id"]) == 32

        # Only the probes answer without a key; the documentation needs one too.
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/ready").status_code in (200, 503)
        for path in ("/v1/models", "/info", "/openapi.json", "/docs", "/v1/nope"):
            r = httpx.get(url + path, headers={"X-Request-ID": "req-1"})
            assert_error(r, 401, "unauthorized", "no API key", "Authorization: Bearer")
            assert r.headers["www-authenticate"] == "Bearer" and r.headers["x-request-id"] == "req-1"
        for header in ("Basic Y2xhdmUtdW5vOg==", "clave-uno", "Bearer", "Bearer clave-uno-no", "Bearer  clave-dos x"):
            r = httpx.post(url + "/v1/generate", json={"inputs": "hola"}, headers={"Authorization": header})
            assert_error(r, 401, "unauthorized")
        ok = httpx.get(url + "/info", headers={"Authorization": "bearer clave-uno"})  # the scheme is case-blind
        assert ok.status_code == 200
        ok = httpx.get(url + "/info", headers={"Authorization": "Bearer clave-ñandú".encode()})  # UTF-8 bytes
        assert ok.status_code == 200


def test_bad_keys_settings_stop_the_start_with_one_clear_line(tmp_path: Path) -> None:
    from nlp_service.api.server import check_settings

    bad = tmp_path / "bad.txt"
    bad.write_text("# pasted the key instead of its digest:\nmi-clave-secreta  web\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    cases = [(bad, "line 2: not a SHA-256 hex digest"), (empty, "no keys"),
             (tmp_path / "missing.txt", "cannot read it")]
    for path, problem in cases:
        with pytest.raises(ValueError, match=problem):
            check_settings(settings_for(tmp_path, api_keys_file=path))
    with pytest.raises(ValueError, match="no keys"):
        check_settings(settings_for(tmp_path, api_keys=" , "))
    with pytest.raises(ValueError, match="line 2"):
        create_app(settings_for(tmp_path, api_keys_file=bad))

    env = {k: v for k, v in os.environ.items() if not k.startswith("NLP_")}
    env.update(NLP_API_KEYS_FILE=str(bad), NLP_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "nlp_service", "serve", "--models-dir", str(tmp_path / "models")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: NLP_API_KEYS_FILE {bad}, line 2: not a SHA-256 hex digest (64 hex digits, then optionally a "
        "label); `nlp-service hash-key` prints such a line"]  # and never the line itself: it may be a key


def test_rate_limit_per_key_and_per_address(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(hash_key("clave-web", "--label", "web") + "\n")
    settings = settings_for(tmp_path, api_keys="clave-uno", api_keys_file=keys_file, rate_limit_per_minute=3)
    caplog.set_level(logging.INFO, logger="nlp_service")
    with serving(create_app(settings), settings) as url:
        web = {"Authorization": "Bearer clave-web"}
        assert [httpx.get(url + "/info", headers=web).status_code for _ in range(3)] == [200, 200, 200]
        r = httpx.get(url + "/info", headers={**web, "X-Request-ID": "over-1"})
        err = assert_error(r, 429, "too_many_requests", "3 requests a minute", "NLP_RATE_LIMIT_PER_MINUTE")
        retry = int(r.headers["retry-after"])
        assert 1 <= retry <= 20 and err["details"] == {"limit_per_minute": 3, "retry_after_s": retry}
        assert r.headers["x-request-id"] == "over-1"
        assert httpx.get(url + "/info", headers={"Authorization": "Bearer clave-uno"}).status_code == 200  # own bucket
        assert all(httpx.get(url + "/health").status_code == 200 for _ in range(10))  # probes: never limited
        # Refused requests spend nothing: without a key, 401 (not 429) however many.
        assert {httpx.get(url + "/info").status_code for _ in range(5)} == {401}
    assert any("rate limit reached by key web" in r.getMessage() for r in caplog.records)
    assert not any("clave" in r.getMessage() for r in caplog.records)

    settings = settings_for(tmp_path, rate_limit_per_minute=2)  # no keys: per client address
    with serving(create_app(settings), settings) as url:
        assert [httpx.get(url + "/info").status_code for _ in range(3)] == [200, 200, 429]


def test_token_bucket_refills_at_the_rate() -> None:
    from nlp_service.api._auth import RateLimit  # white-box: the bucket's arithmetic, on a given clock

    limit = RateLimit(app=None, per_minute=60)  # type: ignore[arg-type]
    assert [limit.take("k", now=100.0) for _ in range(60)] == [0.0] * 60  # a burst of a minute's worth
    assert limit.take("k", now=100.0) == pytest.approx(1.0)  # then one a second
    assert limit.take("k", now=100.5) == pytest.approx(0.5)
    assert limit.take("k", now=101.0) == 0.0
    assert limit.take("other", now=101.0) == 0.0


def test_cors_is_off_by_default_and_allows_the_configured_origins(tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    settings = settings_for(tmp_path)
    with serving(create_app(settings), settings) as url:
        r = httpx.options(url + "/v1/generate", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in httpx.get(url + "/health", headers=preflight).headers

    settings = settings_for(tmp_path, cors_origins="https://app.example, https://other.example", api_keys="k")
    with serving(create_app(settings), settings) as url:
        r = httpx.options(url + "/v1/generate", headers=preflight)  # without a key: preflights carry none
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                      r.headers["access-control-allow-headers"].split(",")}
        assert httpx.options(url + "/v1/generate", headers={**preflight, "Origin": "https://evil.example"}
                             ).status_code == 400
        # A refusal is readable by the page (its origin allowed), with the request id exposed.
        r = httpx.get(url + "/info", headers={"Origin": "https://app.example"})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
