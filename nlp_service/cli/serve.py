"""``nlp-service serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._app import ModelsDir, app, settings_for, user_errors


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default: NLP_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: NLP_PORT or 8000).")] = None,
    models_dir: ModelsDir = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Load only this model (repeat).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes (default: NLP_WORKERS or 1); each loads the models and batches on its own.")] = None,
) -> None:
    """Start the HTTP service (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from ..api import create_app
    from ..api.server import check_settings, uvicorn_options

    settings = settings_for(models_dir, host=host, port=port, models=model or None, workers=workers)
    # Before numpy loads its BLAS (worker processes inherit it too); the app's lifespan also
    # applies the limit with threadpoolctl for apps built another way.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(settings.blas_threads))
    with user_errors():
        check_settings(settings)  # a bad keys file is one line here, not a traceback per worker
    if settings.workers > 1:
        # Worker processes build their own app from the environment: pass the overrides on.
        os.environ["NLP_MODELS_DIR"] = str(Path(settings.models_dir).resolve())
        if settings.models is not None:
            os.environ["NLP_MODELS"] = json.dumps(settings.models)
        uvicorn.run("nlp_service.api.app:create_app", factory=True, workers=settings.workers,
                    **uvicorn_options(settings, workers=True))
        return
    with user_errors():
        app_ = create_app(settings)
    uvicorn.run(app_, **uvicorn_options(settings))
