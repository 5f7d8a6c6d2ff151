"""Translator training, end to end: parallel files -> cleaned, split pairs -> subword vocabularies
(training side only) -> seq2seq LSTM with attention -> sacreBLEU/chrF on the held-out test split ->
model folder (with ``split.json``, ``test.tsv``, ``metrics.json``, the training curve and the run's
options as ``params.toml``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import json_bytes
from ..data import PARALLEL_ES_EN
from ..options import CONFIG_FILE
from ..training import TRAINING_CURVE, Trainer, history_png, run_folder, start_run
from ._data import read_parallel, split_pairs
from ._metrics import translation_metrics
from ._model import Seq2SeqRuntime, TranslatorModel, translator_manifest
from ._params import LengthFilter, Seq2SeqParams, TranslatorRun

if TYPE_CHECKING:
    from ..config import Settings

N_SAMPLES = 12
TEST_FILE = "test.tsv"


def build_translator(run: TranslatorRun, params: Seq2SeqParams | None = None, length: LengthFilter | None = None, *,
                     settings: Settings | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train a ``run.source`` -> ``run.target`` translator and save it with its test scores.

    Each epoch is checkpointed under the cache folder; running the same command again after an
    interruption continues from the last completed epoch.
    """
    from ..torch_utils import count_parameters
    from ._seq2seq import decode_many
    from ._subwords import Subwords
    from ._train import train_seq2seq

    params = params or Seq2SeqParams()
    length = length or LengthFilter()
    settings = start_run(settings, run, params, length)
    if run.source == run.target:
        raise ValueError("source and target languages must differ")
    name = run.model_name
    data = read_parallel(run.data or list(PARALLEL_ES_EN), run.source, run.target, length=length,
                         fmt=None if run.format == "auto" else run.format, source_column=run.source_column,
                         target_column=run.target_column)
    split = split_pairs(len(data), validation=run.validation, test=run.test, seed=run.split_seed)
    if not split["train"] or not split["test"]:
        raise ValueError(f"too few pairs ({len(data)}) for a train/validation/test split")
    tr_src, tr_tgt, _ = data.subset(split["train"])
    va_src, va_tgt, _ = data.subset(split["validation"])
    te_src, te_tgt, te_origin = data.subset(split["test"])

    start = time.perf_counter()
    if params.joint_vocab:
        src_words = tgt_words = Subwords.train([*tr_src, *tr_tgt], vocab_size=params.vocab_size,
                                               algorithm=params.subword)
    else:
        src_words = Subwords.train(tr_src, vocab_size=params.vocab_size, algorithm=params.subword)
        tgt_words = Subwords.train(tr_tgt, vocab_size=params.vocab_size, algorithm=params.subword)
    subword_seconds = time.perf_counter() - start
    share = params.joint_vocab and params.tie_embeddings
    checkpoints = run_folder(settings.cache_dir / "checkpoints", name, {
        "params": params.fingerprint(), "data": data.fingerprint, "split": [run.split_seed, run.validation, run.test]})
    result = train_seq2seq(
        src_words.encode(tr_src, params.max_source_tokens), tgt_words.encode(tr_tgt, params.target_tokens),
        src_words.encode(va_src, params.max_source_tokens), va_tgt, source_vocab=len(src_words),
        target_vocab=len(tgt_words), params=params, detokenize=tgt_words.decode, share_embeddings=share,
        checkpoint_dir=checkpoints, device=run.device or settings.device, progress=progress,
    )

    start = time.perf_counter()
    hyps = tgt_words.decode(decode_many(result.model, src_words.encode(te_src, params.max_source_tokens),
                                        beam_size=run.beam_size))
    decode_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {
        "test": translation_metrics(hyps, te_tgt, te_origin) | {"beam_size": run.beam_size},
        "best_val_bleu": result.best_val_bleu, "best_epoch": result.best_epoch, "stopped": result.stopped,
        "train_seconds": result.seconds, "resumed_from_epoch": result.resumed_from_epoch, "device": result.device,
        "test_decode_seconds": round(decode_seconds, 2),
        "test_sentences_per_second": round(len(te_src) / max(decode_seconds, 1e-9), 1),
        "subword_seconds": round(subword_seconds, 2), "parameters": count_parameters(result.model),
        "vocabulary": {"source": len(src_words), "target": len(tgt_words), "joint": params.joint_vocab},
        "split": {k: len(v) for k, v in split.items()},
        "samples": [{"source": s, "reference": r, "translation": h}
                    for s, r, h in list(zip(te_src, te_tgt, hyps, strict=True))[:N_SAMPLES]],
        "history": result.history,
    }
    files = {
        "metrics.json": json_bytes(metrics),
        "split.json": json_bytes({"seed": run.split_seed, "validation": run.validation, "test": run.test,
                                  "data_sha256": data.fingerprint, **split}, compact=True),
        TEST_FILE: _test_tsv(te_src, te_tgt, te_origin, run.source, run.target).encode(),
        CONFIG_FILE: TRANSLATOR_TRAINER.config(dataclasses.replace(run, name=name), params, length).encode(),
    }
    curve = training_curve_png(result.history, f"{name} ({run.source}->{run.target})")
    if curve:
        files[TRAINING_CURVE] = curve
    manifest = translator_manifest(
        name, params={"seq2seq": dataclasses.asdict(params), "split_seed": run.split_seed,
                      "length_filter": dataclasses.asdict(length)},
        data={"files": data.files, "pairs": len(data), "dropped": data.dropped, "sha256": data.fingerprint},
        metrics=metrics, extra={"share_embeddings": share})
    model = TranslatorModel(name, manifest, run.source, run.target, Seq2SeqRuntime(result.model, src_words, tgt_words,
                                                                                  params))
    path = model.save(settings.models_dir, overwrite=run.overwrite, extra_files=files)
    result.run.finish()
    return path, metrics


def _test_tsv(sources: list[str], targets: list[str], origins: list[str], source: str, target: str) -> str:
    """The held-out pairs, so a benchmark can score other systems on exactly the same sentences."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow([source, target, "origin"])
    writer.writerows(zip(sources, targets, origins, strict=True))
    return buf.getvalue()


def read_test_split(model_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """Sources, references and origins of a trained model's test split (``test.tsv``)."""
    with open(Path(model_dir) / TEST_FILE, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return [r[0] for r in rows[1:]], [r[1] for r in rows[1:]], [r[2] for r in rows[1:]]


def training_curve_png(history: list[dict[str, Any]], title: str) -> bytes | None:
    return history_png(history, title, [("train cross-entropy (label-smoothed)", [("train_loss", "train")]),
                                        ("validation BLEU (greedy)", [("val_bleu", "BLEU")])])


TRANSLATOR_TRAINER = Trainer(
    command="translator", kind="translator",
    summary="Train a seq2seq translator (BiLSTM encoder, LSTM decoder, attention). Interrupted? Run it again: it "
            "resumes.",
    groups=(TranslatorRun, Seq2SeqParams, LengthFilter), train=build_translator,
    report=lambda m: {"test": m["test"], "best_epoch": m["best_epoch"], "stopped": m["stopped"],
                      "train_seconds": m["train_seconds"], "samples": m["samples"][:3]})
