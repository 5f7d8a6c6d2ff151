"""The service's error answers as exceptions: every one a :class:`ServiceError` (status, code, message,
details, Retry-After), and an instance of the package's own class for its kind where there is one, so that
``except nlp_service.ModelNotFound`` catches a remote one as it catches a local one."""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import (
    InvalidInput,
    LimitExceeded,
    ModelBuilding,
    ModelNotFound,
    NLPServiceError,
    NotFound,
    Overloaded,
    TimedOut,
    Unavailable,
    UnsupportedByModel,
)


class ServiceError(NLPServiceError):
    """An error answered by the service: its HTTP ``status``, ``code`` (``model_not_found``,
    ``limit_exceeded``, ...), ``message`` and ``details`` as the body says them, ``retry_after`` (seconds,
    from the ``Retry-After`` header of a 429 or 503; None without one) and the ``request_id`` its log names."""

    def __init__(self, message: str, *, status: int, code: str, details: dict[str, Any] | None = None,
                 retry_after: float | None = None, request_id: str | None = None) -> None:
        # Not NLPServiceError.__init__: details are the server's, and may hold any key (even "code").
        Exception.__init__(self, message)
        self.message, self.code, self.details = message, code, dict(details or {})
        self.status, self.retry_after, self.request_id = status, retry_after, request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class AuthenticationError(ServiceError):
    """401: the service has API keys and the request had none, or an unknown one."""


class InvalidInputError(ServiceError, InvalidInput):
    pass


class LimitExceededError(ServiceError, LimitExceeded):
    def __init__(self, message: str, **answer: Any) -> None:
        ServiceError.__init__(self, message, **answer)
        self.limit, self.got = self.details.get("limit"), self.details.get("got")
        self.setting, self.index = self.details.get("setting"), self.details.get("index")


class NotFoundError(ServiceError, NotFound):
    pass


class ModelNotFoundError(ServiceError, ModelNotFound):
    pass


class OverloadedError(ServiceError, Overloaded):
    pass


class UnavailableError(ServiceError, Unavailable):
    pass


class ModelBuildingError(ServiceError, ModelBuilding):
    pass


class TimedOutError(ServiceError, TimedOut):
    pass


class UnsupportedByModelError(ServiceError, UnsupportedByModel):
    pass


# The most precise class first: by the body's code, else by the status (api/errors.py's table, reversed).
_BY_CODE: dict[str, type[ServiceError]] = {
    "model_not_found": ModelNotFoundError, "limit_exceeded": LimitExceededError,
    "model_building": ModelBuildingError, "unauthorized": AuthenticationError,
    "unsupported_by_model": UnsupportedByModelError,
}
_BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidInputError, 401: AuthenticationError, 404: NotFoundError, 413: InvalidInputError,
    422: InvalidInputError, 429: OverloadedError, 503: UnavailableError, 504: TimedOutError,
}
# The error types of a TGI stream's last event (an error after the stream began), as a status; other types
# (``generation``: the engine failed) are the server's fault.
_STREAM_STATUS = {"validation": 422, "overloaded": 429}


def error_for(status: int, code: str, message: str, details: dict[str, Any] | None = None, *,
              retry_after: float | None = None, request_id: str | None = None) -> ServiceError:
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, ServiceError)
    return cls(message, status=status, code=code, details=details, retry_after=retry_after, request_id=request_id)


def error_from_response(response: httpx.Response) -> ServiceError:
    """The exception of an error answer (its body read): the service's ``{"error": {"code", "message",
    "details"}}``, TGI's ``{"error": message, "error_type", ...}`` (the service's answer at TGI's own paths), or,
    from something else on the way (a proxy's HTML page), the status and the start of the text."""
    try:
        body = response.json()
        error = body["error"]
        if isinstance(error, str):
            error = {"code": body.get("code") or body["error_type"], "message": error, "details": body.get("details")}
        code, message, details = str(error["code"]), str(error["message"]), dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", f"HTTP {response.status_code}: {response.text[:200]}", {}
    return error_for(response.status_code, code, message, details, retry_after=_seconds(response.headers),
                     request_id=response.headers.get("x-request-id"))


def stream_error(event: dict[str, Any], response: httpx.Response) -> ServiceError:
    """A stream's error event (``{"error", "error_type"}``, sent after the 200 began); ``code`` is its type."""
    error_type = str(event.get("error_type") or "generation")
    return error_for(_STREAM_STATUS.get(error_type, 500), error_type, str(event.get("error")),
                     request_id=response.headers.get("x-request-id"))


def _seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: rare, and no server of ours sends one
        return None
