"""``nlp-service translate`` and ``nlp-service generate``: a saved model, used from the command line.
Their decoding options are the library's (:class:`~nlp_service.translate.DecodeOptions`,
:class:`~nlp_service.generate.SamplingParams`)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..config import Device
from ..generate import SamplingParams
from ..options import option
from ..translate import DecodeOptions
from ._app import app, settings_for, user_errors
from ._options import derived_command

_DEVICE_HELP = "Where to run: cpu, cuda or auto."


@dataclass(kw_only=True)
class _Translate:
    texts: list[str] = option(help="Texts to translate ('-' reads one per line from stdin).", argument=True)
    model: str | None = option(None, "Translator model name.", default_help="NLP_DEFAULT_TRANSLATOR_MODEL")
    device: Device | None = option(None, _DEVICE_HELP, default_help="NLP_DEVICE")


@dataclass(kw_only=True)
class _Generate:
    prompt: str = option(help="The prompt.", argument=True)
    model: str | None = option(None, "Generator model name.", default_help="NLP_DEFAULT_GENERATOR_MODEL")
    device: Device | None = option(None, _DEVICE_HELP, default_help="NLP_DEVICE")


def _translate(options: list[Any], models_dir: Path | None) -> None:
    from ..translate import TranslatorModel

    run, decode = options
    settings = settings_for(models_dir)
    texts = [line.strip() for line in sys.stdin if line.strip()] if run.texts == ["-"] else run.texts
    with user_errors():
        name = run.model or settings.default_translator_model
        translator = TranslatorModel.load(Path(settings.models_dir) / name, device=run.device or settings.device)
        translator.check_lengths(texts)
        for line in translator.translate(texts, beam_size=decode.beam_size, max_length=decode.max_length,
                                         length_penalty=decode.length_penalty):
            typer.echo(line)


def _generate(options: list[Any], models_dir: Path | None) -> None:
    from ..generate import GeneratorModel

    run, params = options
    settings = settings_for(models_dir)
    with user_errors():
        name = run.model or settings.default_generator_model
        gen = GeneratorModel.load(Path(settings.models_dir) / name, device=run.device or settings.device)
        # What the model's positions leave after the prompt, at most (the service answers 422 instead).
        room = gen.model.config.n_positions - len(gen.tokenizer(run.prompt, add_special_tokens=False)["input_ids"])
        params = dataclasses.replace(params, max_new_tokens=max(1, min(params.max_new_tokens, room)))
        text = gen.generate(run.prompt, **dataclasses.asdict(params))
    typer.echo(run.prompt + text)


derived_command(app, "translate", groups=(_Translate, DecodeOptions), body=_translate,
                help="Translate texts with a saved translator, one translation per line.")
derived_command(app, "generate", groups=(_Generate, SamplingParams), body=_generate,
                help="Continue a prompt with a saved generator model (prints the prompt and its continuation).")
