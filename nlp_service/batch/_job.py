"""A batch job: a task over input files with one model, written as resumable parts; run here (the local
engine) or on Ray (:mod:`._ray`). :class:`Processor` is what both engines run: a service holding the one
model, turning rows into result columns."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..config import Settings
from ..errors import InvalidInput, NLPServiceError
from ._inputs import Inputs, Row
from ._outputs import PartWriter
from ._tasks import BatchTask, get_task

log = logging.getLogger("nlp_service.batch")

T = TypeVar("T")

ENGINES = ("local", "ray")
# Output columns every task has, besides its own; an id column may not take one of these names.
LOCATION_COLUMNS = ("source", "row")
TRAILING_COLUMNS = ("error", "model", "model_version")


def available_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _on_gpu(settings: Settings) -> bool:
    if settings.device != "auto":
        return settings.device == "cuda"
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _row_error(exc: NLPServiceError) -> str:
    # The service's messages name the request's texts; here each request is the row's one text.
    return f"{exc.code}: {str(exc).replace('texts[0]', 'the text', 1)}"


def error_code(error: str) -> str:
    return error.split(":", 1)[0]


class Processor:
    """One model, loaded once, in a :class:`~nlp_service.serving.Service` of its own: rows in, result columns
    out, each text through the task (the service's limits, micro-batchers and engine). The local engine
    holds one; on Ray, each actor does."""

    def __init__(self, task: str, model: str | None, options: Any, settings: Settings, *,
                 id_column: str | None = None, workers: int | None = None) -> None:
        import pyarrow as pa

        from ..serving import Service

        self.task: BatchTask = get_task(task)
        self.options = options
        name = model or self.task.default_model(settings)
        if name is None:
            raise InvalidInput(f"batch {task}: no model given and no default one is set (--model NAME)")
        self.in_flight = self.task.in_flight(settings)
        self.group_size = self.task.group_size(settings)
        # This job's model only, nothing built in the background, queues that hold what it keeps in flight.
        settings = settings.model_copy(update={
            "models": [name], "build_defaults": False,
            "batch_max_queue": max(settings.batch_max_queue, self.in_flight),
            "generation_max_queue": max(settings.generation_max_queue, self.in_flight),
            **self._parallel(settings, workers)})
        self.settings = settings
        self._threads_before: int | None = None  # torch's threads are the process's: given back by close()
        if settings.torch_threads is not None:
            import torch

            self._threads_before = torch.get_num_threads()
        self.service = Service(settings)
        self._runner = asyncio.Runner()
        try:
            self.service.models.load_all()
            self.model = self.task.model(self.service, name)
        except NLPServiceError as exc:
            self.close()
            reason = self.service.models.failed.get(name)
            if reason:
                exc.message = f"{exc.message}: {reason}"
            raise
        except BaseException:
            self.close()
            raise
        self.model_version = self.model.manifest.created_at
        if id_column in (*LOCATION_COLUMNS, *(f.name for f in self.task.fields(self.model)), *TRAILING_COLUMNS):
            raise InvalidInput(f"--id-column {id_column!r} has the name of an output column; rename it in the input")
        self.id_column = id_column
        self.schema = pa.schema([
            pa.field("source", pa.string()), pa.field("row", pa.int64()),
            *([pa.field(id_column, pa.string())] if id_column is not None else []),
            *self.task.fields(self.model),
            pa.field("error", pa.string()), pa.field("model", pa.string()), pa.field("model_version", pa.string())])

    def _parallel(self, settings: Settings, workers: int | None) -> dict[str, Any]:
        """A micro-batched model on the CPU runs ``workers`` batches at once (default: one per core), each
        forward pass on one thread: small models barely use a second thread (measured on 2 cores, the
        sentiment BiLSTM: 3,600 rows/s on two threads, 6,500 on one, 9,500 with two such workers). On a GPU,
        one worker; ``NLP_BATCH_WORKERS`` / ``NLP_TORCH_THREADS`` set explicitly are kept."""
        if not self.task.micro_batched:
            return {}
        if workers is None:
            if "batch_workers" in settings.model_fields_set:
                return {}
            workers = 1 if _on_gpu(settings) else available_cpus()
        if workers < 1:
            raise InvalidInput("workers must be at least 1")
        threads = settings.torch_threads if "torch_threads" in settings.model_fields_set else None
        return {"batch_workers": workers, "torch_threads": threads or (1 if workers > 1 else None)}

    def process(self, rows: Sequence[Row]) -> dict[str, list[Any]]:
        """The output columns of ``rows``, in their order."""
        return self._runner.run(self._process(rows))

    async def _process(self, rows: Sequence[Row]) -> dict[str, list[Any]]:
        results: list[tuple[dict[str, Any] | None, str | None]] = [
            (None, row.error or "missing_text: no text") for row in rows]
        # Texts of similar length go together (less padding in the model's batches); order is restored below.
        todo = sorted((i for i, row in enumerate(rows) if row.error is None and row.text is not None),
                      key=lambda i: len(rows[i].text or ""))
        size = self.group_size
        room = asyncio.Semaphore(max(1, self.in_flight // size))

        async def group(indices: list[int]) -> None:
            async with room:
                found = await self._run([rows[i] for i in indices])
            for i, result in zip(indices, found, strict=True):
                results[i] = result

        await asyncio.gather(*(group(todo[k : k + size]) for k in range(0, len(todo), size)))
        names = [f.name for f in self.schema]
        columns: dict[str, list[Any]] = {n: [] for n in names}
        result_names = [f.name for f in self.task.fields(self.model)]
        for row, (result, error) in zip(rows, results, strict=True):
            columns["source"].append(row.source)
            columns["row"].append(row.row)
            if self.id_column is not None:
                columns[self.id_column].append(row.id)
            for n in result_names:
                columns[n].append(None if result is None else result[n])
            columns["error"].append(error)
            columns["model"].append(self.model.name)
            columns["model_version"].append(self.model_version)
        return columns

    async def _run(self, rows: list[Row]) -> list[tuple[dict[str, Any] | None, str | None]]:
        """Each row's result or error: the rows as one request; if it fails, each half again, down to the row
        whose error it is (so its error is the endpoint's for that text alone)."""
        try:
            found = await self.task.run(self.service, self.model, [r.text for r in rows],  # type: ignore[misc]
                                        self.options)
            return [(result, None) for result in found]
        except NLPServiceError as exc:
            if len(rows) == 1:
                return [(None, _row_error(exc))]
        except Exception as exc:  # a bug must not end the job; the log has the traceback
            if len(rows) == 1:
                log.exception("%s: row %d of %s failed", self.task.name, rows[0].row, rows[0].source)
                return [(None, f"internal_error: {type(exc).__name__}: {exc}")]
        half = len(rows) // 2
        return [*await self._run(rows[:half]), *await self._run(rows[half:])]

    def close(self) -> None:
        try:
            self._runner.run(self.service.close())
        finally:
            self._runner.close()
            if self._threads_before is not None:
                import torch

                torch.set_num_threads(self._threads_before)


@dataclass
class BatchSummary:
    """What a job did: rows and errors in the output (``resumed_rows`` of them done by an earlier run),
    this run's seconds and rows a second."""

    task: str
    model: str
    engine: str
    output: Path
    rows: int
    errors: int
    seconds: float
    rows_per_second: float
    resumed_rows: int = 0
    parts: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    already_complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["output"] = str(self.output)
        return out

    def __str__(self) -> str:
        done = self.rows - self.resumed_rows
        text = (f"batch {self.task} ({self.model}, {self.engine}): {self.rows:,} rows, {self.errors:,} errors -> "
                f"{self.output} ({self.parts} parts)")
        if self.already_complete:
            return text + "; already complete (--overwrite runs it again)"
        text += f"; {done:,} rows this run in {self.seconds:.1f} s, {self.rows_per_second:,.0f} rows/s"
        if self.resumed_rows:
            text += f" (resumed after {self.resumed_rows:,} rows)"
        if self.errors_by_code:
            text += "; errors: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.errors_by_code.items()))
        return text


@dataclass
class BatchJob:
    """A task (``embed``, ``classify``, ``translate``, ``generate``) over ``inputs`` (files, globs, folders:
    CSV/TSV, JSONL, Parquet, plain text, optionally .gz/.bz2) with one saved model, written to the folder
    ``output`` as Parquet (or JSONL) parts. ``options``: the task's options (``DecodeOptions`` for translate,
    ``SamplingParams`` for generate, ``EmbedOptions`` for embed), defaults when None. ``workers``: batches a
    classifier or translator runs at once (default: one per core on the CPU, one on a GPU)."""

    task: str
    inputs: Sequence[str | Path]
    output: str | Path
    model: str | None = None
    text_column: str = "text"
    id_column: str | None = None
    input_format: str | None = None
    output_format: str = "parquet"
    options: Any = None
    part_rows: int = 10_000
    overwrite: bool = False
    settings: Settings | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if self.options is None and task.options is not None:
            self.options = task.options()
        if self.part_rows < 1:
            raise InvalidInput("part_rows must be at least 1")

    def read_inputs(self) -> Inputs:
        """The input files, found and checked (columns, formats) before any work."""
        return Inputs(self.inputs, text_column=self.text_column, id_column=self.id_column, format=self.input_format)

    def signature(self, inputs: Inputs, processor: Processor) -> dict[str, Any]:
        """What makes two runs the same job (one may resume the other)."""
        options = dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else None
        return {"task": self.task, "model": processor.model.name, "model_version": processor.model_version,
                "options": _plain(options), "inputs": inputs.describe(), "text_column": self.text_column,
                "id_column": self.id_column, "output_format": self.output_format}

    def processor(self) -> Processor:
        return Processor(self.task, self.model, self.options, self.settings or Settings(), id_column=self.id_column,
                         workers=self.workers)

    def run(self, *, progress: bool | None = None) -> BatchSummary:
        """Run here (the local engine); resumes an interrupted run of the same job. ``progress``: a progress
        bar on stderr (default: when stderr is a terminal; otherwise a log line a part)."""
        inputs = self.read_inputs()
        processor = self.processor()
        try:
            writer = PartWriter(Path(self.output), output_format=self.output_format, schema=processor.schema,
                                signature=self.signature(inputs, processor), overwrite=self.overwrite)
            return _run_local(self, inputs, processor, writer, progress)
        finally:
            processor.close()


def _plain(value: Any) -> Any:
    """JSON's view of options (tuples as lists), so a manifest read back compares equal."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced by a thread of their own up to ``depth`` ahead: reading and parsing the next part
    overlaps the model's work on this one. An error of the reader is raised here, in order; leaving the loop
    stops the reader."""
    done = object()
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((done, exc))

    reader = threading.Thread(target=read, name="batch-reader", daemon=True)
    reader.start()
    try:
        while True:
            item, error = ahead.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        reader.join()


def _run_local(job: BatchJob, inputs: Inputs, processor: Processor, writer: PartWriter,
               progress: bool | None) -> BatchSummary:
    resumed = writer.rows_done
    summary = BatchSummary(job.task, processor.model.name, "local", writer.folder, resumed, writer.errors_done, 0.0,
                           0.0, resumed_rows=resumed, parts=len(writer.parts))
    if writer.complete:
        summary.already_complete = True
        summary.errors_by_code = dict((writer.summary or {}).get("errors_by_code", {}))
        return summary
    if resumed:
        log.info("batch %s: resuming %s after %d rows (%d parts)", job.task, writer.folder, resumed, len(writer.parts))
    show_bar = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=inputs.total_bytes, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                   desc=f"batch {job.task}", file=sys.stderr, mininterval=0.5)
    codes: Counter[str] = Counter((writer.summary or {}).get("errors_by_code", {}))
    start = time.perf_counter()
    done = 0
    try:
        for chunk in _read_ahead(_chunks(inputs.rows(skip=resumed), job.part_rows)):
            columns = processor.process(chunk)
            errors = [e for e in columns["error"] if e is not None]
            codes.update(error_code(e) for e in errors)
            writer.write(columns, first_row=resumed + done, errors=len(errors))
            done += len(chunk)
            elapsed = time.perf_counter() - start
            if bar is not None:
                bar.update(inputs.bytes_read - bar.n)
                bar.set_postfix_str(f"{resumed + done:,} rows, {done / elapsed:,.0f} rows/s, "
                                    f"{writer.errors_done:,} errors", refresh=False)
            else:
                log.info("batch %s: part %d written, %s rows, %.0f rows/s, %.0f%% of the input read", job.task,
                         len(writer.parts) - 1, f"{resumed + done:,}", done / elapsed,
                         100 * inputs.bytes_read / max(inputs.total_bytes, 1))
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    summary.rows, summary.errors, summary.parts = writer.rows_done, writer.errors_done, len(writer.parts)
    summary.seconds = round(seconds, 3)
    summary.rows_per_second = round(done / seconds, 1) if seconds > 0 else 0.0
    summary.errors_by_code = dict(codes)
    writer.finish(summary.as_dict())
    return summary
