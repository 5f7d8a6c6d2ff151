"""The default models: what a first ``make serve`` builds when they are missing (in the background, while
the service answers with what it has: :class:`BackgroundBuilds`), and what ``nlp-service defaults`` builds
up front.

Each is a config file in this folder, in the format of ``--config`` and of every model's
``params.toml`` (so ``nlp-service train neural --config <this folder>/sentiment-es.toml --name x``
trains one again); its name is the built-in default of a setting (``NLP_DEFAULT_*_MODEL``), the model
a request that names none is answered by. A folder of config files of the same names
(``--defaults-dir``, ``NLP_DEFAULTS_DIR``) replaces the shipped ones it has (smaller budgets, other data).

Profiles (``NLP_DEFAULTS``): ``demo`` builds each from the shipped data (``w2v-es.toml``); another profile
has config files of its own for some models (``w2v-es.pretrained.toml``) and the demo's for the others.
``pretrained`` imports Hugging Face Hub models (:mod:`._imports`; the classifiers keep the demos: no Spanish
sentiment model on the Hub is one we could vouch for), and when one cannot be had (offline, say) builds the
demo instead, with a warning line that says why and the command that retries.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import list_models
from ..config import Settings
from ..hub import HubError
from ..options import read_config
from ..registry import get_trainer
from ..training import Trainer
from ._background import WARNING_PREFIX, BackgroundBuilds, run_as_background_build
from ._imports import IMPORTS

log = logging.getLogger(__name__)
FOLDER = Path(__file__).parent
DEMO = "demo"  # the profile of the plain config files (w2v-es.toml), and the others' fallback


@dataclass(frozen=True)
class DefaultModel:
    setting: str  # the Settings field whose built-in default is this model's name
    config: str  # its config file, in this folder
    # How long building it from the shipped config takes on the 2-core development machine, in its own
    # process (imports and tests included): what a build's progress is estimated against.
    seconds: float

    @property
    def name(self) -> str:
        return str(Settings.model_fields[self.setting].default)

    @property
    def path(self) -> Path:
        return FOLDER / self.config

    def config_path(self, config_dir: Path | None = None, profile: str = DEMO) -> Path:
        """Its config file under ``profile``: the profile's own (``w2v-es.pretrained.toml``) if it has one, else
        the demo's (``w2v-es.toml``); each ``config_dir``'s file of that name if there is one, else the shipped one."""
        names = [self.config] if profile == DEMO else [f"{Path(self.config).stem}.{profile}.toml", self.config]
        for file in names:
            for folder in (config_dir, FOLDER):
                if folder is not None and (Path(folder) / file).is_file():
                    return Path(folder) / file
        return self.path

    def expected_seconds(self, config_dir: Path | None = None, profile: str = DEMO) -> float | None:
        """How long its build takes, when known: for the shipped demo config only."""
        return self.seconds if self.config_path(config_dir, profile) == self.path else None

    @property
    def description(self) -> str:
        return str(read_config(self.path).get("description", ""))

    @property
    def trainer(self) -> Trainer:
        return get_trainer(read_config(self.path)["command"])

    @property
    def kind(self) -> str:
        """The kind of model it makes (vectors, classifier, ...)."""
        return self.trainer.kind

    def build(self, settings: Settings, *, progress: bool = True, config_dir: Path | None = None) -> Path:
        """Build it from its config file under the settings' profile (``NLP_DEFAULTS``), replacing its folder.
        An imported model that cannot be had from the Hugging Face Hub is built from the demo's config instead,
        with a warning line (on stderr: a background build's server logs it) saying why and how to retry."""
        path = self.config_path(config_dir, settings.defaults)
        imported = IMPORTS.get(read_config(path)["command"])
        if imported is not None:
            try:
                return imported.run(self.name, path, settings)
            except HubError as exc:
                demo = self.config_path(config_dir)
                print(f"{WARNING_PREFIX}{self.name}: not imported from {imported.read(path)[0]}: "
                      f"{exc.details.get('reason', exc)}; building the demo instead "
                      f"({read_config(demo).get('description') or demo.name}). To retry once the Hub can be reached: "
                      f"{imported.command_line(self.name, path)} (a running service loads it at its next start)",
                      file=sys.stderr, flush=True)
                path = demo
        trainer = get_trainer(read_config(path)["command"])
        values = trainer.read_config(path) | {"name": self.name, "overwrite": True}
        built, _ = trainer.train(*trainer.options(values), settings=settings, progress=progress)
        return built


# In build order, quickest useful first: a first start answers vector queries within a minute of the
# install, then each kind as it comes. ``seconds``: measured on the 2-core machine, each model in its own
# ``nlp-service defaults --only`` process beside the running service (shared with other work: 45, 8, 164, 231
# and 319 s; 27, 3, 106, 200 and 290 s of training alone on an idle machine).
DEFAULT_MODELS: tuple[DefaultModel, ...] = (
    DefaultModel("default_vectors_model", "w2v-es.toml", seconds=45),
    DefaultModel("default_classifier_model", "bow-es.toml", seconds=10),
    DefaultModel("default_sentiment_model", "sentiment-es.toml", seconds=140),
    DefaultModel("default_generator_model", "gpt2-es.toml", seconds=225),
    DefaultModel("default_translator_model", "translate-es-en.toml", seconds=310),
)


def missing(settings: Settings, only: Collection[str] | None = None) -> list[DefaultModel]:
    """The default models (of ``only``, when given) without a folder in the models folder, in build order."""
    present = {path.name for path, _ in list_models(settings.models_dir)}
    return [spec for spec in DEFAULT_MODELS
            if spec.name not in present and (only is None or spec.name in only)]


def build_missing(settings: Settings, *, progress: bool = True, only: list[str] | None = None,
                  config_dir: Path | None = None) -> list[str]:
    """Build each default model whose folder is missing; return the names built."""
    built = []
    for spec in missing(settings, only or None):
        path = spec.config_path(config_dir, settings.defaults)
        about = read_config(path).get("description") or path.name
        print(f"building default model {spec.name}: {about}", flush=True)
        spec.build(settings, progress=progress, config_dir=config_dir)
        built.append(spec.name)
    return built

__all__ = ["DEFAULT_MODELS", "DEMO", "BackgroundBuilds", "DefaultModel", "build_missing", "missing",
           "run_as_background_build"]
