#!/usr/bin/env python3
"""Compare classifiers on one labeled file: n-gram baselines and a recurrent network, trained on the same
stratified split and tested on the same held-out rows, in one table.

The usual first question about a new labeled survey question: is a bag of words enough, or does a
network help? Every model is saved (named PREFIX-<setting>), so the best one can be served at once.

    python pipelines/compare_classifiers.py respuestas.csv --text-column respuesta --label-column tema \\
        --prefix temas --cells lstm gru
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlp_service import get_settings
from nlp_service.classify import BowParams, BowRun, RecurrentRun, RNNParams, train_bow, train_recurrent

# Settings that led benchmarks/classify.py on review snippets, and a character n-gram model for
# texts with many typos.
BASELINES = (
    BowParams(features="tfidf", analyzer="word", ngram_min=1, ngram_max=2, classifier="nb"),
    BowParams(features="tfidf", analyzer="word", ngram_min=1, ngram_max=2, classifier="logreg"),
    BowParams(features="count", analyzer="char", ngram_min=2, ngram_max=5, classifier="linearsvc"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("data", nargs="+", type=Path, help="labeled CSV, TSV or JSONL files")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--prefix", required=True, help="model names are PREFIX-<setting>")
    parser.add_argument("--language", default="es", help="spaCy tokenizer rules (es, en, ...)")
    parser.add_argument("--cells", nargs="*", default=["lstm"], choices=["rnn", "lstm", "gru"],
                        help="recurrent cells to train (none: baselines only)")
    parser.add_argument("--epochs", type=int, default=RNNParams.epochs, help="most epochs of each network")
    parser.add_argument("--models-dir", type=Path, help="models folder (default: NLP_MODELS_DIR or ./models)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.models_dir is not None:
        settings = settings.model_copy(update={"models_dir": args.models_dir})
    common = {"data": args.data, "text_column": args.text_column, "label_column": args.label_column,
              "language": args.language, "overwrite": True}
    rows = []
    for params in BASELINES:
        path, metrics = train_bow(BowRun(name=f"{args.prefix}-{params.label}", **common), params, settings=settings)
        rows.append({"model": path.name, "kind": "bow", **_scores(metrics)})
    for cell in args.cells:
        path, metrics = train_recurrent(RecurrentRun(name=f"{args.prefix}-{cell}", **common),
                                        RNNParams(cell=cell, epochs=args.epochs), settings=settings)
        rows.append({"model": path.name, "kind": cell, **_scores(metrics), "best_epoch": metrics["best_epoch"]})
    rows.sort(key=lambda r: -r["macro_f1"])
    width = max(len(r["model"]) for r in rows)
    print(f"{'model':{width}}  {'accuracy':>8}  {'macro-F1':>8}", file=sys.stderr)
    for r in rows:
        print(f"{r['model']:{width}}  {r['accuracy']:8.4f}  {r['macro_f1']:8.4f}", file=sys.stderr)
    print(json.dumps(rows, indent=2))
    return 0


def _scores(metrics: dict[str, object]) -> dict[str, float]:
    test = metrics["test"]
    assert isinstance(test, dict)
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "test_rows": test["n"]}


if __name__ == "__main__":
    sys.exit(main())
