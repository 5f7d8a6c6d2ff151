"""``nlp-service batch embed|classify|translate|generate``: a saved model over large files (the library's
:class:`~nlp_service.batch.BatchJob`), here or on Ray. Each task's own options (decoding, sampling) are the
library's option dataclasses, as in ``nlp-service translate`` / ``generate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer

from ..batch import BatchJob, get_task, task_names
from ..config import Device
from ..options import option
from ._app import app, echo_json, settings_for, user_errors
from ._options import derived_command

batch_app = typer.Typer(help="Run a saved model over large files (CSV/TSV, JSONL, Parquet, text; .gz/.bz2; globs "
                        "and folders), streamed, into resumable Parquet or JSONL parts; here or on Ray.",
                        no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@dataclass(kw_only=True)
class BatchRun:
    inputs: list[str] = option(help="Input files, globs ('data/*.csv.gz') or folders, read in that order.",
                               argument=True)
    output: Path = option(help="Output folder: numbered parts and _manifest.json. The same command resumes an "
                               "interrupted run there.")
    model: str | None = option(None, "Model name.", default_help="the default model of the task's kind")
    text_column: str = option("text", "Column (CSV/TSV header, JSONL field, Parquet column) with the texts; plain "
                                      "text files are one text a line.")
    id_column: str | None = option(None, "Column kept in the output to join results back (as text); every row "
                                         "also has its source file and row number.")
    input_format: Literal["csv", "tsv", "jsonl", "parquet", "text"] | None = option(
        None, "Input format, for names that do not tell.", flag="--format", default_help="from each file's name")
    output_format: Literal["parquet", "jsonl"] = option("parquet", "Output format.")
    part_rows: int = option(10_000, "Rows per output part (what a resumed run may redo); on Ray, rows per actor "
                                    "call.", min=1)
    batch_size: int | None = option(None, "Texts per forward pass (micro-batch); generate: texts decoded "
                                          "together (engine slots).", min=1,
                                    default_help="NLP_BATCH_MAX_SIZE; generate: NLP_GENERATION_MAX_BATCH")
    workers: int | None = option(None, "Classify, translate: batches the model runs at once, each forward pass "
                                       "on one CPU thread (on Ray: per actor).", min=1,
                                 default_help="one per core on the CPU (on Ray: the actor's CPUs), one on a GPU; "
                                 "NLP_BATCH_WORKERS")
    overwrite: bool = option(False, "Replace what the output folder holds instead of resuming.")
    device: Device | None = option(None, "Where the model runs: cpu, cuda or auto.", default_help="NLP_DEVICE")
    engine: Literal["local", "ray"] = option("local", "local: this process; ray: Ray Data (needs Ray: the "
                                                      "package's 'ray' extra).")
    address: str | None = option(None, "Ray: the cluster to join ('auto', 'ray://head:10001').",
                                 default_help="a local Ray on this machine")
    num_actors: int = option(1, "Ray: model actors (each loads the model once).", min=1)
    num_cpus_per_actor: float = option(1.0, "Ray: CPUs each actor reserves.", above=0)
    num_gpus_per_actor: float = option(0.0, "Ray: GPUs each actor reserves (e.g. 1, or 0.5 to share one).", min=0)
    summary_json: bool = option(False, "Print the summary as JSON (stdout) instead of a line.")


def _body(task: str) -> Any:
    def run(options: list[Any], models_dir: Path | None) -> None:
        batch, task_options = options[0], (options[1] if len(options) > 1 else None)
        settings = settings_for(models_dir, device=batch.device, batch_max_size=batch.batch_size,
                                generation_max_batch=batch.batch_size)
        try:
            with user_errors():
                job = BatchJob(task, batch.inputs, batch.output, model=batch.model, text_column=batch.text_column,
                               id_column=batch.id_column, input_format=batch.input_format,
                               output_format=batch.output_format, options=task_options, part_rows=batch.part_rows,
                               overwrite=batch.overwrite, settings=settings, workers=batch.workers)
                if batch.engine == "ray":
                    from ..batch import run_on_ray

                    summary = run_on_ray(job, address=batch.address, num_actors=batch.num_actors,
                                         num_cpus_per_actor=batch.num_cpus_per_actor,
                                         num_gpus_per_actor=batch.num_gpus_per_actor, block_rows=batch.part_rows,
                                         batch_size=batch.part_rows)
                else:
                    summary = job.run()
        except KeyboardInterrupt:
            typer.secho("interrupted; the parts written are kept: the same command resumes after them",
                        fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None
        if batch.summary_json:
            echo_json(summary.as_dict())
        else:
            typer.echo(str(summary))

    return run


for _name in task_names():
    _task = get_task(_name)
    derived_command(batch_app, _name, groups=(BatchRun, *([_task.options] if _task.options else [])),
                    body=_body(_name), help=_task.help)
