"""Vectors models, end to end: word2vec from raw text (tokens, cached -> phrases -> gensim -> evaluation
-> model folder), and pretrained vectors converted into the native store."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts import MANIFEST, ArtifactError, atomic_model_dir, verify_files, write_manifest
from ..data import DataError
from ..hub import ModelFiles, model_file
from ..options import CONFIG_FILE
from ..text import Tokenizer
from ..training import Trainer, start_run
from ._ann import ANN_FILE, OLD_ANN_FILE
from ._convert import LOWERCASED_FORMATS, ConversionError, VectorFormat, detect_format, packaged_vectors, read_vectors
from ._fetch import HUB_VECTORS_FILE
from ._model import STORE_DIR, VectorsModel, vectors_manifest
from ._params import FastTextParams, FastTextRun, Word2VecParams, Word2VecRun
from ._store import STORE_FILE, VectorStore
from ._train import evaluate_keyed_vectors, learn_phrases, tokenize_corpus, train_fasttext, train_word2vec

if TYPE_CHECKING:
    from ..config import Settings


def build_word2vec(run: Word2VecRun, params: Word2VecParams | None = None, tokenizer: Tokenizer | None = None, *,
                   settings: Settings | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train word2vec on ``run.corpus`` and save it (with an HNSW index, usearch, unless ``run.ann`` is false).

    The corpus is tokenized once into ``settings.cache_dir``; later runs on the same files and
    tokenizer reuse it.
    """
    w2v = params or Word2VecParams()
    return _build(run, w2v, tokenizer, WORD2VEC_TRAINER, lambda corpus: train_word2vec(corpus, w2v, progress=progress),
                  settings=settings, progress=progress)


def build_fasttext(run: FastTextRun, params: FastTextParams | None = None, tokenizer: Tokenizer | None = None, *,
                   settings: Settings | None = None, progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Train fastText (gensim's ``FastText``: words and character n-grams) on ``run.corpus``, or adapt the
    fastText ``.bin`` of ``run.init`` to it, and save it with its n-gram buckets, so a word it never saw gets
    a vector (the mean of its n-grams', as in fastText). Exports: Facebook's ``.bin`` and ``.vec`` too."""
    ft = params or FastTextParams()
    if run.init is not None and not Path(run.init).is_file():
        raise DataError(f"--init {run.init}: no such file")
    return _build(run, ft, tokenizer, FASTTEXT_TRAINER,
                  lambda corpus: train_fasttext(corpus, ft, init=run.init, progress=progress),
                  settings=settings, progress=progress)


def _build(run: Word2VecRun, params: Word2VecParams, tokenizer: Tokenizer | None, trainer: Trainer,
           train: Any, *, settings: Settings | None, progress: bool) -> tuple[Path, dict[str, Any]]:
    """Tokenize (cached) -> phrases -> ``train(corpus)`` -> evaluation -> store (+ ANN) -> model folder."""
    tokenizer = tokenizer or Tokenizer()
    settings = start_run(settings, run, params, tokenizer)
    for f in (run.eval_similarity, run.eval_analogy):
        if f is not None and not Path(f).is_file():
            raise DataError(f"no such evaluation file: {f}")
    start = time.perf_counter()
    corpus = [Path(c) for c in run.corpus]
    tokenized, tok_stats = tokenize_corpus(corpus, tokenizer, settings.cache_dir, column=run.column,
                                           workers=params.workers, progress=progress)
    phrases = None
    if params.phrases:
        tokenized, phrases = learn_phrases(tokenized, params, progress=progress)
    model, train_stats = train(tokenized)
    metrics: dict[str, Any] = {"tokenize": tok_stats, "train": train_stats}
    metrics.update(evaluate_keyed_vectors(model.wv, similarity_file=run.eval_similarity,
                                          analogy_file=run.eval_analogy))
    store = VectorStore.from_keyed_vectors(model.wv)
    metrics["pipeline_seconds"] = round(time.perf_counter() - start, 2)
    if run.ann and len(store) > 1:
        metrics["ann"] = store.build_ann(progress=progress)
    data: dict[str, Any] = {
        "source": trainer.command,
        "corpus": [{"path": str(c), "name": c.name, "size": c.stat().st_size} for c in corpus],
        "column": run.column,
        "sentences": tok_stats["sentences"],
        "tokens": tok_stats["words"],
        "phrases": len(phrases.phrasegrams) if phrases else 0,
    }
    init = getattr(run, "init", None)
    if init is not None:
        # The adapted model keeps the file's shape: record it, not the options it overrode.
        params = dataclasses.replace(params, vector_size=model.vector_size, window=model.window,  # type: ignore[call-arg]
                                     architecture="skipgram" if model.sg else "cbow", min_n=model.wv.min_n,
                                     max_n=model.wv.max_n, bucket=model.wv.bucket)
        data["init"] = {"path": str(init), "name": Path(init).name, "size": Path(init).stat().st_size,
                        "words": train_stats["vocabulary_before"]}
    manifest = vectors_manifest(run.name, params={trainer.command: dataclasses.asdict(params)}, data=data,
                                metrics=metrics)
    path = VectorsModel(run.name, manifest, store, tokenizer, phrases).save(
        settings.models_dir, overwrite=run.overwrite, exports=run.export or (), trained=model,
        extra_files={CONFIG_FILE: trainer.config(run, params, tokenizer).encode()})
    return path, metrics


def convert_vectors(
    source: str | Path,
    models_dir: Path,
    name: str,
    *,
    revision: str | None = None,
    fmt: VectorFormat | None = None,
    limit: int | None = None,
    ann: bool = True,
    tokenizer: Tokenizer | None = None,
    overwrite: bool = False,
    progress: bool = True,
    exports: Sequence[str] = (),
) -> Path:
    """Read a pretrained vectors file and write it as a native model (atomic), with an HNSW index
    and its measured recall unless ``ann`` is false, and word2vec ``exports`` (as ``train word2vec``).
    ``source`` is a file, or a Hugging Face Hub repository holding a fastText ``model.bin``
    (``owner/name[@revision]``, e.g. ``facebook/fasttext-es-vectors``), which the manifest records with its commit.

    Memory: reading is streamed for word2vec/GloVe text and binary (one copy of the kept words' matrix) and for
    fastText ``.bin`` (under 2 GB for the whole cc.es.300: the matrices go to disk in chunks and the model
    links them). The HNSW index is built in memory over every vector: for 2M x 300 that is the matrix
    (2.4 GB) plus the graph (~0.5 GB) and tens of minutes on a laptop, hence ``ann=False`` (``--no-ann``;
    ``convert --reindex`` adds it later) or ``limit``."""
    start = time.perf_counter()
    packaged = packaged_vectors(source)
    files = ModelFiles(packaged) if packaged else model_file(source, HUB_VECTORS_FILE, revision=revision,
                                                             what="vectors")
    fmt = fmt or detect_format(files.path)
    # A fastText .bin is streamed into files of a scratch folder beside the models (same filesystem), which
    # the save then links into the model folder; the scratch folder goes, whatever happens.
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=models_dir) as work:
        return _convert_store(source, files, fmt, models_dir, name, limit=limit, ann=ann, tokenizer=tokenizer,
                              overwrite=overwrite, progress=progress, exports=exports, packaged=packaged,
                              workdir=Path(work), start=start)


def _convert_store(source: str | Path, files: ModelFiles, fmt: VectorFormat, models_dir: Path, name: str, *,
                   limit: int | None, ann: bool, tokenizer: Tokenizer | None, overwrite: bool, progress: bool,
                   exports: Sequence[str], packaged: Path | None, workdir: Path, start: float) -> Path:
    store = read_vectors(files.path, fmt, limit=limit, progress=progress, workdir=workdir)
    if len(store) == 0:
        raise ConversionError(f"{source}: holds no vectors")
    metrics: dict[str, Any] = {"read_seconds": round(time.perf_counter() - start, 2)}
    if ann and len(store) > 1:
        metrics["ann"] = store.build_ann(progress=progress)
    # cc.es.300 keeps case and accents, and its tokens follow its own tokenizer: keep case by default;
    # GloVe 6B was trained on lowercased text.
    tokenizer = tokenizer or Tokenizer(lowercase=fmt in LOWERCASED_FORMATS or packaged is not None, keep_punct=True)
    size = sum(f.stat().st_size for f in files.path.iterdir()) if files.path.is_dir() else files.path.stat().st_size
    data = {**files.provenance, "source_name": files.path.name, "source_size": size}
    if packaged:
        data["package"] = _package_version(str(source))
    manifest = vectors_manifest(name, params={"limit": limit, "format": fmt}, data=data, metrics=metrics)
    return VectorsModel(name, manifest, store, tokenizer).save(models_dir, overwrite=overwrite, exports=exports)


def _package_version(distribution: str) -> str:
    """``name==version`` of an installed distribution (what a manifest records of packaged vectors)."""
    from importlib.metadata import version

    return f"{distribution}=={version(distribution)}"


def reindex_vectors(model_dir: Path, *, connectivity: int = 16, expansion_add: int = 200,
                    progress: bool = True) -> dict[str, Any]:
    """Rebuild a model's approximate index in place, e.g. one made with hnswlib (``convert --reindex``).

    The folder is replaced in one rename, as by any save: the new one links (or, across
    filesystems, copies) every other file of the old one, so a 2M-word model is not rewritten;
    a running service keeps its mappings of the old files. Every file is first checked against
    its sha256, since the new manifest hashes what it finds: a damaged file would be blessed.
    Returns the new index's parameters and recall (also in the manifest's ``metrics.ann``).
    """
    folder = Path(model_dir)
    model = VectorsModel.load(folder)
    verify_files(folder, model.manifest, checksums=True)
    store = model.store
    if len(store) < 2:
        raise ArtifactError(f"{folder}: {len(store)} vector(s): nothing to index")
    info = store.build_ann(connectivity=connectivity, expansion_add=expansion_add, progress=progress)
    replaced = {MANIFEST, f"{STORE_DIR}/{STORE_FILE}", f"{STORE_DIR}/{ANN_FILE}", f"{STORE_DIR}/{OLD_ANN_FILE}"}
    with atomic_model_dir(folder.parent, folder.name, overwrite=True) as tmp:
        for rel in model.manifest.files:
            if rel in replaced:
                continue
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(folder / rel, tmp / rel)
            except OSError:
                shutil.copy2(folder / rel, tmp / rel)
        (tmp / STORE_DIR).mkdir(exist_ok=True)
        store.save_ann(tmp / STORE_DIR)
        model.manifest.metrics["ann"] = info
        write_manifest(tmp, model.manifest)
    return info


WORD2VEC_TRAINER = Trainer(
    command="word2vec", kind="vectors",
    summary="Train word2vec (CBOW or skip-gram) from raw text and save it as a vectors model.",
    groups=(Word2VecRun, Word2VecParams, Tokenizer), train=build_word2vec, report=lambda m: {"metrics": m})
FASTTEXT_TRAINER = Trainer(
    command="fasttext", kind="vectors",
    summary="Train fastText vectors (words + character n-grams: every word gets a vector, typos and unseen "
            "inflections too) from raw text, or adapt a pretrained fastText .bin (cc.es.300) to it (--init).",
    groups=(FastTextRun, FastTextParams, Tokenizer), train=build_fasttext, report=lambda m: {"metrics": m})
