"""Translation quality and speed: our seq2seq translators against Apertium on the same test sentences.

For each translator model given (default: every translator in the models folder), the benchmark
reads the model's own held-out test split (``test.tsv``, saved by the training pipeline), translates
it with the model (beam search and greedy), runs Apertium (Debian's ``apertium`` +
``apertium-eng-spa``; skipped with a note when absent) on the same source sentences, and prints
sacreBLEU BLEU and chrF, overall and per data source, with sample translations, as JSON.

    python benchmarks/translation.py --models-dir models translate-es-en-lstm translate-en-es-lstm
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import cpu_model, log, package_versions, use_library

if TYPE_CHECKING:
    from nlp_service.translate import TranslatorModel

APERTIUM_PAIRS = {("es", "en"): "spa-eng", ("en", "es"): "eng-spa"}
N_SAMPLES = 8


def machine() -> dict[str, Any]:
    import torch

    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": package_versions(("torch", "tokenizers", "sacrebleu", "transformers", "nlp-service")),
            "loadavg_at_start": os.getloadavg()}


def apertium(sources: Sequence[str], source: str, target: str) -> dict[str, Any]:
    """Translate with Apertium, one sentence per line (``-u``: unknown words unmarked)."""
    pair = APERTIUM_PAIRS.get((source, target))
    if pair is None:
        return {"skipped": f"no Apertium pair for {source}->{target} here"}
    if shutil.which("apertium") is None:
        return {"skipped": "apertium is not installed (Debian: apt-get install apertium apertium-eng-spa)"}
    start = time.perf_counter()
    proc = subprocess.run(["apertium", "-u", pair], input="\n".join(sources) + "\n", capture_output=True,
                          text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"skipped": f"apertium {pair} failed: {proc.stderr.strip()[:300]}"}
    lines = proc.stdout.rstrip("\n").split("\n")
    if len(lines) != len(sources):
        return {"skipped": f"apertium returned {len(lines)} lines for {len(sources)} sentences"}
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "apertium-eng-spa"], capture_output=True,
                             text=True).stdout or None
    return {"translations": [line.strip() for line in lines], "seconds": round(seconds, 2),
            "sentences_per_second": round(len(sources) / seconds, 1), "system": f"apertium {pair}",
            "package_version": version}


def run_model(model: TranslatorModel, sources: list[str], beam_size: int, repeats: int) -> dict[str, Any]:
    times, out = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.translate(sources, beam_size=beam_size)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"translations": out, "seconds_median": round(median, 2), "seconds_all": [round(t, 2) for t in times],
            "sentences_per_second": round(len(sources) / median, 1)}


def bench_model(folder: Path, beams: list[int], repeats: int, limit: int | None) -> dict[str, Any]:
    from nlp_service.translate import TranslatorModel, read_test_split, translation_metrics

    model = TranslatorModel.load(folder)
    sources, references, origins = read_test_split(folder)
    if limit:
        sources, references, origins = sources[:limit], references[:limit], origins[:limit]
    m = model.manifest
    log(f"{folder.name}: {model.source_lang}->{model.target_lang}, {len(sources)} test sentences")
    report: dict[str, Any] = {
        "model": folder.name, "direction": f"{model.source_lang}->{model.target_lang}",
        "device": model.impl.device_name,
        "test_sentences": len(sources), "by_source_sentences": {o: origins.count(o) for o in sorted(set(origins))},
        "training": {k: m.metrics.get(k) for k in ("train_seconds", "best_epoch", "stopped", "best_val_bleu",
                                                   "parameters", "device")}
        | {"epochs_run": len(json.loads((folder / "metrics.json").read_text())["history"]),
           "params": m.params.get("seq2seq"), "data_pairs": m.data.get("pairs")},
        "systems": {},
    }
    outputs: dict[str, list[str]] = {}
    for beam in beams:
        name = f"seq2seq beam={beam}" if beam > 1 else "seq2seq greedy"
        log(f"  {name}")
        result = run_model(model, sources, beam, repeats)
        outputs[name] = result.pop("translations")
        report["systems"][name] = translation_metrics(outputs[name], references, origins) | result
    log("  apertium")
    ap = apertium(sources, model.source_lang, model.target_lang)
    if "translations" in ap:
        outputs["apertium"] = ap.pop("translations")
        report["systems"]["apertium"] = translation_metrics(outputs["apertium"], references, origins) | ap
    else:
        report["systems"]["apertium"] = ap
    best_ours = max((v["bleu"], k) for k, v in report["systems"].items() if k.startswith("seq2seq"))
    if "bleu" in report["systems"]["apertium"]:
        aper = report["systems"]["apertium"]
        ours = report["systems"][best_ours[1]]
        report["comparison"] = {"ours": best_ours[1], "bleu_ours": ours["bleu"], "bleu_apertium": aper["bleu"],
                                "chrf_ours": ours["chrf"], "chrf_apertium": aper["chrf"],
                                "beats_apertium_bleu": ours["bleu"] > aper["bleu"],
                                "beats_apertium_chrf": ours["chrf"] > aper["chrf"]}
    step = max(1, len(sources) // N_SAMPLES)
    report["samples"] = [{"source": sources[i], "reference": references[i], "origin": origins[i]}
                         | {k: v[i] for k, v in outputs.items()} for i in range(0, len(sources), step)][:N_SAMPLES]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="Translator model names (default: all in the models folder).")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("NLP_MODELS_DIR", "models")))
    parser.add_argument("--beam", type=int, action="append", help="Beam sizes to run (default: 1 and 5).")
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs per system (the median is reported).")
    parser.add_argument("--limit", type=int, help="Only the first N test sentences (quick runs).")
    parser.add_argument("--out", type=Path, help="Also write the JSON here.")
    args = parser.parse_args(argv)
    use_library()
    from nlp_service.artifacts import list_models

    names = args.models or [p.name for p, m in list_models(args.models_dir) if m.kind == "translator"]
    if not names:
        print(f"no translator models in {args.models_dir}; train one with `nlp-service train translator`",
              file=sys.stderr)
        return 1
    result = {"benchmark": "translation", "started": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(),
              "results": [bench_model(args.models_dir / n, sorted(set(args.beam or [1, 5])), args.repeats, args.limit)
                          for n in names]}
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
