"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .._version import __version__
from ..config import Settings, get_settings
from .errors import BodySizeLimit, install_error_handlers
from .models import ModelManager
from .routers import classify, generate, meta, translate, vectors


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; models are loaded once, in the lifespan, and shared by all requests."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from threadpoolctl import threadpool_limits

        # Process-wide: concurrent requests each run one BLAS call; extra BLAS threads only spin.
        limiter = threadpool_limits(limits=settings.blas_threads, user_api="blas")
        app.state.models.load_all()
        try:
            yield
        finally:
            await app.state.models.close()
            limiter.restore_original_limits()

    app = FastAPI(
        title="nlp-service",
        version=__version__,
        description="Spanish-first NLP service: word vectors (similarity, neighbours, analogies, embeddings), "
        "text classification and sentiment, translation, text generation (TGI- and OpenAI-compatible).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.models = ModelManager(settings)
    install_error_handlers(app)
    app.include_router(meta.router)
    app.include_router(vectors.router)
    app.include_router(classify.router)
    app.include_router(translate.router)
    app.include_router(generate.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
