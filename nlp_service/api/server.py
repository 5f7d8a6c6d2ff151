"""How the service runs under uvicorn: its options (keep-alive, logging) and an HTTP protocol with the read
timeout uvicorn lacks. ``nlp-service serve`` uses :func:`uvicorn_options`; so can any other launcher.

uvicorn waits forever for a request's headers and body: a client that sends half a header holds a
connection (and its memory) for good, and a few thousand such clients exhaust the server. The protocols
here close a connection whose request has not fully arrived ``read_timeout_s`` after its first byte, and a
fresh connection that sends nothing in that time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import Settings, get_settings
from ._auth import load_keys
from ._logging import log_config

log = logging.getLogger("nlp_service.api.server")


class _ReadDeadline:
    """The timer of a request's arrival, shared by both protocol classes."""

    read_timeout_s: float | None = None  # None: the environment's settings (worker processes)
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    _read_timer: asyncio.TimerHandle | None = None

    def _timeout(self) -> float:
        return self.read_timeout_s if self.read_timeout_s is not None else get_settings().read_timeout_s

    def _arm_read_deadline(self) -> None:
        self._disarm_read_deadline()
        self._read_timer = self.loop.call_later(self._timeout(), self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            who = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info("%s: no complete request within %g s (NLP_READ_TIMEOUT_S): connection closed", who,
                     self._timeout())
            self.transport.close()


class H11ReadTimeout(_ReadDeadline, H11Protocol):
    """uvicorn's h11 protocol with the read timeout."""

    _reading = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_deadline()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and not self._reading:  # the first byte of a request
            self._reading = True
            self._arm_read_deadline()
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):  # all of it has arrived (or it failed)
            self._reading = False
            self._disarm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)


HTTPProtocol: type[asyncio.Protocol] = H11ReadTimeout

if importlib.util.find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsReadTimeout(_ReadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when httptools is installed) with the read timeout."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_read_deadline()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_read_deadline()

        def on_message_complete(self) -> None:
            self._disarm_read_deadline()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_read_deadline()
            super().connection_lost(exc)

    HTTPProtocol = HttpToolsReadTimeout


def http_protocol(read_timeout_s: float | None = None, implementation: str = "auto") -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http=``: httptools when installed (``auto``) or h11, closing
    connections whose request has not arrived within ``read_timeout_s`` (None: the environment's setting,
    read in each process: what a ``--workers`` server needs, as its options are pickled by reference)."""
    bases = {"auto": HTTPProtocol, "h11": H11ReadTimeout}
    if HTTPProtocol is not H11ReadTimeout:
        bases["httptools"] = HTTPProtocol
    if implementation not in bases:
        raise ValueError(f"unknown or unavailable HTTP implementation: {implementation}")
    base = bases[implementation]
    if read_timeout_s is None:
        return base
    return type(base.__name__, (base,), {"read_timeout_s": read_timeout_s, "__module__": __name__})


def check_settings(settings: Settings) -> None:
    """Fail now, with a clear message, on settings the service could not start with (the API keys)."""
    load_keys(settings)


def uvicorn_options(settings: Settings, *, workers: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run``/``uvicorn.Config`` for these settings: host, port, keep-alive,
    the read timeout, logging (text or JSON lines, with request ids). ``workers``: for a multi-process
    server, whose workers read the read timeout from the environment."""
    return {
        "host": settings.host,
        "port": settings.port,
        "timeout_keep_alive": settings.keep_alive_s,
        "http": http_protocol(None if workers else settings.read_timeout_s),
        "log_level": settings.log_level,
        "log_config": log_config(settings.log_level, settings.log_format),
    }


__all__ = ["HTTPProtocol", "check_settings", "http_protocol", "uvicorn_options"]
