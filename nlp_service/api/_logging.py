"""Request ids and log lines: every response carries ``X-Request-ID``, and every log line written while a
request is handled (the service's, uvicorn's access lines) names it, as text or as one JSON object a line.

The id lives in a context variable set by :class:`RequestId`; asyncio copies the context into the tasks a
request starts, so lines logged by its route (or by the timeout middleware's task) see it too. Lines logged
from other threads (the generation engine's) have none.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: ContextVar[str | None] = ContextVar("nlp_service_request_id", default=None)
HEADER = "x-request-id"
# A client's id is kept when it cannot forge log lines or headers: short, and of a safe alphabet.
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's own ``X-Request-ID`` when it is sane, else a new one (uuid4 hex)."""
    given = next((v for n, v in headers if n == HEADER.encode()), None)
    if given is not None:
        text = given.decode("latin-1")
        if _SANE_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


class RequestId:
    """Give each request an id (its own, or a new one), set it for the log lines, return it on the response.

    Outermost of the service's middlewares, so that refusals (401, 413, 429) carry the id too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(scope.get("headers", []))
        scope.setdefault("state", {})["request_id"] = rid
        header = (HEADER.encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = REQUEST_ID.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (``None`` outside requests) and ``request_tag`` (``"[id] "`` or ``""``, for text
    formats) to every record a handler writes, whichever logger wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        record.request_id = rid
        record.request_tag = f"[{rid}] " if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id; uvicorn's access
    lines add client, method, path and status; a logged exception adds its traceback as ``exc_info``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str = "info", fmt: Literal["text", "json"] = "text") -> dict[str, Any]:
    """uvicorn's logging configuration (it applies it in every worker process) with the service's own
    lines (``nlp_service.*``) on the same handlers, and the request id on every line."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    if fmt == "json":
        config["formatters"] = {"default": {"()": JsonFormatter}, "access": {"()": JsonFormatter}}
    else:
        config["formatters"]["default"]["fmt"] = "%(levelprefix)s %(request_tag)s%(message)s"
        config["formatters"]["access"]["fmt"] = (
            '%(levelprefix)s %(request_tag)s%(client_addr)s - "%(request_line)s" %(status_code)s')
    config["loggers"]["nlp_service"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
