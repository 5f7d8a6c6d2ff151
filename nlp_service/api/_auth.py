"""Who may call the service, and how often: API keys (``Authorization: Bearer <key>``, what OpenAI's and
TGI's clients send), a per-key rate limit, CORS for browsers. All off by default; ``/health`` and
``/ready`` always answer (orchestrators probe them without keys), and so does the playground page (``GET /``
and ``/static/...``; the API calls it makes need a key).

The service keeps only SHA-256 digests of its keys (``NLP_API_KEYS`` are hashed at start-up,
``NLP_API_KEYS_FILE`` holds digests), compares digests in constant time, and never logs a key: log lines
name a key by its label, or by the first 8 hex digits of its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from .errors import error_body

log = logging.getLogger("nlp_service.api")

# Probes of liveness and readiness: no key, no rate limit.
OPEN_PATHS = frozenset({"/health", "/ready"})
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# The playground page and its assets (GET only: POST / is TGI's root route, and needs a key): no key, no
# rate limit to load it; the API calls it makes do need them.
PAGE_PATHS = frozenset({"/"})
PAGE_PREFIXES = ("/static/",)


def is_public(scope: Scope) -> bool:
    """Whether a request is answered without a key and outside the rate limit: the probes, the page."""
    path = scope["path"]
    if path in OPEN_PATHS:
        return True
    return scope.get("method") in ("GET", "HEAD") and (path in PAGE_PATHS or path.startswith(PAGE_PREFIXES))


class KeysError(ValueError):
    """The configured keys cannot be used: the service must not start (it would be open, or closed to all)."""


@dataclass(frozen=True)
class ApiKey:
    digest: str  # SHA-256 hex of the key
    label: str  # what log lines call it

    @property
    def name(self) -> str:
        return self.label or self.digest[:8]


def key_digest(key: str | bytes) -> str:
    """What the service stores of a key: the SHA-256 of its UTF-8 bytes (``nlp-service hash-key`` prints it)."""
    return hashlib.sha256(key.encode("utf-8") if isinstance(key, str) else key).hexdigest()


def read_keys_file(path: Path) -> list[ApiKey]:
    """Lines ``<sha256 hex> [label]``; blank lines and ``#`` comments are skipped. A line that is not a digest
    is an error that names the line but never repeats it (it could be a raw key pasted by mistake)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysError(f"NLP_API_KEYS_FILE {path}: cannot read it ({exc})") from None
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, *label = line.split(None, 1)
        if not _DIGEST.fullmatch(digest):
            raise KeysError(f"NLP_API_KEYS_FILE {path}, line {number}: not a SHA-256 hex digest (64 hex digits, "
                            "then optionally a label); `nlp-service hash-key` prints such a line")
        keys.append(ApiKey(digest.lower(), label[0].strip() if label else ""))
    if not keys:
        raise KeysError(f"NLP_API_KEYS_FILE {path}: no keys in it (every request would be refused)")
    return keys


def load_keys(settings: Settings) -> list[ApiKey]:
    """The accepted keys; empty when the service is open (neither setting given)."""
    keys = []
    if settings.api_keys and settings.api_keys.strip():
        raw = [k.strip() for k in settings.api_keys.split(",")]
        keys = [ApiKey(key_digest(k), "") for k in raw if k]
        if not keys:
            raise KeysError("NLP_API_KEYS: no keys in it (comma-separated keys expected)")
    if settings.api_keys_file is not None:
        keys += read_keys_file(settings.api_keys_file)
    return keys


def _refuse(status: int, code: str, message: str, headers: dict[str, str], details: dict | None = None
            ) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


class ApiKeyAuth:
    """Every request but the probes needs ``Authorization: Bearer <key>`` with a known key; else 401 with
    ``WWW-Authenticate: Bearer``. The key found is left in ``scope["state"]["api_key"]`` (for the rate limit)."""

    def __init__(self, app: ASGIApp, keys: list[ApiKey]) -> None:
        self.app = app
        self.keys = keys

    def find(self, token: bytes) -> ApiKey | None:
        digest = key_digest(token)
        found = None
        for key in self.keys:  # every key compared, in constant time each: timing tells nothing
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope):
            await self.app(scope, receive, send)
            return
        # The token's bytes as sent (a key's UTF-8 bytes, whatever its characters).
        header = next((v for n, v in scope.get("headers", []) if n == b"authorization"), b"")
        scheme, _, token = header.strip().partition(b" ")
        key = self.find(token.strip()) if scheme.lower() == b"bearer" and token.strip() else None
        if key is None:
            problem = "no API key" if not header else "an unknown API key (or not a Bearer one)"
            log.info("refused %s %s: %s", scope.get("method"), scope["path"], problem)
            response = _refuse(401, "unauthorized", f"this service needs an API key, and the request has {problem}: "
                               "send `Authorization: Bearer <key>`", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


class RateLimit:
    """A token bucket per API key (per client address when the service has no keys): ``per_minute`` requests
    in a burst, refilled at ``per_minute`` a minute; beyond, 429 with ``Retry-After`` (seconds). Buckets are
    per process: with ``--workers N`` a client gets up to N times the rate."""

    # Full buckets are forgotten past this many clients (a full bucket is the same as none).
    MAX_BUCKETS = 10_000

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens a second
        self.buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, when counted)

    def take(self, who: str, now: float | None = None) -> float:
        """Spend a token of ``who``'s bucket: 0 when there was one, else the seconds until there is."""
        now = time.monotonic() if now is None else now
        tokens, when = self.buckets.get(who, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.rate)
        if tokens >= 1.0:
            self.buckets[who] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self.buckets[who] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self.buckets) > self.MAX_BUCKETS:
            self.buckets = {k: (t, w) for k, (t, w) in self.buckets.items()
                            if t + (now - w) * self.rate < self.capacity}
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope):
            await self.app(scope, receive, send)
            return
        key: ApiKey | None = scope.get("state", {}).get("api_key")
        client = scope.get("client")
        who = f"key:{key.digest}" if key is not None else f"addr:{client[0] if client else '-'}"
        wait = self.take(who)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            log.info("rate limit reached by %s: 429, retry after %d s",
                     f"key {key.name}" if key is not None else who[5:], retry)
            response = _refuse(429, "too_many_requests",
                               f"rate limit reached: {self.per_minute} requests a minute (NLP_RATE_LIMIT_PER_MINUTE); "
                               f"retry in {retry} s", {"Retry-After": str(retry)},
                               {"limit_per_minute": self.per_minute, "retry_after_s": retry})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def add_access_control(app: FastAPI, settings: Settings) -> None:
    """Add, as configured, the rate limit, the key check and CORS (each added one outside the previous).
    Raises :class:`KeysError` when the keys are misconfigured: a clear start-up error."""
    keys = load_keys(settings)
    if settings.rate_limit_per_minute is not None:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    if keys:
        app.add_middleware(ApiKeyAuth, keys=keys)
        log.debug("API keys required: %d keys", len(keys))
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if origins:
        # Outside the key check: browsers send preflight requests without the Authorization header.
        app.add_middleware(CORSMiddleware, allow_origins=["*"] if "*" in origins else origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
