"""``nlp-service serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import ModelsDir, app, settings_for, user_errors
from .models import DefaultsDir

if TYPE_CHECKING:
    from ..config import Settings
    from ..defaults import BackgroundBuilds


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default: NLP_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: NLP_PORT or 8000).")] = None,
    models_dir: ModelsDir = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Load only this model (repeat).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Server processes (default: NLP_WORKERS or 1); each loads the models and batches on its own.")] = None,
    build_defaults: Annotated[bool, typer.Option(
        "--build-defaults/--no-build-defaults", envvar="NLP_BUILD_DEFAULTS",
        help="Build the missing default models (those it would load) in the background, quickest first, while "
        "serving the others: each answers 503 model_building with its progress until built, then loads without a "
        "restart. Off by default (a server trains nothing; `nlp-service defaults` builds them up front); "
        "`make serve` turns it on. Needs --workers 1.")] = False,
    defaults_dir: DefaultsDir = None,
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
        builds = _background_builds(settings, defaults_dir) if build_defaults else None
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
    if builds is not None:
        app_.state.service.build_in_background(builds)  # they start with the service, after its clean-up
    uvicorn.run(app_, **uvicorn_options(settings))


def _background_builds(settings: Settings, defaults_dir: Path | None) -> BackgroundBuilds | None:
    """The builds of the missing default models the server would load; None when none is missing. Refused
    for several server processes: each would build the same models, and none would learn of the others'."""
    from ..defaults import BackgroundBuilds, missing

    todo = missing(settings, settings.models)
    if not todo:
        return None
    if settings.workers > 1:
        names = ", ".join(spec.name for spec in todo)
        raise ValueError(f"--build-defaults builds the missing default models ({names}) in one server process: "
                         "serve with --workers 1, or build them first with `nlp-service defaults`")
    return BackgroundBuilds(settings, todo, config_dir=defaults_dir)
