"""``nlp-service plot vectors`` and ``nlp-service plot attention``: PNG pictures of a saved model, drawn by
:mod:`nlp_service.plots` from the same numbers the service answers with (the vectors' lookups, the
translator's :meth:`~nlp_service.translate.TranslatorModel.translate_attended`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..config import Device
from ..options import option
from ..translate import DecodeOptions
from ._app import app, settings_for, user_errors
from ._options import derived_command

plot_app = typer.Typer(help="Draw a saved model's numbers as a PNG picture.", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


@dataclass(kw_only=True)
class _Vectors:
    words: list[str] = option(help="Words to place on the map.", argument=True)
    model: str | None = option(None, "Vectors model name.", default_help="NLP_DEFAULT_VECTORS_MODEL")
    neighbors: int = option(0, "Also place each word's K nearest neighbours.", min=0, max=50)
    output: Path | None = option(None, "PNG file to write.", default_help="vectors-<model>.png")


@dataclass(kw_only=True)
class _Attention:
    text: str = option(help="The text to translate.", argument=True)
    model: str | None = option(None, "Translator model name (a seq2seq one).",
                               default_help="NLP_DEFAULT_TRANSLATOR_MODEL")
    device: Device | None = option(None, "Where to run: cpu, cuda or auto.", default_help="NLP_DEVICE")
    output: Path | None = option(None, "PNG file to write.", default_help="attention-<model>.png")


def _write(path: Path, png: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    typer.echo(f"plot: {path}")


def _plot_vectors(options: list[Any], models_dir: Path | None) -> None:
    import numpy as np

    from ..plots import pca_2d, word_map_png
    from ..vectors import VectorsModel

    (run,) = options
    settings = settings_for(models_dir)
    with user_errors():
        name = run.model or settings.default_vectors_model
        model = VectorsModel.load(Path(settings.models_dir) / name)
        words = list(dict.fromkeys(run.words))  # each once, in order
        vectors = model.word_vectors(words, normalized=True)  # first: one error naming every word without one
        queries = [True] * len(words)
        if run.neighbors:
            found = {n.word for word in words for n in model.neighbors([word], topn=run.neighbors)} - set(words)
            extra = sorted(found)
            words += extra
            queries += [False] * len(extra)
            vectors += model.word_vectors(extra, normalized=True)
        coords = pca_2d(np.stack([vec for vec, _ in vectors]))
        png = word_map_png(words, coords, queries=queries, subwords=[src == "subwords" for _, src in vectors],
                           title=f"{name}: {len(words)} words, PCA to 2-D")
        _write(run.output or Path(f"vectors-{name}.png"), png)


def _plot_attention(options: list[Any], models_dir: Path | None) -> None:
    from ..plots import attention_png
    from ..translate import TranslatorModel

    run, decode = options
    settings = settings_for(models_dir)
    with user_errors():
        name = run.model or settings.default_translator_model
        model = TranslatorModel.load(Path(settings.models_dir) / name, device=run.device or settings.device)
        model.check_attention()
        model.check_lengths([run.text])
        (translation,) = model.translate_attended([run.text], beam_size=decode.beam_size,
                                                  max_length=decode.max_length, length_penalty=decode.length_penalty)
        attention = translation.attention
        assert attention is not None  # translate_attended always gives it
        png = attention_png(attention.source_tokens, attention.target_tokens, attention.weights,
                            title=f"{name} (beam {decode.beam_size}): {translation.text}")
        typer.echo(translation.text)
        _write(run.output or Path(f"attention-{name}.png"), png)


derived_command(plot_app, "vectors", groups=(_Vectors,), body=_plot_vectors,
                help="A map of words (and their nearest neighbours) projected to 2-D by PCA; words built from "
                "subwords (not in the vocabulary) in italics.")
derived_command(plot_app, "attention", groups=(_Attention, DecodeOptions), body=_plot_attention,
                help="The attention heat map of a text's translation (source pieces x target pieces), as "
                "/v1/translate's return_attention gives it.")
