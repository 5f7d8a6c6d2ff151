"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "details"}}``, the one table
that maps the domain's errors to status codes, and how the OpenAPI document describes both.

Routes of another API's own paths may answer in that API's error shape, which its clients read: a route
of class :class:`TGIRoute` (TGI's ``/``, ``/generate``, ``/generate_stream``) answers
``{"error": message, "error_type": kind}`` plus our ``code`` and ``details``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    InvalidInput,
    ModelBuilding,
    NLPServiceError,
    NotFound,
    Overloaded,
    TimedOut,
    Unavailable,
    UnsupportedByModel,
)

log = logging.getLogger("nlp_service.api")

_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
                 503: "not_ready", 504: "timeout"}


# Each family of domain errors (nlp_service.errors) and its status; the first match wins.
STATUS: tuple[tuple[type[NLPServiceError], int], ...] = (
    (Overloaded, 429),
    (ModelBuilding, 503),  # before Unavailable: the same status, with its own header
    (Unavailable, 503),
    (TimedOut, 504),
    (NotFound, 404),
    (InvalidInput, 422),
    (UnsupportedByModel, 400),
)
# What a client should do about some of them.
HEADERS: dict[type[NLPServiceError], dict[str, str]] = {
    Overloaded: {"Retry-After": "1"},
    # A build takes minutes; polling every 10 s costs nothing (details say how far it has got).
    ModelBuilding: {"Retry-After": "10"},
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="What went wrong, for programs: stable (e.g. model_not_found, limit_exceeded).")
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(description="The facts of the problem (e.g. limit and got); may be empty.")


class ErrorResponse(BaseModel):
    """The body of every error response (4xx and 5xx)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


# Why each status is answered, as the OpenAPI document says it.
_DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8 text), or the model named cannot do what is asked (a chat "
         "with a generator that has no chat template)",
    401: "Missing or unknown API key (only when the service has keys: NLP_API_KEYS or NLP_API_KEYS_FILE)",
    404: "No model (or thing) of that name",
    413: "Request body larger than NLP_MAX_BODY_BYTES",
    422: "Invalid request: malformed JSON, a field out of its schema, or a value over a configured limit",
    429: "Too many requests: a model's queue is full, or the rate limit was reached; retry later",
    503: "No model can answer this kind of request: none loaded, it failed to load, the models are still "
         "loading (`loading`), or it is being built in the background (`model_building`, with its progress "
         "and Retry-After)",
    504: "The request took longer than NLP_REQUEST_TIMEOUT_S; its work was cancelled",
}
# The headers some refusals carry.
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`: how to send a key.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "With `model_building`: seconds to wait before retrying.",
                          "schema": {"type": "integer"}}},
}

# Statuses by what a route does. Every route but /health and /ready: keys, rate limit, timeout.
GUARDED = (401, 429, 504)
# A route that takes a JSON body naming a model (or its kind's default).
MODEL_QUERY = (*GUARDED, 400, 404, 413, 422, 503)


class TGIErrorResponse(BaseModel):
    """The body of an error of TGI's own paths, as TGI sends it (and our code and details)."""

    error: str = Field(description="What went wrong, for people.")
    error_type: str = Field(description="TGI's kind: validation, overloaded, generation, or our code.")
    code: str
    details: dict[str, Any]


def error_responses(*statuses: int, body: type[BaseModel] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route (or router) answering ``statuses`` besides its success: each with the
    ErrorResponse body (or ``body``). Declaring 422 also replaces FastAPI's own ``{"detail": ...}``
    validation schema, which this service never sends."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        responses[status] = {"model": body, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            responses[status]["headers"] = _HEADERS[status]
    return responses


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class TGIRoute(APIRoute):
    """A route at one of TGI's own paths: its errors in TGI's shape."""


# TGI's error kinds (its client raises ValidationError, OverloadedError, GenerationError by them).
_TGI_ERROR_TYPES = {422: "validation", 400: "validation", 429: "overloaded", 500: "generation"}


def _response(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
              ) -> JSONResponse:
    if isinstance(request.scope.get("route"), TGIRoute):
        error = body["error"]
        body = {"error": error["message"], "error_type": _TGI_ERROR_TYPES.get(status, error["code"]),
                "code": error["code"], "details": error["details"]}
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NLPServiceError)
    async def _domain(request: Request, exc: NLPServiceError) -> JSONResponse:
        family = next((cls for cls, _ in STATUS if isinstance(exc, cls)), None)
        if family is None:  # raised on purpose, but not about the request: the server's problem
            log.error("%s: %s", exc.__class__.__name__, exc)
            return _response(request, 500, error_body("internal_error", "internal server error"))
        return _response(request, dict(STATUS)[family], error_body(exc.code, exc.message, exc.details),
                         HEADERS.get(family))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _loc(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        if first.get("type") == "json_invalid":
            message = "request body is not valid JSON"
        else:
            message = f"{first['field']}: {first['message'].removeprefix('Value error, ')}"
        return _response(request, 422, error_body("validation_error", message, {"errors": errors}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return _response(request, exc.status_code, error_body(code, str(exc.detail)), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _response(request, 500, error_body("internal_error", "internal server error"))


class BodySizeLimit:
    """Reject bodies over ``max_bytes`` with 413, by header or while streaming (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for n, v in scope.get("headers", []) if n == b"content-length"), None)
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._reject(send)
            else:
                await self.app(scope, receive, send)  # the server enforces the declared length
            return
        # Chunked upload, no declared length: buffer up to the limit, then replay it to the app.
        # (An exception raised from receive() would be turned into a 400 by FastAPI.)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body_message: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body_message], then=receive), send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", f"request body is larger than {self.max_bytes} bytes",
                       {"max_bytes": self.max_bytes}),
            status_code=413,
        )
        await response({"type": "http"}, _empty_receive, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
