"""HTTP request metrics, as a pure ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streams).

Labels are bounded: the route *template* (``/v1/models/{name}``) that handled the request, never the raw
path, and ``unmatched`` for requests no route handled (unknown paths, bodies refused before routing,
slash redirects); unusual HTTP methods count as ``other``. The metrics live in ``prometheus_client``'s
default registry, defined once at import, so several apps in one process share them.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Generations and streams run for seconds to minutes: the default buckets stop at 10 s.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

REQUESTS = Counter("nlp_http_requests_total", "HTTP requests answered, by method, route template and status.",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("nlp_http_request_duration_seconds",
                            "HTTP request time to the end of the response body (streams included).",
                            ["method", "route"], buckets=_LATENCY_BUCKETS)
IN_PROGRESS = Gauge("nlp_http_requests_in_progress", "HTTP requests being handled (streams until their end).",
                    ["method"])


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request (set in the scope by the router), or ``unmatched``."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


class RequestMetrics:
    """Count requests and time them to the end of their body, by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # what the server answers when the app fails (or returns) before a response starts
        started = time.perf_counter()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = IN_PROGRESS.labels(method)
        in_progress.inc()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            in_progress.dec()
            route = route_template(scope)
            REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
            REQUESTS.labels(method, route, str(status)).inc()
