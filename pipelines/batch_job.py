"""Run a saved model over large files from a scheduled Python job: the library's BatchJob, as
`nlp-service batch` runs it. Resumable: run the same command again after an interruption.

    python pipelines/batch_job.py classify respuestas/*.csv.gz --output salida/ --model sentiment-es \
        --text-column respuesta --id-column id
    python pipelines/batch_job.py embed corpus.parquet --output vectores/ --engine ray --num-actors 4

Then, e.g. with pandas: ``pd.read_parquet("salida/")`` (the manifest, ``_manifest.json``, is skipped).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nlp_service.batch import BatchJob, run_on_ray, task_names
from nlp_service.config import Settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=task_names())
    p.add_argument("inputs", nargs="+", help="files, globs or folders (CSV/TSV, JSONL, Parquet, text; .gz/.bz2)")
    p.add_argument("--output", required=True, type=Path, help="output folder (parts + _manifest.json)")
    p.add_argument("--model", help="model name (default: the task's default model)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column")
    p.add_argument("--output-format", choices=("parquet", "jsonl"), default="parquet")
    p.add_argument("--models-dir", type=Path, help="default: NLP_MODELS_DIR or ./models")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="Ray cluster to join (default: a local Ray)")
    p.add_argument("--num-actors", type=int, default=1)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings = Settings(models_dir=args.models_dir) if args.models_dir else Settings()
    job = BatchJob(args.task, args.inputs, args.output, model=args.model, text_column=args.text_column,
                   id_column=args.id_column, output_format=args.output_format, overwrite=args.overwrite,
                   settings=settings)
    summary = run_on_ray(job, address=args.address, num_actors=args.num_actors) if args.engine == "ray" else job.run()
    print(summary)


if __name__ == "__main__":
    main()
