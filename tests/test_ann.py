"""The approximate index (usearch): concurrent queries with different ef, atomic saves listed in the
manifest, model folders with the old hnswlib index (exact fallback) and ``convert --reindex``."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from nlp_service.artifacts import ArtifactError, read_manifest, verify_files, write_manifest
from nlp_service.cli import app
from nlp_service.vectors import ANN_FILE, OLD_ANN_FILE, ExactIndex, HnswIndex, VectorsModel, VectorStore
from nlp_service.vectors._ann import _cores

# What the hnswlib code (up to the switch) wrote into store.json's "ann" and the manifest's metrics.ann.
OLD_PARAMS = {"library": "hnswlib", "space": "ip", "M": 16, "ef_construction": 200, "build_seconds": 0.5,
              "recall_at_10": 0.99, "recall_queries": 1000, "ef_search": 64}
WORDS = ["rey", "dios", "tierra", "agua", "hombre", "padre", "hijo", "casa", "pueblo", "mano"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def top(store: VectorStore, word: str, *, approximate: bool) -> list[tuple[str, float]]:
    return [(n.word, round(n.score, 6)) for n in store.most_similar([word], topn=10, approximate=approximate)]


# ---- the index -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """Gaussian vectors in 64 dimensions: no neighbourhood structure, so a small ef finds other
    neighbours than a large one (the race test needs results that depend on ef)."""
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((4000, 64), dtype=np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    path = tmp_path_factory.mktemp("ann") / ANN_FILE
    HnswIndex.build(unit, connectivity=8, expansion_add=32, progress=False).save(path)
    return unit, path


def test_query_matches_exact_search_at_high_ef(random_index: tuple[np.ndarray, Path]) -> None:
    unit, path = random_index
    index = HnswIndex.load(path)
    assert len(index) == len(unit)
    labels, sims = index.query(unit[:50], 10, ef=1000)
    exact_labels, exact_sims = ExactIndex(unit, {}).query(unit[:50], 10)
    assert labels.shape == sims.shape == (50, 10) and labels.dtype == np.int64
    # Each vector is its own nearest, when the graph reaches it: this sparse graph (built on several
    # threads, so not the same each time) leaves a node or two unreachable in about one build in four.
    assert (labels[:, 0] == np.arange(50)).sum() >= 47
    hits = sum(len(set(a) & set(e)) for a, e in zip(labels.tolist(), exact_labels.tolist(), strict=True))
    assert hits / labels.size >= 0.95
    found = labels[:, 0] == np.arange(50)
    np.testing.assert_allclose(sims[found, 0], exact_sims[found, 0], atol=2e-3)  # the index keeps float16
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    one_labels, _ = index.query(unit[7], 3, ef=64)  # one vector in, one row out
    assert one_labels.shape == (1, 3) and one_labels.tolist() == index.query(unit[6:8], 3, ef=64)[0][1:].tolist()
    assert index.query(unit[:2], 10_000)[0].shape == (2, len(unit))  # k is cut to the index's size


def test_concurrent_queries_with_different_ef_match_sequential(random_index: tuple[np.ndarray, Path]) -> None:
    """ef is a property of a usearch object: each search borrows a view of its own, so a thread's
    ef cannot leak into another's search."""
    unit, path = random_index
    index = HnswIndex.load(path)
    efs = (10, 12, 16, 24, 40, 64, 128, 400)
    jobs = [(q, ef) for q in range(60) for ef in efs]
    expected = {(q, ef): index.query(unit[q + 100], 10, ef=ef)[0].tolist() for q, ef in jobs}
    # The test has power: ef changes the answers on these vectors.
    assert sum(expected[q, 10] != expected[q, 400] for q in range(60)) >= 10

    barrier = threading.Barrier(8)

    def run(worker: int) -> list[tuple[tuple[int, int], list[list[int]]]]:
        barrier.wait()
        mine = jobs[worker::8] + jobs[: worker * 7 : 3]  # different orders and overlaps per thread
        return [((q, ef), index.query(unit[q + 100], 10, ef=ef)[0].tolist()) for q, ef in mine]

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [item for chunk in pool.map(run, range(8)) for item in chunk]
        mismatches = [key for key, got in results if got != expected[key]]
        assert mismatches == []
    assert 1 <= len(index._free) <= _cores()  # views opened on demand, never more than the cores


def test_save_is_atomic_and_listed_in_the_manifest(w2v_model: Path, tmp_path: Path) -> None:
    manifest = read_manifest(w2v_model)
    assert f"store/{ANN_FILE}" in manifest.files and f"store/{OLD_ANN_FILE}" not in manifest.files
    ann = manifest.metrics["ann"]
    assert ann["library"] == "usearch" and ann["metric"] == "ip"
    assert {"connectivity", "expansion_add", "build_seconds", "recall_at_10", "library_version"} <= set(ann)
    assert json.loads((w2v_model / "store" / "store.json").read_text())["ann"]["library"] == "usearch"
    verify_files(w2v_model, manifest, checksums=True)

    store = VectorsModel.load(w2v_model).store
    store.load_ann()
    store.save(tmp_path / "copy")  # a mapped index is saved by copying its file, through a temporary name
    assert sorted(p.name for p in (tmp_path / "copy").iterdir() if ANN_FILE in p.name) == [ANN_FILE]
    assert (tmp_path / "copy" / ANN_FILE).read_bytes() == (w2v_model / "store" / ANN_FILE).read_bytes()

    damaged = tmp_path / "damaged"
    shutil.copytree(w2v_model, damaged)
    data = bytearray((damaged / "store" / ANN_FILE).read_bytes())
    data[-5] ^= 0xFF
    (damaged / "store" / ANN_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"store/{ANN_FILE} does not match its sha256"):
        verify_files(damaged, read_manifest(damaged), checksums=True)


# ---- folders with the old hnswlib index ----------------------------------------------------------


def make_old_folder(w2v_model: Path, models: Path, name: str, *, with_hnswlib_file: bool) -> Path:
    """A copy of a trained model as the hnswlib release wrote it: store.json's and the manifest's index
    parameters from hnswlib, no usearch file; ``with_hnswlib_file``: also hnswlib's own hnsw.bin,
    written by hnswlib as the old code did (needs hnswlib installed)."""
    folder = models / name
    shutil.copytree(w2v_model, folder)
    (folder / "store" / ANN_FILE).unlink()
    if with_hnswlib_file:
        hnswlib = pytest.importorskip("hnswlib")
        unit = np.load(folder / "store" / "vectors.npy")
        index = hnswlib.Index(space="ip", dim=unit.shape[1])
        index.init_index(max_elements=len(unit), ef_construction=200, M=16, random_seed=100)
        index.add_items(unit, np.arange(len(unit)), num_threads=1)
        index.save_index(str(folder / "store" / OLD_ANN_FILE))
    meta = json.loads((folder / "store" / "store.json").read_text())
    meta["ann"] = dict(OLD_PARAMS)
    (folder / "store" / "store.json").write_text(json.dumps(meta, indent=2) + "\n")
    manifest = read_manifest(folder)
    manifest.metrics["ann"] = dict(OLD_PARAMS)
    manifest.libraries.pop("usearch", None)
    manifest.libraries["hnswlib"] = "0.8.0"
    write_manifest(folder, manifest)
    return folder


@pytest.mark.parametrize("with_hnswlib_file", [False, True], ids=["params-only", "real-hnsw.bin"])
def test_old_index_loads_and_answers_with_exact_search(
    w2v_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, with_hnswlib_file: bool
) -> None:
    folder = make_old_folder(w2v_model, tmp_path, "w2v-old", with_hnswlib_file=with_hnswlib_file)
    model = VectorsModel.load(folder)
    verify_files(folder, model.manifest, checksums=True)
    store = model.store
    assert store.has_ann and store.ann_is_old
    assert model.describe()["approximate_index"] is True
    with caplog.at_level(logging.WARNING, logger="nlp_service.vectors"):
        for word in WORDS:
            assert top(store, word, approximate=True) == top(store, word, approximate=False)
        assert isinstance(store.load_ann(), ExactIndex)
    said = [r.getMessage() for r in caplog.records if "old hnswlib index" in r.getMessage()]
    assert len(said) == 1  # once, not per query
    assert "approximate queries use exact search until `nlp-service convert --reindex" in said[0]
    assert str(folder) in said[0]


def test_convert_reindex_rebuilds_in_place(w2v_model: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    folder = make_old_folder(w2v_model, models, "w2v-old", with_hnswlib_file=False)
    before = VectorsModel.load(folder)  # a service holding the old folder's files while it is replaced
    vectors_before = (folder / "store" / "vectors.npy").read_bytes()
    old_files = set(read_manifest(folder).files)

    result = invoke("convert", "--reindex", "w2v-old", "--models-dir", str(models))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert Path(out["model"]) == folder and out["ann"]["library"] == "usearch"
    assert 0.9 <= out["ann"]["recall_at_10"] <= 1.0

    assert sorted(p.name for p in models.iterdir()) == ["w2v-old"]  # no .tmp-/.old- folder left
    manifest = read_manifest(folder)
    verify_files(folder, manifest, checksums=True)
    assert set(manifest.files) == old_files | {f"store/{ANN_FILE}"}
    assert manifest.metrics["ann"] == out["ann"] and manifest.metrics["train"] == before.manifest.metrics["train"]
    assert manifest.extra == before.manifest.extra and manifest.params == before.manifest.params
    assert (folder / "store" / "vectors.npy").read_bytes() == vectors_before
    assert (folder / "params.toml").is_file()

    after = VectorsModel.load(folder).store
    assert not after.ann_is_old and isinstance(after.load_ann(), HnswIndex)
    hits = sum(len({w for w, _ in top(after, w, approximate=True)} & {w for w, _ in top(after, w, approximate=False)})
               for w in WORDS)
    assert hits >= 0.9 * 10 * len(WORDS)
    for word in WORDS[:3]:  # the model loaded before still answers from its mapped (now unlinked) files
        assert top(before.store, word, approximate=True) == top(after, word, approximate=False)

    # A folder path works as well as a name, and a second reindex of a new index is harmless.
    again = invoke("convert", "--reindex", str(folder))
    assert again.exit_code == 0, again.output
    verify_files(folder, read_manifest(folder), checksums=True)


def test_convert_reindex_refuses_bad_input_and_keeps_the_folder(w2v_model: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    folder = make_old_folder(w2v_model, models, "w2v-old", with_hnswlib_file=False)

    result = invoke("convert", "--reindex", "w2v-old", "--name", "other", "--models-dir", str(models))
    assert result.exit_code == 2 and "--name do not apply with --reindex" in result.stderr
    result = invoke("convert", "--reindex", "missing", "--models-dir", str(models))
    assert result.exit_code == 1 and "error:" in result.stderr
    result = invoke("convert", "some.vec", "--models-dir", str(models))
    assert result.exit_code == 2 and "--name is required" in result.stderr

    vocab = folder / "store" / "vocab.txt"  # same size, one byte changed: only the sha256 tells
    data = bytearray(vocab.read_bytes())
    data[10] = ord("#") if data[10] != ord("#") else ord("%")
    vocab.write_bytes(bytes(data))
    manifest_before = (folder / "manifest.json").read_bytes()
    result = invoke("convert", "--reindex", "w2v-old", "--models-dir", str(models))
    assert result.exit_code == 1 and "does not match its sha256" in result.stderr
    assert (folder / "manifest.json").read_bytes() == manifest_before
    assert not (folder / "store" / ANN_FILE).exists()
    assert sorted(p.name for p in models.iterdir()) == ["w2v-old"]
