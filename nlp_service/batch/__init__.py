"""Batch jobs: a saved model over large files, streamed, written as resumable Parquet or JSONL parts; run
here or on a Ray cluster. ``nlp-service batch embed|classify|translate|generate`` on the command line.

>>> from nlp_service.batch import BatchJob
>>> summary = BatchJob("classify", ["respuestas/*.csv.gz"], "salida/", model="sentiment-es",
...                    id_column="id").run()  # doctest: +SKIP

Results are the HTTP endpoints' for the same model and options: each text goes through the service's own
limits, micro-batchers and generation engine (:class:`Processor`). The Ray engine (:func:`run_on_ray`)
needs ``pip install 'nlp-service[ray]'``; nothing else here imports Ray.
"""

from .._lazy import lazy_attributes
from ._inputs import FORMATS, InputFile, Inputs, Row
from ._job import ENGINES, BatchJob, BatchSummary, Processor
from ._outputs import MANIFEST, OUTPUT_FORMATS, OutputExists, PartWriter
from ._tasks import BatchTask, EmbedOptions, get_task, register_task, task_names

# Imported on first use: Ray is optional, and only the Ray engine imports it.
__getattr__ = lazy_attributes(__name__, {"run_on_ray": "._ray"})


__all__ = [
    "ENGINES",
    "FORMATS",
    "MANIFEST",
    "OUTPUT_FORMATS",
    "BatchJob",
    "BatchSummary",
    "BatchTask",
    "EmbedOptions",
    "InputFile",
    "Inputs",
    "OutputExists",
    "PartWriter",
    "Processor",
    "Row",
    "get_task",
    "register_task",
    "run_on_ray",
    "task_names",
]
