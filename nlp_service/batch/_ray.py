"""The Ray engine: the same job on Ray Data (``pip install 'nlp-service[ray]'``; imported only here).

The input files are read by Ray read tasks with this package's own readers (so rows, numbering and row
errors are the local engine's), ``map_batches`` runs a pool of actors that each load the model once (a
:class:`~._job.Processor`, so results are the local engine's too), and Ray writes the output folder.
Without ``address`` a local Ray starts; ``address="auto"`` or ``"ray://head:10001"`` joins a cluster, whose
workers must see the input files and the models folder at the same paths (a shared file system).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ._inputs import InputFile, Row
from ._job import BatchJob, BatchSummary, Processor, _chunks, error_code
from ._outputs import MANIFEST, OutputExists, arrow_table, write_manifest

if TYPE_CHECKING:
    from ..config import Settings


def _row_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field("source", pa.string()), pa.field("row", pa.int64()), pa.field("id", pa.string()),
                      pa.field("text", pa.string()), pa.field("error", pa.string())])


def _rows_table(rows: list[Row]) -> Any:
    return arrow_table({"source": [r.source for r in rows], "row": [r.row for r in rows], "id": [r.id for r in rows],
                        "text": [r.text for r in rows], "error": [r.error for r in rows]}, _row_schema())


def _datasource(files: list[InputFile], text_column: str, id_column: str | None, block_rows: int) -> Any:
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class InputFiles(Datasource):  # type: ignore[misc]
        """One read task a file, yielding blocks of ``block_rows`` rows."""

        def estimate_inmemory_data_size(self) -> int:
            return sum(f.size for f in files)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            def read(f: InputFile) -> Iterator[Any]:
                for chunk in _chunks(f.rows(text_column, id_column), block_rows):
                    yield _rows_table(chunk)

            return [ReadTask(lambda f=f: read(f),  # type: ignore[misc]
                             BlockMetadata(num_rows=None, size_bytes=f.size, exec_stats=None,
                                           input_files=(str(f.path),)),
                             schema=_row_schema())
                    for f in files]

    return InputFiles()


class _ModelActor:
    """A Ray actor: loads the model once, then turns each batch of rows into output columns."""

    def __init__(self, task: str, model: str | None, options: Any, settings: Settings,
                 id_column: str | None, workers: int) -> None:
        self.processor = Processor(task, model, options, settings, id_column=id_column, workers=workers)

    def __call__(self, batch: Any) -> Any:
        cols = {name: batch.column(name).to_pylist() for name in ("source", "row", "id", "text", "error")}
        rows = [Row(*values) for values in zip(cols["source"], cols["row"], cols["id"], cols["text"], cols["error"],
                                               strict=True)]
        return arrow_table(self.processor.process(rows), self.processor.schema)


def run_on_ray(job: BatchJob, *, address: str | None = None, num_actors: int = 1, num_gpus_per_actor: float = 0.0,
               num_cpus_per_actor: float = 1.0, batch_size: int = 1024, block_rows: int = 10_000,
               ray_init: dict[str, Any] | None = None) -> BatchSummary:
    """Run ``job`` on Ray Data and return its summary. Output: Ray's Parquet (or JSONL) files in
    ``job.output`` plus a manifest; a Ray run does not resume (Ray retries failed tasks itself)."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput("the Ray engine needs Ray: pip install 'nlp-service[ray]'") from exc
    import pyarrow.dataset as pads

    if num_actors < 1 or batch_size < 1 or block_rows < 1:
        raise InvalidInput("num_actors, batch_size and block_rows must be at least 1")
    inputs = job.read_inputs()  # missing files or columns: an error before Ray starts
    output = Path(job.output)
    if output.exists() and any(output.iterdir()):
        if not job.overwrite:
            raise OutputExists(f"{output} is not empty; the Ray engine writes a new output (--overwrite replaces it)")
        import shutil

        shutil.rmtree(output)
    # The model, checked here before any work: its schema is the output's, its signature the manifest's.
    probe = job.processor()
    try:
        schema, signature = probe.schema, job.signature(inputs, probe)
    finally:
        probe.close()
    # Absolute paths: a Ray worker's working directory is not the driver's.
    settings = probe.settings.model_copy(update={"models_dir": Path(probe.settings.models_dir).resolve(),
                                                 "cache_dir": Path(probe.settings.cache_dir).resolve()})

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, **(ray_init or {}), log_to_driver=False)
    start = time.perf_counter()
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the output in input order, as the local engine's
        # Reading and writing take no CPU reservation: the actors hold the CPUs, and a read task waiting for a
        # CPU they hold would wait for ever (2 actors on a 2-CPU machine did).
        ds = ray.data.read_datasource(_datasource(inputs.files, job.text_column, job.id_column, block_rows),
                                      num_cpus=0, concurrency=min(2, len(inputs.files)))
        ds = ds.map_batches(_ModelActor, batch_size=batch_size, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=num_actors), num_cpus=num_cpus_per_actor,
                            num_gpus=num_gpus_per_actor or None,
                            fn_constructor_kwargs={"task": job.task, "model": job.model, "options": job.options,
                                                   "settings": settings, "id_column": job.id_column,
                                                   "workers": job.workers or max(1, int(num_cpus_per_actor))})
        write = ds.write_parquet if job.output_format == "parquet" else ds.write_json
        write(str(output), ray_remote_args={"num_cpus": 0})
    finally:
        if started_here:
            ray.shutdown()
    seconds = time.perf_counter() - start
    files = sorted(p for p in output.iterdir() if p.name != MANIFEST and not p.name.startswith("."))
    errors = pads.dataset([str(p) for p in files], format="parquet" if job.output_format == "parquet" else "json")
    column = errors.to_table(columns=["error"]).column("error").to_pylist()
    codes = Counter(error_code(e) for e in column if e is not None)
    summary = BatchSummary(job.task, signature["model"], "ray", output, len(column), sum(codes.values()),
                           round(seconds, 3), round(len(column) / seconds, 1) if seconds > 0 else 0.0,
                           parts=len(files), errors_by_code=dict(codes))
    write_manifest(output, {"format_version": 1, "signature": signature, "output_format": job.output_format,
                            "engine": "ray", "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
                            "parts": [{"file": p.name} for p in files], "rows": summary.rows,
                            "errors": summary.errors, "complete": True, "summary": summary.as_dict()})
    return summary
