"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .._version import __version__
from ..config import Settings, get_settings
from ..serving import Service
from ._auth import add_access_control
from ._logging import RequestId
from ._metrics import RequestMetrics
from ._middleware import CatchAll, Deadline
from .errors import BodySizeLimit, install_error_handlers
from .routers import classify, meta, metrics, openai, openai_chat, openai_embeddings, tgi, translate, vectors

# The playground page (GET /) and its assets: plain HTML, CSS and JS that call the public API.
STATIC = Path(__file__).parent / "static"


def playground() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; models are loaded once, in the lifespan, and shared by all requests."""
    settings = settings or get_settings()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from threadpoolctl import threadpool_limits

        # Process-wide: concurrent requests each run one BLAS call; extra BLAS threads only spin.
        limiter = threadpool_limits(limits=settings.blas_threads, user_api="blas")
        # Returns at once: models load in a background thread, the port opens meanwhile, /ready says
        # 503 "loading" until every model is tried (then 200).
        service.start()
        try:
            yield
        finally:
            await service.close()
            limiter.restore_original_limits()

    app = FastAPI(
        title="nlp-service",
        version=__version__,
        description="Spanish-first NLP service: word vectors (similarity, neighbours, analogies, embeddings), "
        "text classification and sentiment, translation, text generation (TGI- and OpenAI-compatible).",
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    for router in (meta.router, metrics.router, vectors.router, classify.router, translate.router, tgi.router,
                   tgi.root_router, openai.router, openai_chat.router, openai_embeddings.router):
        app.include_router(router)
    # GET / is the playground (POST / stays TGI's root route); no API key needed to load it (_auth.is_public).
    app.add_api_route("/", playground, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # Each middleware added wraps those added before it. From the inside out: unexpected errors as a 500
    # that keeps the connection; the request's deadline and its client's disconnect cancel its work; body
    # size; rate limit, API keys, CORS; the request id (on every response and log line, refusals too).
    app.add_middleware(CatchAll)
    app.add_middleware(Deadline, timeout_s=settings.request_timeout_s)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    add_access_control(app, settings)
    app.add_middleware(RequestId)
    # Outermost: request metrics count every answer, refusals (401, 413, 429) included.
    app.add_middleware(RequestMetrics)
    return app
