from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from nlp_service.artifacts import read_manifest
from nlp_service.config import Settings
from nlp_service.data import DataError
from nlp_service.defaults import DEFAULT_MODELS, build_missing
from nlp_service.text import Tokenizer
from nlp_service.vectors import VectorsModel, Word2VecParams, Word2VecRun, build_word2vec

FAST = {"vector_size": 16, "min_count": 2, "epochs": 2, "workers": 2}


def env(tmp_path: Path, models: str = "models") -> Settings:
    return Settings(models_dir=tmp_path / models, cache_dir=tmp_path / "cache")


def test_english_lee_corpus_with_gensim_evaluation_sets(tmp_path: Path) -> None:
    run = Word2VecRun(corpus=[Path(datapath("lee_background.cor"))], name="lee",
                      eval_similarity=Path(datapath("wordsim353.tsv")),
                      eval_analogy=Path(datapath("questions-words.txt")),
                      export=["word2vec-text", "word2vec-binary"], ann=False)
    path, _ = build_word2vec(run, Word2VecParams(architecture="cbow", loss="hs", **FAST), Tokenizer(),
                             settings=env(tmp_path), progress=False)
    manifest = read_manifest(path)
    assert manifest.params["word2vec"]["architecture"] == "cbow" and manifest.params["word2vec"]["loss"] == "hs"
    sim = manifest.metrics["similarity"]
    assert sim["file"] == "wordsim353.tsv" and -1 <= sim["spearman"] <= 1 and 0 < sim["oov_percent"] < 100
    ana = manifest.metrics["analogy"]
    assert ana["questions_answered"] > 0 and 0 <= ana["accuracy"] <= 1
    assert manifest.metrics["train"]["words_per_second"] > 0
    assert manifest.data["tokens"] == manifest.metrics["tokenize"]["words"] > 50_000
    store = VectorsModel.load(path).store
    for name, binary in (("vectors.txt", False), ("vectors.bin", True)):
        exported = KeyedVectors.load_word2vec_format(str(path / name), binary=binary)
        assert list(exported.index_to_key) == store.words
        np.testing.assert_allclose(exported.vectors, np.asarray(store.unit) * np.asarray(store.norms)[:, None],
                                   rtol=1e-4, atol=1e-5)
    assert {"vectors.txt", "vectors.bin", "store/vectors.npy"} <= set(manifest.files)


def test_phrases_are_learned_stored_and_applied_at_query_time(corpus_file: Path, tmp_path: Path) -> None:
    params = Word2VecParams(phrases=True, phrases_min_count=5, phrases_threshold=5.0, **FAST)
    path, _ = build_word2vec(Word2VecRun(corpus=[corpus_file], name="ph", ann=False), params, Tokenizer(),
                             settings=env(tmp_path), progress=False)
    model = VectorsModel.load(path)
    assert model.phrases is not None and read_manifest(path).data["phrases"] > 0
    phrase = next(p for p in model.phrases.phrasegrams if p in model.store)
    first, second = phrase.split("_", 1)
    assert model.tokens(f"{first.capitalize()} {second}") == [phrase]


def test_cache_is_reused_and_same_seed_same_vectors(corpus_file: Path, tmp_path: Path) -> None:
    params = Word2VecParams(seed=11, **{**FAST, "workers": 1})
    p1, m1 = build_word2vec(Word2VecRun(corpus=[corpus_file], name="a", ann=False), params, settings=env(tmp_path),
                            progress=False)
    p2, m2 = build_word2vec(Word2VecRun(corpus=[corpus_file], name="b", ann=False), params, settings=env(tmp_path),
                            progress=False)
    assert m1["tokenize"]["cached"] is False and m2["tokenize"]["cached"] is True
    np.testing.assert_array_equal(VectorsModel.load(p1).store.unit, VectorsModel.load(p2).store.unit)
    # A different tokenizer is a different cache entry.
    _, m3 = build_word2vec(Word2VecRun(corpus=[corpus_file], name="c", ann=False), params,
                           Tokenizer(strip_accents=True), settings=env(tmp_path), progress=False)
    assert m3["tokenize"]["cached"] is False


def test_csv_column_input(tmp_path: Path) -> None:
    import csv
    import gzip
    import itertools

    from nlp_service.data import DATASETS_DIR

    src = DATASETS_DIR / "corpus_es" / "fortunes_es.txt.gz"
    path = tmp_path / "respuestas.csv"
    with gzip.open(src, "rt", encoding="utf-8") as fh, open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "respuesta"])
        for i, line in enumerate(itertools.islice(fh, 3000)):
            writer.writerow([i, line.strip()])
    path_model, metrics = build_word2vec(Word2VecRun(corpus=[path], name="csv", column="respuesta", ann=False),
                                         Word2VecParams(**FAST), settings=env(tmp_path), progress=False)
    assert metrics["tokenize"]["sentences"] == 3000
    assert "amor" in VectorsModel.load(path_model).store


def test_bad_inputs_fail_before_anything_is_written(tmp_path: Path, corpus_file: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    models = tmp_path / "models"
    settings = env(tmp_path)
    with pytest.raises(DataError, match="no tokens"):
        build_word2vec(Word2VecRun(corpus=[empty], name="x"), Word2VecParams(**FAST), settings=settings,
                       progress=False)
    with pytest.raises(DataError, match="min_count=100000"):
        build_word2vec(Word2VecRun(corpus=[corpus_file], name="x"), Word2VecParams(**{**FAST, "min_count": 100_000}),
                       settings=settings, progress=False)
    with pytest.raises(ValueError, match="export must be one of word2vec-text, word2vec-binary, not 'glove'"):
        build_word2vec(Word2VecRun(corpus=[corpus_file], name="x", export=["glove"]),  # type: ignore[list-item]
                       settings=settings, progress=False)
    with pytest.raises(ValueError, match="vector_size must be at least 1"):
        build_word2vec(Word2VecRun(corpus=[corpus_file], name="x"), Word2VecParams(vector_size=0),
                       settings=settings, progress=False)
    with pytest.raises(DataError, match="no such corpus file"):
        build_word2vec(Word2VecRun(corpus=[tmp_path / "nope.txt"], name="x"), settings=settings, progress=False)
    assert not models.exists() or [p.name for p in models.iterdir()] == []


def test_defaults_skip_models_that_exist(w2v_model: Path, tmp_path: Path) -> None:
    assert {m.name for m in DEFAULT_MODELS} >= {"w2v-es", "bow-es", "sentiment-es", "translate-es-en", "gpt2-es"}
    for spec in DEFAULT_MODELS:  # any model folder under the default's name counts as present
        shutil.copytree(w2v_model, tmp_path / spec.name)
    assert build_missing(Settings(models_dir=tmp_path, cache_dir=tmp_path / "c"), progress=False) == []


def test_vocabulary_from_tokenizer_counts_equals_gensims_scan(corpus_file: Path, tmp_path: Path) -> None:
    """Training skips gensim's vocabulary scan: the counts gathered while tokenizing must agree."""
    from gensim.models import Word2Vec

    from nlp_service.vectors import tokenize_corpus, train_word2vec

    corpus, _ = tokenize_corpus([corpus_file], Tokenizer(), tmp_path, workers=2, progress=False)
    ours, _ = train_word2vec(corpus, Word2VecParams(**{**FAST, "epochs": 1}), progress=False)
    ref = Word2Vec(vector_size=16, min_count=2)
    ref.build_vocab(corpus_file=str(corpus.path))
    assert ours.wv.index_to_key == ref.wv.index_to_key
    assert (ours.corpus_count, ours.corpus_total_words) == (ref.corpus_count, ref.corpus_total_words)
    assert [ours.wv.get_vecattr(w, "count") for w in ours.wv.index_to_key[:50]] == \
        [ref.wv.get_vecattr(w, "count") for w in ref.wv.index_to_key[:50]]
