"""``GET /metrics``: the Prometheus exposition of the process's default registry (serving and HTTP metrics).

One process only: with ``serve --workers N`` each worker has its own registry, and a scrape sees one of
them (``prometheus_client``'s multiprocess mode would be needed to add them up).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["service"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Async: rendering the registry is quick and needs no worker thread."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
