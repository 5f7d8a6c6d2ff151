"""Translation pipeline: parallel files -> cleaned, split pairs -> subword vocabularies (training side only)
-> seq2seq LSTM with attention -> sacreBLEU/chrF on the held-out test split -> artifact."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nlp_service.translate import (
    LengthFilter,
    Seq2SeqParams,
    Subwords,
    decode_many,
    read_parallel,
    save_translator,
    seq2seq_files,
    split_pairs,
    train_seq2seq,
    translation_metrics,
)
from nlp_service.translate._seq2seq import count_parameters

from ._plots import history_png

N_SAMPLES = 12


def build_translator(
    paths: Sequence[Path], models_dir: Path, name: str, *, source: str, target: str,
    params: Seq2SeqParams | None = None, length: LengthFilter | None = None, validation: float = 0.05,
    test: float = 0.05, split_seed: int = 13, fmt: str | None = None, source_column: str | None = None,
    target_column: str | None = None, beam_size: int = 5, checkpoint_dir: Path | None = None,
    device: str = "auto", overwrite: bool = False, progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Train a ``source`` -> ``target`` translator and save it with its test scores.

    With ``checkpoint_dir``, each epoch is checkpointed there; running the same command again
    after an interruption continues from the last completed epoch.
    """
    params = params or Seq2SeqParams()
    params.validate()
    if source == target:
        raise ValueError("source and target languages must differ")
    data = read_parallel(paths, source, target, length=length, fmt=fmt, source_column=source_column,
                         target_column=target_column)
    split = split_pairs(len(data), validation=validation, test=test, seed=split_seed)
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
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir) / f"{name}-{params.fingerprint()}-{data.fingerprint[:12]}-{split_seed}"
    result = train_seq2seq(
        src_words.encode(tr_src, params.max_source_tokens), tgt_words.encode(tr_tgt, params.max_target_tokens),
        src_words.encode(va_src, params.max_source_tokens), va_tgt, source_vocab=len(src_words),
        target_vocab=len(tgt_words), params=params, detokenize=tgt_words.decode, share_embeddings=share,
        checkpoint_dir=checkpoint_dir, device=device, progress=progress,
    )

    start = time.perf_counter()
    hyps = tgt_words.decode(decode_many(result.model, src_words.encode(te_src, params.max_source_tokens),
                                        beam_size=beam_size))
    decode_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {
        "test": translation_metrics(hyps, te_tgt, te_origin) | {"beam_size": beam_size},
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
    curve = training_curve_png(result.history, f"{name} ({source}->{target})")
    write_seq2seq = seq2seq_files(result.model, src_words, tgt_words)

    def write(folder: Path) -> None:
        write_seq2seq(folder)
        (folder / "split.json").write_text(
            json.dumps({"seed": split_seed, "validation": validation, "test": test,
                                      "data_sha256": data.fingerprint, **split}), encoding="utf-8")
        (folder / "test.tsv").write_text(_test_tsv(te_src, te_tgt, te_origin, source, target), encoding="utf-8")
        if curve:
            (folder / "training_curve.png").write_bytes(curve)

    path = save_translator(
        models_dir, name, backend="seq2seq", source_lang=source, target_lang=target,
        params={"seq2seq": asdict(params), "split_seed": split_seed,
                "length_filter": asdict(length or LengthFilter())},
        data={"files": data.files, "pairs": len(data), "dropped": data.dropped, "sha256": data.fingerprint},
        metrics=metrics, write_files=write, extra={"share_embeddings": share}, overwrite=overwrite,
    )
    if checkpoint_dir is not None:  # the artifact now holds the result; the checkpoint is spent
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
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
    with open(Path(model_dir) / "test.tsv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return [r[0] for r in rows[1:]], [r[1] for r in rows[1:]], [r[2] for r in rows[1:]]


def training_curve_png(history: list[dict[str, Any]], title: str) -> bytes | None:
    return history_png(history, title, [("train cross-entropy (label-smoothed)", [("train_loss", "train")]),
                                        ("validation BLEU (greedy)", [("val_bleu", "BLEU")])])


__all__ = ["build_translator", "read_test_split", "training_curve_png"]
