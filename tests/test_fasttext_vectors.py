"""fastText vectors trained here (``train fasttext``): every word gets a vector, equal to gensim's and the fastText
library's for the same model; Facebook .bin export and its round trip through ``convert``; adapting a pretrained
.bin to a domain corpus; served like converted cc.es.300."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from gensim.models.fasttext import load_facebook_vectors
from typer.testing import CliRunner

from nlp_service.api import create_app
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR, DataError
from nlp_service.text import Tokenizer
from nlp_service.vectors import FastTextParams, FastTextRun, VectorsModel, build_fasttext, convert_vectors

from .helpers import post, ready_client

# Small and quick, but real: 32 dimensions, 20k buckets, every n-gram size of fastText's default.
PARAMS = FastTextParams(vector_size=32, min_count=3, epochs=3, bucket=20_000, workers=2, seed=3)
OOV = ["evangelizadoramente", "jerusalen", "discipulso"]  # unseen: a long derivation, two typos


def _raw(model: VectorsModel, word: str) -> np.ndarray:
    return model.word_vectors([word])[0][0]


@pytest.fixture(scope="module")
def fasttext_model(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    root = tmp_path_factory.mktemp("fasttext")
    settings = Settings(models_dir=root / "models", cache_dir=root / "cache", device="cpu", preload_ann=False)
    run = FastTextRun(corpus=[corpus_file], name="ft-biblia", export=["fasttext-bin", "fasttext-vec"], ann=False)
    path, _ = build_fasttext(run, PARAMS, Tokenizer(), settings=settings, progress=False)
    return path, settings


def test_every_word_has_the_vector_gensim_gives(fasttext_model: tuple[Path, Settings]) -> None:
    """The exported Facebook .bin, read by gensim, is the model: in-vocabulary vectors and the vectors of unseen
    words (means of their n-gram buckets) equal ours."""
    path, _ = fasttext_model
    model = VectorsModel.load(path)
    kv = load_facebook_vectors(str(path / "model.bin"))
    assert model.store.words == list(kv.index_to_key) and model.store.subwords is not None
    np.testing.assert_allclose(np.asarray(model.store.unit) * np.asarray(model.store.norms)[:, None], kv.vectors,
                               rtol=1e-5, atol=1e-6)
    for word in OOV:
        assert word not in kv.key_to_index and model.word_vectors([word])[0][1] == "subwords"
        np.testing.assert_allclose(_raw(model, word), kv[word], rtol=1e-5, atol=1e-6)
    assert (path / "vectors.vec").read_text(encoding="utf-8").split("\n", 1)[0] == f"{len(kv)} 32"


def test_the_fasttext_library_reads_the_export_alike(fasttext_model: tuple[Path, Settings]) -> None:
    fasttext = pytest.importorskip("fasttext", reason="pip install 'nlp-service[fasttext]'")
    path, _ = fasttext_model
    model = VectorsModel.load(path)
    theirs = fasttext.load_model(str(path / "model.bin"))
    for word in [*OOV, "jesús", "dios"]:
        np.testing.assert_allclose(_raw(model, word), theirs.get_word_vector(word), rtol=1e-4, atol=1e-5)


def test_bin_round_trip_through_convert(fasttext_model: tuple[Path, Settings], tmp_path: Path) -> None:
    path, _ = fasttext_model
    model = VectorsModel.load(path)
    converted = VectorsModel.load(convert_vectors(path / "model.bin", tmp_path, "again", ann=False, progress=False))
    assert converted.store.words == model.store.words
    np.testing.assert_allclose(converted.store.unit, model.store.unit, atol=1e-6)
    for word in OOV:
        np.testing.assert_allclose(_raw(converted, word), _raw(model, word), rtol=1e-5, atol=1e-6)


def test_served_like_converted_cc_es(fasttext_model: tuple[Path, Settings]) -> None:
    path, settings = fasttext_model
    with ready_client(create_app(settings.model_copy(update={"default_vectors_model": path.name}))) as client:
        body = post(client, "/v1/embeddings/words", {"model": path.name, "words": [OOV[1], "dios"]})
        assert [v["source"] for v in body["vectors"]] == ["subwords", "vocabulary"]
        np.testing.assert_allclose(body["vectors"][0]["vector"], _raw(VectorsModel.load(path), OOV[1]), atol=1e-6)
        near = post(client, "/v1/neighbors", {"model": path.name, "word": "jerusalen", "topn": 5})
        assert near["neighbors"][0]["word"] == "jerusalem"  # (RV1909 spelling) one letter off: still found


def _domain_file(folder: Path) -> Path:
    """3,000 lines of the shipped Spanish manual pages: computing words the Bible verses never use."""
    path = folder / "manpages.txt"
    with gzip.open(DATASETS_DIR / "corpus_es" / "manpages_es.txt.gz", "rt", encoding="utf-8") as src:
        path.write_text("".join(itertools.islice(src, 3000)), encoding="utf-8")
    return path


def test_adapting_a_pretrained_bin(fasttext_model: tuple[Path, Settings], tmp_path: Path) -> None:
    """``--init model.bin``: the corpus's new words join the vocabulary and get trained vectors; general words the
    domain corpus never uses stay close to where they were."""
    base_path, settings = fasttext_model
    base = VectorsModel.load(base_path)
    domain = _domain_file(tmp_path)
    run = FastTextRun(corpus=[domain], name="ft-adapted", init=base_path / "model.bin", ann=False)
    # One worker: no tokenizer processes forked from this process, which the served test left with threads.
    path, metrics = build_fasttext(run, FastTextParams(min_count=3, epochs=3, workers=1), Tokenizer(),
                                   settings=settings, progress=False)
    adapted = VectorsModel.load(path)
    train = metrics["train"]
    assert train["vocabulary_before"] == len(base.store) and train["words_added"] > 100
    assert adapted.store.words[: len(base.store)] == base.store.words  # the pretrained vocabulary, in its order
    # the file's shape is kept (and recorded), whatever the options said
    params = adapted.manifest.params["fasttext"]
    assert (params["vector_size"], params["bucket"], adapted.store.dim) == (32, 20_000, 32)
    assert adapted.manifest.data["init"]["words"] == len(base.store)

    domain_counts = Counter(t for line in domain.read_text(encoding="utf-8").splitlines()
                            for t in Tokenizer().tokenize(line))
    new = [w for w in adapted.store.words[len(base.store):] if domain_counts[w] >= 10][:50]
    untouched = [w for w in base.store.words[:300] if w not in domain_counts]
    assert len(new) >= 20 and len(untouched) >= 100

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    # A new word's vector was its n-grams' in the base model; training moved it.
    moved = np.mean([cosine(_raw(base, w), _raw(adapted, w)) for w in new])
    kept = np.mean([cosine(_raw(base, w), _raw(adapted, w)) for w in untouched])
    assert kept > 0.9 and moved < kept - 0.1, (kept, moved)  # measured: 0.97 and 0.81


def test_bad_runs_fail_clearly(corpus_file: Path, tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "models", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"--init .*nope\.bin: no such file"):
        build_fasttext(FastTextRun(corpus=[corpus_file], name="x", init=tmp_path / "nope.bin"), PARAMS,
                       settings=settings, progress=False)
    vec = tmp_path / "vectors.vec"
    vec.write_text("1 2\nhola 0.1 0.2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"not a full fastText \.bin model"):
        build_fasttext(FastTextRun(corpus=[corpus_file], name="x", init=vec), PARAMS, settings=settings,
                       progress=False)
    with pytest.raises(ValueError, match=r"min_n .* must not exceed max_n"):
        FastTextParams(min_n=5, max_n=3).validate()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_train_fasttext_command(corpus_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "train", "fasttext", str(corpus_file), "--name", "ft-cli", "--vector-size", "16", "--epochs", "1",
        "--bucket", "5000", "--min-n", "2", "--max-n", "4", "--no-ann", "--models-dir", str(tmp_path / "models"),
        "--export", "fasttext-bin"])
    assert result.exit_code == 0, result.output
    model = VectorsModel.load(tmp_path / "models" / "ft-cli")
    assert model.store.subwords is not None and (model.store.subwords.min_n, model.store.subwords.max_n,
                                                 model.store.subwords.bucket) == (2, 4, 5000)
    assert (tmp_path / "models" / "ft-cli" / "model.bin").is_file()
    bad = CliRunner().invoke(app, ["train", "fasttext", str(corpus_file), "--name", "x", "--min-n", "5",
                                   "--max-n", "3", "--models-dir", str(tmp_path / "models")])
    assert bad.exit_code == 2 and "must not exceed max_n" in bad.output
