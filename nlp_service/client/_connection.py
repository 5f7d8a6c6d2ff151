"""How both clients connect: the base URL, the API key (``Authorization: Bearer``, what the service checks),
the timeout, the headers every request carries."""

from __future__ import annotations

from typing import Any

import httpx

from .._version import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# Longer than the server's own limit (NLP_REQUEST_TIMEOUT_S, 60 s unless set), so that a request it gives up
# on is answered by its 504 rather than cut by the client.
DEFAULT_TIMEOUT = 90.0


def connection_options(base_url: str, api_key: str | None, timeout: float | httpx.Timeout | None,
                       headers: dict[str, str] | None) -> dict[str, Any]:
    """The ``httpx.Client`` / ``httpx.AsyncClient`` options of a client."""
    sent = {"User-Agent": f"nlp-service-client/{__version__}", **(headers or {})}
    if api_key is not None:
        sent["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url.rstrip("/"), "timeout": timeout, "headers": sent}
