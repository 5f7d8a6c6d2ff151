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


def _add(trainer: Trainer) -> None:
    def body(options: list[Any], models_dir: Path | None) -> None:
        settings = settings_for(models_dir)
        with user_errors():
            path, metrics = trainer.train(*options, settings=settings)
        echo_json({"model": str(path), **trainer.report(metrics)})
        # Last, on stderr (stdout is the JSON report): where to look at the run's curves.
        curve = Path(path) / TRAINING_CURVE
        typer.echo(f"plot: {curve}" if curve.is_file() else
                   f"plot: none (`train {trainer.command}` records no per-epoch history to draw)", err=True)

    derived_command(train_app, trainer.command, groups=trainer.groups, body=body, help=trainer.summary,
                    read_config=trainer.read_config)


for _command in trainer_commands():
    _add(get_trainer(_command))
