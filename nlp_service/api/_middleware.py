"""Middlewares that bound a request's life: :class:`Deadline` cancels its work when the client goes away or
when it runs out of time (504), :class:`CatchAll` turns an unexpected exception into a 500 that keeps the
connection usable. Pure ASGI, as ``BodySizeLimit``: ``BaseHTTPMiddleware`` would buffer streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import TimedOut
from .errors import STATUS, error_body

log = logging.getLogger("nlp_service.api")

_DISCONNECT: Message = {"type": "http.disconnect"}


class Deadline:
    """Run the request in a task of its own, and cancel that task when the client disconnects before the
    response is complete, or when ``timeout_s`` has passed (then answer 504 if no response has started;
    if one has, cut it: the connection closes, so a client never takes a truncated stream for a whole one).

    Cancelling reaches the awaits of the route: a generation closes its stream in a ``finally`` (which frees
    its engine slot), a micro-batched request's future is skipped by its batcher. Without this a non-streaming
    request abandoned by its client runs to its end, and a slow one is never stopped.

    This middleware is the only reader of the server's ``receive()``: it reads the body as it comes, then
    keeps waiting for ``http.disconnect``; the app's own ``receive()`` calls are served from what it read (so
    that ``StreamingResponse``, which listens for the disconnect itself, still sees it)."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        state = {"started": False, "complete": False, "taken_over": False, "gone": False}

        async def app_receive() -> Message:
            if state["gone"] and inbox.empty():
                return _DISCONNECT
            message = await inbox.get()
            if message["type"] == "http.disconnect":
                state["gone"] = True
            return message

        async def app_send(message: Message) -> None:
            if state["taken_over"]:  # timed out: the app's task no longer owns the response
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True  # before sending: the server's disconnect may follow at once
            await send(message)

        # A task with a copy of this context: the request id of the log lines goes with it.
        task = asyncio.ensure_future(self.app(scope, app_receive, app_send))

        async def pump() -> None:
            while True:
                try:
                    message = await receive()
                except Exception:  # a server that fails reading: the client is as good as gone
                    message = _DISCONNECT
                inbox.put_nowait(message)
                if message["type"] == "http.disconnect":
                    if not (state["complete"] or state["taken_over"] or task.done()):
                        log.info("client disconnected before the response was complete: request cancelled")
                        task.cancel()
                    return

        pumping = asyncio.ensure_future(pump())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
            if done:
                if not task.cancelled():
                    task.result()  # the app's exception, if any, goes on up
                return
            state["taken_over"] = True
            task.cancel()
            if state["started"]:
                # The client sees the connection close before the end of the body: an error, as it should.
                log.warning("request timed out after %g s with its response under way: cancelled, response cut",
                            self.timeout_s)
            else:
                log.warning("request timed out after %g s: cancelled, answered 504", self.timeout_s)
                exc = TimedOut(f"the request took longer than {self.timeout_s:g} s (NLP_REQUEST_TIMEOUT_S); its "
                               "work was cancelled", timeout_s=self.timeout_s)
                response = JSONResponse(error_body(exc.code, exc.message, exc.details),
                                        status_code=dict(STATUS)[TimedOut])
                await response(scope, app_receive, send)
            # Work that ignores cancellation for a while (a thread-pool call) finishes before the next request.
            await asyncio.wait({task})
        finally:
            pumping.cancel()
            if not task.done():  # this coroutine itself was cancelled (server shutdown)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping


class CatchAll:
    """Answer an unexpected exception with the 500 error shape, logged once with the request id, and end
    there. Starlette's outermost ``ServerErrorMiddleware`` sends its 500 and then re-raises, which makes the
    server drop the connection (without ``Connection: close``): a keep-alive client's next request on it
    would fail. When the response had already started, the connection must close: the app returns without
    completing it, and the server closes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                response = JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
                await response(scope, receive, send)
