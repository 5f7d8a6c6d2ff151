"""Domain errors: raised once, where the problem is found, with a stable ``code`` and ``details``.

Layers above only translate them: the HTTP API maps each family to a status code in one table
(``api/errors.py``), the command line prints the message. The families:

- :class:`InvalidInput`: the request itself is wrong (HTTP 422); :class:`LimitExceeded` is the
  case of a value over a configured limit, with one details shape for every limit.
- :class:`UnsupportedByModel`: the request is valid, but the model it names cannot do it (HTTP 400), e.g.
  a chat with a generator that has no chat template.
- :class:`NotFound`: a named thing does not exist (404).
- :class:`Overloaded`: try again shortly (429).
- :class:`Unavailable`: nothing can answer this kind of request (503); :class:`ModelBuilding` is the
  case of a model being built in the background (a first start), with its progress and a Retry-After.
- :class:`TimedOut`: the request took longer than the server allows; its work was cancelled (504).
"""

from __future__ import annotations

from typing import Any


class NLPServiceError(Exception):
    """Base of the errors this package raises on purpose. ``code`` names the problem for programs (the
    class's, unless a raise site gives a more precise one); ``details`` are its facts."""

    code: str = "error"

    def __init__(self, message: str, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(NLPServiceError, ValueError):
    code = "validation_error"


class LimitExceeded(InvalidInput):
    """A value over a limit. ``details``: ``limit``, ``got``, and where they apply, ``setting`` (the
    environment variable that sets the limit) and ``index`` (which text of the request)."""

    code = "limit_exceeded"

    def __init__(self, message: str, *, limit: int, got: int, setting: str | None = None,
                 index: int | None = None, **extra: Any) -> None:
        where = {k: v for k, v in (("setting", setting), ("index", index)) if v is not None}
        super().__init__(message, limit=limit, got=got, **where, **extra)
        self.limit, self.got, self.setting, self.index = limit, got, setting, index


class UnsupportedByModel(NLPServiceError):
    """A valid request that the model it names cannot serve (not a fault of the request's values: another
    model could). ``details``: ``model``."""

    code = "unsupported_by_model"


class NotFound(NLPServiceError, LookupError):
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Overloaded(NLPServiceError):
    code = "too_many_requests"


class Unavailable(NLPServiceError):
    code = "no_model"


class ModelBuilding(Unavailable):
    """The model asked for is being built while the service runs (a default model missing on a first
    start): it will answer without a restart, so a client retries later. ``details``: ``model``, ``state``
    (waiting or building), ``progress`` (0-1, an estimate), ``stage``, ``elapsed_seconds``,
    ``expected_seconds``."""

    code = "model_building"


class TimedOut(NLPServiceError):
    code = "timeout"


__all__ = ["InvalidInput", "LimitExceeded", "ModelBuilding", "ModelNotFound", "NLPServiceError", "NotFound",
           "Overloaded", "TimedOut", "Unavailable", "UnsupportedByModel"]
