"""``nlp-service train <command>``: one command per training command of the registry, its options derived
from the trainer's option groups (``--config`` reads them from a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..registry import get_trainer, trainer_commands
from ..training import TRAINING_CURVE, Trainer
from ._app import echo_json, settings_for, train_app, user_errors
from ._options import derived_command


def _add(command: str, trainer: Trainer) -> None:
    """``train <command>``: the trainer's own command, or one of its aliases (same options, same run)."""
    def body(options: list[Any], models_dir: Path | None) -> None:
        settings = settings_for(models_dir)
        with user_errors():
            path, metrics = trainer.train(*options, settings=settings)
        echo_json({"model": str(path), **trainer.report(metrics)})
        # Last, on stderr (stdout is the JSON report): where to look at the run's curves.
        curve = Path(path) / TRAINING_CURVE
        typer.echo(f"plot: {curve}" if curve.is_file() else
                   f"plot: none (`train {trainer.command}` records no per-epoch history to draw)", err=True)

    summary = trainer.summary if command == trainer.command else (
        f"{trainer.summary} (Alias of `train {trainer.command}`.)")
    derived_command(train_app, command, groups=trainer.groups, body=body, help=summary,
                    read_config=trainer.read_config)


for _command in trainer_commands():
    _add(_command, get_trainer(_command))
