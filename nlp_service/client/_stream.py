"""Reading a generation stream (server-sent events, TGI's shape): one ``data:`` line an event, the last one
with the whole text and the details; an error after the stream began is a last ``{"error", "error_type"}``
event. The same reader serves the sync and the async client."""

from __future__ import annotations

import json

import httpx

from ._errors import ServiceError, stream_error
from ._types import StreamEvent


class EventReader:
    """Feed it the stream's lines; it gives the events, raises the stream's error, and at the end says
    whether the stream was complete (a server that cut it, past its request timeout, sends no last event)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.finished = False

    def feed(self, line: str) -> StreamEvent | None:
        if not line.startswith("data:"):
            return None  # blank separators, comments, other fields
        data = json.loads(line.removeprefix("data:").strip())
        if "error" in data:
            raise stream_error(data, self.response)
        event = StreamEvent.from_json(data)
        self.finished = event.details is not None
        return event

    def end(self) -> None:
        if not self.finished:
            raise ServiceError("the generation stream ended before its last event (the server cut it: see its log)",
                               status=self.response.status_code, code="incomplete_stream",
                               request_id=self.response.headers.get("x-request-id"))
