"""The ``nlp-service`` command and what its sub-commands share: the sub-command groups, common options,
settings from the environment with command-line overrides, and one way to report expected failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import Settings, get_settings
from ..errors import NLPServiceError
from ..training import OVERWRITE_HELP

app = typer.Typer(
    name="nlp-service",
    help="Spanish-first NLP toolkit and HTTP service. Settings come from NLP_* environment variables "
    "(see README); options given here override them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model from text and save it as a named model folder (with its options "
                        "as params.toml: --config repeats a run).", no_args_is_help=True)
fetch_app = typer.Typer(help="Download published models or data (needs internet).", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(fetch_app, name="fetch")

# Options that several commands share, named once.
ModelsDir = Annotated[
    Path | None, typer.Option("--models-dir", help="Models folder (default: NLP_MODELS_DIR or ./models).")
]
Overwrite = Annotated[bool, typer.Option(help=OVERWRITE_HELP)]


def settings_for(models_dir: Path | None = None, **overrides: Any) -> Settings:
    """The environment's settings with the command line's overrides (``None``: not given)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if models_dir is not None:
        values["models_dir"] = models_dir
    return get_settings().model_copy(update=values)


@contextmanager
def user_errors() -> Iterator[None]:
    """Expected failures (bad input, missing files, no network) print one line, exit code 1."""
    try:
        yield
    except (NLPServiceError, ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("interrupted; nothing was saved", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None


def echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
