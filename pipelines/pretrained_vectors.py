#!/usr/bin/env python3
"""Get the published Spanish fastText vectors (cc.es.300) ready to serve: download (resumable, size-checked)
and convert into the native store, as one job.

Without internet, download cc.es.300.bin.gz elsewhere and give it with --source.

    python pipelines/pretrained_vectors.py --limit 200000               # ~4.5 GB download, then 1-2 min
    python pipelines/pretrained_vectors.py --source /datos/cc.es.300.bin.gz --name cc-es-full
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlp_service import NLPServiceError, get_settings, read_manifest
from nlp_service.vectors import convert_vectors, fetch_cc_es


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--source", type=Path, help="a cc.es.300 file already on disk (skips the download)")
    parser.add_argument("--format", choices=["bin", "vec"], default="bin",
                        help="bin keeps subwords for unseen words; vec is smaller")
    parser.add_argument("--url", help="another address (a mirror)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the server")
    parser.add_argument("--name", default="cc-es", help="model name")
    parser.add_argument("--limit", type=int, help="keep the N most frequent words")
    parser.add_argument("--no-ann", action="store_true", help="no approximate-search index")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model of that name")
    parser.add_argument("--models-dir", type=Path, help="models folder (default: NLP_MODELS_DIR or ./models)")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        source = args.source or fetch_cc_es(settings.cache_dir / "downloads", args.format, url=args.url,
                                            timeout=args.timeout)
        path = convert_vectors(source, args.models_dir or settings.models_dir, args.name, limit=args.limit,
                               ann=not args.no_ann, overwrite=args.overwrite)
    except NLPServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"model": str(path), "metrics": read_manifest(path).metrics}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
