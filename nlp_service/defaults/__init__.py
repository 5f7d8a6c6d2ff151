"""The default models: what ``make serve`` (``nlp-service defaults``) builds from the shipped data when
they are missing.

Each is a config file in this folder, in the format of ``--config`` and of every model's
``params.toml`` (so ``nlp-service train rnn --config <this folder>/sentiment-es.toml --name x``
trains one again); its name is the built-in default of a setting (``NLP_DEFAULT_*_MODEL``), the model
a request that names none is answered by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import list_models
from ..config import Settings
from ..options import read_config
from ..registry import get_trainer
from ..training import Trainer

log = logging.getLogger(__name__)
FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class DefaultModel:
    setting: str  # the Settings field whose built-in default is this model's name
    config: str  # its config file, in this folder

    @property
    def name(self) -> str:
        return str(Settings.model_fields[self.setting].default)

    @property
    def path(self) -> Path:
        return FOLDER / self.config

    @property
    def description(self) -> str:
        return str(read_config(self.path).get("description", ""))

    @property
    def trainer(self) -> Trainer:
        return get_trainer(read_config(self.path)["command"])

    def build(self, settings: Settings, *, progress: bool = True) -> Path:
        trainer = self.trainer
        values = trainer.read_config(self.path) | {"name": self.name, "overwrite": True}
        path, _ = trainer.train(*trainer.options(values), settings=settings, progress=progress)
        return path


DEFAULT_MODELS: tuple[DefaultModel, ...] = (
    DefaultModel("default_vectors_model", "w2v-es.toml"),
    DefaultModel("default_classifier_model", "bow-es.toml"),
    DefaultModel("default_sentiment_model", "sentiment-es.toml"),
    DefaultModel("default_translator_model", "translate-es-en.toml"),
    DefaultModel("default_generator_model", "gpt2-es.toml"),
)


def build_missing(settings: Settings, *, progress: bool = True, only: list[str] | None = None) -> list[str]:
    """Build each default model whose folder is missing; return the names built."""
    present = {path.name for path, _ in list_models(settings.models_dir)}
    built = []
    for spec in DEFAULT_MODELS:
        if (only and spec.name not in only) or spec.name in present:
            continue
        print(f"building default model {spec.name}: {spec.description}", flush=True)
        spec.build(settings, progress=progress)
        built.append(spec.name)
    return built


__all__ = ["DEFAULT_MODELS", "DefaultModel", "build_missing"]
