"""Default models imported rather than trained: a config file whose ``command`` is one of the import commands
(``convert``, ``import-marian``, ``import-generator``) names the model in ``from`` (a Hugging Face Hub
repository, ``owner/name[@revision]``, or a path) and the command's options by their flags' names:

    command = "import-marian"
    from = "Helsinki-NLP/opus-mt-es-en"
    source = "es"      # --source
    target = "en"      # --target

Each runs the same library function as its command, so a config file and a command line make the same model.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..options import META_KEYS, read_config

if TYPE_CHECKING:
    from ..config import Settings

FROM = "from"  # the key naming what is imported


@dataclass(frozen=True)
class Import:
    """An import command as a config file states it."""

    command: str  # nlp-service <command>
    function: Callable[..., Path]  # what the command runs: (from, models_dir, name, **options) -> model folder
    options: Mapping[str, str]  # the options a config may set: flag name (snake case) -> the function's keyword

    def run(self, name: str, config: Path, settings: Settings) -> Path:
        """Import the model that ``config`` describes as ``name`` (replacing a folder of that name)."""
        source, values = self.read(config)
        return self.function(source, settings.models_dir, name, overwrite=True,
                             **{self.options[key]: value for key, value in values.items()})

    def read(self, config: Path) -> tuple[str, dict[str, Any]]:
        """What to import (a path relative to the config file's folder when that exists) and the options."""
        values = {k: v for k, v in read_config(config).items() if k not in META_KEYS}
        source = values.pop(FROM, None)
        if not isinstance(source, str) or not source:
            raise InvalidInput(f"{config}: `{FROM}` must name the model to import (owner/name on the Hugging Face "
                               "Hub, or a path)")
        unknown = sorted(set(values) - set(self.options))
        if unknown:
            raise InvalidInput(f"{config}: `{self.command}` has no option {', '.join(unknown)} (it takes "
                               f"{', '.join([FROM, *self.options])})")
        beside = Path(config).parent / source
        return (str(beside) if beside.exists() else source), values

    def command_line(self, name: str, config: Path) -> str:
        """The command that makes the same model (replacing the folder of that name)."""
        source, values = self.read(config)
        words = ["nlp-service", self.command, source, "--name", name]
        for key, value in values.items():
            flag = "--" + key.replace("_", "-")
            words += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
        return shlex.join([*words, "--overwrite"])


# The library functions, imported when run: reading the default models' list loads no model kind (nor torch).


def _convert_vectors(*args: Any, **kwargs: Any) -> Path:
    from ..vectors import convert_vectors

    return convert_vectors(*args, **kwargs)


def _import_marian(*args: Any, **kwargs: Any) -> Path:
    from ..translate import import_marian

    return import_marian(*args, **kwargs)


def _import_generator(*args: Any, **kwargs: Any) -> Path:
    from ..generate import import_generator

    return import_generator(*args, **kwargs)


IMPORTS: dict[str, Import] = {imp.command: imp for imp in (
    Import("convert", _convert_vectors, {"revision": "revision", "limit": "limit", "ann": "ann"}),
    Import("import-marian", _import_marian, {"revision": "revision", "source": "source_lang", "target": "target_lang"}),
    Import("import-generator", _import_generator, {"revision": "revision"}),
)}

__all__ = ["FROM", "IMPORTS", "Import"]
