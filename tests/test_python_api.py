"""The Python API: ``nlp_service.load`` on every kind, its methods giving what the HTTP endpoints give for the
same model (the service's app, in process), and vectors to gensim and word2vec files and back."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gensim.models import KeyedVectors
from typer.testing import CliRunner

import nlp_service
from nlp_service.api import create_app
from nlp_service.classify import ClassifierModel
from nlp_service.cli import app as cli_app
from nlp_service.config import Settings
from nlp_service.generate import GeneratorModel
from nlp_service.translate import TranslatorModel
from nlp_service.vectors import VectorsModel, convert_vectors

from .helpers import FT, W2V, post, ready_client, save_tiny_generator

GEN = "gen-api"
TEXTS = ["Y dijo Dios: Sea la luz.", "el rey de Israel", "xyzzy qwrtp"]  # the last: no known token


@pytest.fixture(scope="module")
def api_models(w2v_model: Path, ft_model: Path, bow_model: Path, rnn_model: Path, translator_model: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's models (links) and a tiny generator in one models folder."""
    folder = tmp_path_factory.mktemp("api-models")
    for model in (w2v_model, ft_model, bow_model, rnn_model, translator_model):
        (folder / model.name).symlink_to(model, target_is_directory=True)
    save_tiny_generator(folder, GEN, positions=64, never_eos=True)  # every request runs its max_new_tokens
    return folder


@pytest.fixture(scope="module")
def api_settings(settings: Settings, api_models: Path) -> Settings:
    return settings.model_copy(update={"models_dir": api_models, "default_generator_model": GEN,
                                       "generation_max_batch": 4, "generation_max_input_tokens": 40,
                                       "generation_max_total_tokens": 64})


@pytest.fixture(scope="module")
def http(api_settings: Settings) -> Iterator[TestClient]:
    with ready_client(create_app(api_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def vectors(api_settings: Settings) -> VectorsModel:
    return nlp_service.load(W2V, settings=api_settings)


# ---- load -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [(W2V, VectorsModel), (FT, VectorsModel), ("bow-small", ClassifierModel),
                                            ("rnn-small", ClassifierModel), ("tr-small", TranslatorModel),
                                            (GEN, GeneratorModel)])
def test_load_opens_every_kind_by_name_or_folder(name: str, kind: type, api_models: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLP_MODELS_DIR", str(api_models))  # a name: under NLP_MODELS_DIR
    by_name = nlp_service.load(name, device="cpu")
    by_folder = nlp_service.load(api_models / name, device="cpu")
    assert isinstance(by_name, kind) and isinstance(by_folder, kind)
    assert by_name.name == by_folder.name == name
    assert by_name.describe() == by_folder.describe()


def test_load_of_an_unknown_model_says_what_there_is(api_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLP_MODELS_DIR", str(api_models))
    with pytest.raises(nlp_service.ModelNotFound, match="no model 'w2v-nope'") as raised:
        nlp_service.load("w2v-nope")
    assert sorted(raised.value.details["available"]) == sorted(p.name for p in api_models.iterdir())


def test_load_checks_the_checksums(w2v_model: Path, tmp_path: Path) -> None:
    """A flipped byte keeps the size: only the SHA-256 sums find it (as the service does at load)."""
    copy = Path(shutil.copytree(w2v_model, tmp_path / "w2v-copy"))
    matrix = copy / "store" / "vectors.npy"
    data = bytearray(matrix.read_bytes())
    data[-1] ^= 1
    matrix.write_bytes(bytes(data))
    with pytest.raises(nlp_service.ArtifactError, match="sha256"):
        nlp_service.load(copy)
    assert isinstance(nlp_service.load(copy, settings=Settings(verify_checksums=False)), VectorsModel)


def test_importing_the_package_stays_light() -> None:
    from .helpers import modules_loaded_by

    assert modules_loaded_by("import nlp_service; nlp_service.load", ["torch", "gensim", "spacy", "httpx"]) == []


# ---- the same answers as the endpoints ----------------------------------------------------------


def test_vectors_answer_as_the_endpoints(http: TestClient, vectors: VectorsModel) -> None:
    assert vectors.similarity("rey", "tierra") == post(http, "/v1/similarity", {
        "model": W2V, "word1": "rey", "word2": "tierra"})["similarity"]
    for query, body in [(("rey",), {"word": "rey"}),
                        ((["rey", "mujer"], ["hombre"]), {"positive": ["rey", "mujer"], "negative": ["hombre"]})]:
        expected = post(http, "/v1/neighbors", {"model": W2V, "topn": 7, **body})["neighbors"]
        assert vectors.most_similar(*query, topn=7) == [(n["word"], n["score"]) for n in expected]
    for method in ("3cosadd", "3cosmul"):
        expected = post(http, "/v1/analogy", {"model": W2V, "a": "hombre", "b": "rey", "c": "mujer",
                                              "method": method})["answers"]
        found = vectors.analogy("hombre", "rey", "mujer", method=method)  # topn: the endpoint's default
        assert [(n.word, n.score) for n in found] == [(n["word"], n["score"]) for n in expected]
    for normalize in (False, True):
        expected = post(http, "/v1/embeddings/texts", {"model": W2V, "texts": TEXTS, "normalize": normalize})
        encoded = vectors.encode(TEXTS, normalize=normalize)
        assert encoded.shape == (len(TEXTS), expected["dimensions"]) and encoded.dtype == np.float32
        for row, embedding in zip(encoded, expected["embeddings"], strict=True):
            # No known token: the endpoint says null, encode gives zeros (documented).
            assert np.array_equal(row, np.zeros_like(row) if embedding["vector"] is None else embedding["vector"])
    assert expected["embeddings"][-1]["vector"] is None  # the zero row was tested
    assert np.array_equal(vectors.encode(TEXTS[0]), vectors.encode(TEXTS)[0])  # one string: one row


def test_classifiers_answer_as_the_endpoints(http: TestClient, api_settings: Settings) -> None:
    for name in ("bow-small", "rnn-small"):
        expected = post(http, "/v1/classify", {"model": name, "texts": TEXTS})["results"]
        found = nlp_service.load(name, settings=api_settings).predict(TEXTS)
        assert [p.label for p in found] == [r["label"] for r in expected]
        for prediction, result in zip(found, expected, strict=True):
            assert prediction.probabilities.keys() == result["probabilities"].keys()
            # Batched with other texts, a recurrent network's last bits may differ.
            assert np.allclose(list(prediction.probabilities.values()), list(result["probabilities"].values()),
                               rtol=0, atol=1e-6)


def test_the_translator_answers_as_the_endpoint(http: TestClient, api_settings: Settings) -> None:
    translator = nlp_service.load("tr-small", settings=api_settings)
    for beam_size in (1, 3):
        expected = post(http, "/v1/translate", {"model": "tr-small", "texts": TEXTS[:2], "beam_size": beam_size})
        assert translator.translate(TEXTS[:2], beam_size=beam_size) == expected["translations"]


def test_the_generator_answers_as_the_endpoint(http: TestClient, api_settings: Settings) -> None:
    generator = nlp_service.load(GEN, settings=api_settings)
    greedy = post(http, "/v1/generate", {"inputs": "Más vale", "parameters": {"max_new_tokens": 20, "details": True}})
    assert generator.generate("Más vale", max_new_tokens=20) == greedy["generated_text"]
    assert greedy["details"]["generated_tokens"] == 20  # a text long enough to hold a stop sequence below
    # A stop sequence taken from the middle of the greedy text: both cut before its first occurrence.
    text = greedy["generated_text"]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    stopped = post(http, "/v1/generate", {"inputs": "Más vale", "parameters": {"max_new_tokens": 20, "stop": [stop]}})
    assert stopped["generated_text"] == text[: text.index(stop)]
    assert generator.generate("Más vale", max_new_tokens=20, stop=[stop]) == stopped["generated_text"]
    sampled = post(http, "/v1/generate", {"inputs": "Más vale", "parameters": {
        "max_new_tokens": 15, "do_sample": True, "top_k": 50, "seed": 11}})
    assert generator.generate("Más vale", max_new_tokens=15, do_sample=True, top_k=50, seed=11) \
        == sampled["generated_text"]
    assert generator.generate("Más vale", max_new_tokens=15, do_sample=True, top_k=50, seed=12) \
        != sampled["generated_text"]
    with pytest.raises(ValueError, match="positions"):  # 64 positions: the engine says what does not fit
        generator.generate("Más vale", max_new_tokens=70)
    assert generator.generate("Más vale", max_new_tokens=20) == greedy["generated_text"]  # and serves on


# ---- vectors to gensim and word2vec files, and back -------------------------------------------


@pytest.mark.parametrize(("name", "words", "positive", "negative"), [
    (W2V, ["rey", "tierra", "dios"], ["rey", "mujer"], ["hombre"]),
    (FT, ["government", "police"], ["government", "police"], ["people"]),
])
def test_to_keyed_vectors_holds_the_same_vectors_and_neighbours(name: str, words: list[str], positive: list[str],
                                                                negative: list[str], api_settings: Settings) -> None:
    model = nlp_service.load(name, settings=api_settings)
    kv = model.to_keyed_vectors()
    vocabulary = model.store.words
    assert kv.index_to_key == vocabulary
    raw = np.stack([vec for vec, _ in model.word_vectors(vocabulary)])
    assert kv.vectors.dtype == np.float32 and np.array_equal(kv.vectors, raw)
    queries = [((word,), {"positive": [word]}) for word in words] + [
        ((positive, negative), {"positive": positive, "negative": negative})]
    for ours_args, theirs_kwargs in queries:
        ours, theirs = model.most_similar(*ours_args, topn=10), kv.most_similar(**theirs_kwargs, topn=10)
        assert [w for w, _ in ours] == [w for w, _ in theirs], ours_args
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], rtol=0, atol=1e-5)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_round_trip(binary: bool, vectors: VectorsModel, tmp_path: Path) -> None:
    """Exported, read by gensim, and converted back into a model: the same words, vectors and neighbours."""
    path = vectors.save_word2vec_format(tmp_path / ("w2v.bin" if binary else "w2v.txt"), binary=binary)
    read = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    kv = vectors.to_keyed_vectors()
    assert read.index_to_key == kv.index_to_key
    assert np.array_equal(read.vectors, kv.vectors)  # text too: gensim writes each float32 exactly
    back = VectorsModel.load(convert_vectors(path, tmp_path / "models", "back", ann=False, progress=False))
    assert back.store.words == vectors.store.words
    # unit x norm, normalised again: equal to the last bits or so
    assert np.allclose(back.store.unit, vectors.store.unit, rtol=0, atol=1e-6)
    ours, theirs = back.most_similar("rey", topn=10), vectors.most_similar("rey", topn=10)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    assert np.allclose([s for _, s in ours], [s for _, s in theirs], rtol=0, atol=1e-6)


def test_convert_exports_word2vec_files(tmp_path: Path, vectors: VectorsModel) -> None:
    """``nlp-service convert --export``: the model folder holds the files, listed in its manifest."""
    source = vectors.save_word2vec_format(tmp_path / "source.bin", binary=True)
    models = tmp_path / "models"
    result = CliRunner().invoke(cli_app, ["convert", str(source), "--name", "exported", "--no-ann", "--models-dir",
                                          str(models), "--export", "word2vec-text", "--export", "word2vec-binary"],
                                env={**os.environ, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    folder = models / "exported"
    manifest = nlp_service.read_manifest(folder)
    for file, binary in (("vectors.txt", False), ("vectors.bin", True)):
        assert file in manifest.files
        read = KeyedVectors.load_word2vec_format(str(folder / file), binary=binary)
        assert read.index_to_key == vectors.store.words
        # The converted model's vectors: normalised and scaled back, equal to the last bits or so.
        assert np.allclose(read.vectors, vectors.to_keyed_vectors().vectors, rtol=1e-6, atol=1e-6)
    refused = CliRunner().invoke(cli_app, ["convert", str(source), "--name", "x", "--models-dir", str(models),
                                           "--export", "glove"])
    assert refused.exit_code == 2 and "--export must be one of" in refused.output
