#!/usr/bin/env python3
"""Train every model described by config files, one after another: a scheduled retraining job.

Each file is a training config (TOML or YAML) in the format of ``nlp-service train <command>
--config``; every trained model saves its own as ``params.toml``, so pointing this job at
``models/*/params.toml`` retrains them all on their data as it is now. A failed run is reported and
the job goes on with the next one; the exit code says whether all succeeded.

    python pipelines/retrain.py models/sentiment-es/params.toml mis-modelos/*.toml --suffix nuevo
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nlp_service import NLPServiceError, Settings, get_settings, get_trainer, read_config


def retrain(config: Path, settings: Settings, *, suffix: str, overwrite: bool) -> dict[str, object]:
    """Train the model ``config`` describes (named NAME-SUFFIX with a ``suffix``); its report."""
    command = read_config(config).get("command")
    if not isinstance(command, str):
        raise NLPServiceError(f"{config}: no `command` saying which training command it is for")
    trainer = get_trainer(command)
    values = trainer.read_config(config)
    if suffix:
        if not values.get("name"):
            raise NLPServiceError(f"{config}: no model name to add {suffix!r} to")
        values["name"] += f"-{suffix}"
    values["overwrite"] = overwrite
    start = time.perf_counter()
    path, metrics = trainer.train(*trainer.options(values), settings=settings)
    return {"config": str(config), "model": str(path), "seconds": round(time.perf_counter() - start, 1),
            **trainer.report(metrics)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("configs", nargs="+", type=Path, help="training config files (.toml, .yaml)")
    parser.add_argument("--models-dir", type=Path, help="models folder (default: NLP_MODELS_DIR or ./models)")
    parser.add_argument("--suffix", default="", help="name the new models NAME-SUFFIX (keeps the old ones)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing models of the same name")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.models_dir is not None:
        settings = settings.model_copy(update={"models_dir": args.models_dir})
    reports, failed = [], 0
    for config in args.configs:
        print(f"== {config}", file=sys.stderr, flush=True)
        try:
            reports.append(retrain(config, settings, suffix=args.suffix, overwrite=args.overwrite))
        except (NLPServiceError, ValueError, KeyError, OSError) as exc:
            failed += 1
            reports.append({"config": str(config), "error": str(exc)})
            print(f"error: {config}: {exc}", file=sys.stderr, flush=True)
    print(json.dumps(reports, indent=2, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
