"""``nlp-service models`` (what the models folder holds) and ``nlp-service defaults`` (build the default
models that are missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import ModelsDir, app, echo_json, settings_for, user_errors

DefaultsDir = Annotated[Path | None, typer.Option(
    "--defaults-dir", envvar="NLP_DEFAULTS_DIR", file_okay=False, exists=True,
    help="Folder of default-model config files (w2v-es.toml, ...) that replace the shipped ones it has: other "
    "data, smaller budgets (default: NLP_DEFAULTS_DIR, else the shipped configs).")]


@app.command()
def defaults(
    models_dir: ModelsDir = None,
    only: Annotated[list[str] | None, typer.Option(help="Build only this default model (repeat).")] = None,
    defaults_dir: DefaultsDir = None,
) -> None:
    """Build the default models that are missing, up front (`make serve` builds them in the background instead:
    `serve --build-defaults`): from the shipped data, or with NLP_DEFAULTS=pretrained from Hugging Face Hub models
    where there are (each the demo instead, with a warning, when the Hub cannot be reached)."""
    from ..defaults import DEFAULT_MODELS, build_missing, run_as_background_build

    run_as_background_build()  # when a server started it: a lower priority, and it ends with the server
    settings = settings_for(models_dir)
    with user_errors():
        built = build_missing(settings, only=only, config_dir=defaults_dir)
    names = [m.name for m in DEFAULT_MODELS]
    typer.echo(f"built: {', '.join(built)}" if built else f"default models present: {', '.join(names)}")


@app.command()
def models(
    models_dir: ModelsDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """List the models in the models folder."""
    from ..artifacts import list_models

    settings = settings_for(models_dir)
    found = list_models(settings.models_dir)
    if as_json:
        echo_json([m.to_dict() | {"path": str(p)} for p, m in found])
        return
    if not found:
        typer.echo(f"no models in {settings.models_dir} (run `nlp-service defaults` or `make serve`)")
        return
    for _, m in found:
        size = sum(f.get("size", 0) for f in m.files.values())
        typer.echo(f"{m.name:24} {m.kind:10} {size / 1e6:9.1f} MB  {m.created_at}  {_summary(m.metrics)}")


def _summary(metrics: dict[str, Any]) -> str:
    parts = []
    if "train" in metrics:
        parts.append(f"vocab={metrics['train'].get('vocabulary')}")
    if "analogy" in metrics:
        parts.append(f"analogy_acc={metrics['analogy']['accuracy']}")
    if "similarity" in metrics:
        parts.append(f"spearman={metrics['similarity']['spearman']}")
    if "test" in metrics and "accuracy" in metrics["test"]:
        parts.append(f"test_acc={metrics['test']['accuracy']} macro_f1={metrics['test']['macro_f1']}")
    if "test" in metrics and "perplexity" in metrics["test"]:
        parts.append(f"test_perplexity={metrics['test']['perplexity']}")
    if "test" in metrics and "bleu" in metrics["test"]:
        parts.append(f"test_bleu={metrics['test']['bleu']} chrf={metrics['test']['chrf']}")
    if "ann" in metrics:
        parts.append(f"ann_recall@10={metrics['ann'].get('recall_at_10')}")
    return " ".join(parts)
