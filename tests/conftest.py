"""Shared fixtures: small real models trained or converted once per test session."""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning (spinning threads on a busy
# 2-core machine slowed small training runs many-fold).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gzip
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gensim.test.utils import datapath

from nlp_service.api import create_app
from nlp_service.classify import BowParams, BowRun, RecurrentRun, RNNParams, train_bow, train_recurrent
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR, PARALLEL_BIBLE, PARALLEL_LIBREOFFICE, SENTIMENT_ES
from nlp_service.text import Tokenizer
from nlp_service.translate import Seq2SeqParams, TranslatorRun, build_translator
from nlp_service.vectors import Word2VecParams, Word2VecRun, build_word2vec, convert_vectors

from .helpers import ready_client

BIBLE = DATASETS_DIR / "corpus_es" / "rv1909.txt.gz"


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8,000 real Spanish verses (about 200k tokens) as a plain-text file."""
    path = tmp_path_factory.mktemp("corpus") / "biblia.txt"
    with gzip.open(BIBLE, "rt", encoding="utf-8") as src:
        path.write_text("".join(itertools.islice(src, 8000)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def train_settings(models_dir: Path, cache_dir: Path) -> Settings:
    """Where the session's models are trained: its models folder and cache, on the CPU."""
    return Settings(models_dir=models_dir, cache_dir=cache_dir, device="cpu")


@pytest.fixture(scope="session")
def w2v_model(train_settings: Settings, corpus_file: Path) -> Path:
    """A small Spanish word2vec model with an HNSW index, trained by the real pipeline."""
    params = Word2VecParams(vector_size=32, window=5, min_count=3, epochs=3, workers=2, seed=7)
    path, _ = build_word2vec(Word2VecRun(corpus=[corpus_file], name="w2v-small"), params, Tokenizer(),
                             settings=train_settings, progress=False)
    return path


@pytest.fixture(scope="session")
def ft_model(models_dir: Path) -> Path:
    """gensim's real fastText .bin (Lee corpus, English) converted with its subword n-grams."""
    return convert_vectors(Path(datapath("lee_fasttext.bin")), models_dir, "ft-lee", ann=False, progress=False)


@pytest.fixture(scope="session")
def sentiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,600 real Spanish review snippets (the shipped TSV, cut) with their pos/neg labels."""
    path = tmp_path_factory.mktemp("sentiment") / "reviews.tsv"
    with gzip.open(SENTIMENT_ES, "rt", encoding="utf-8") as src:
        path.write_text("".join(itertools.islice(src, 1601)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bow_model(train_settings: Settings, sentiment_file: Path) -> Path:
    path, _ = train_bow(BowRun(data=[sentiment_file], name="bow-small", task="sentiment", language="es"),
                        BowParams(features="count", classifier="nb"), settings=train_settings)
    return path


@pytest.fixture(scope="session")
def rnn_model(train_settings: Settings, sentiment_file: Path) -> Path:
    params = RNNParams(cell="gru", embedding_dim=16, hidden_size=16, epochs=2, batch_size=32)
    path, _ = train_recurrent(RecurrentRun(data=[sentiment_file], name="rnn-small", task="sentiment", language="es"),
                              params, settings=train_settings, progress=False)
    return path


@pytest.fixture(scope="session")
def parallel_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real es/en pairs, cut: 1,500 LibreOffice strings and 300 Bible verses, as two TSV files."""
    folder = tmp_path_factory.mktemp("parallel")
    paths = []
    for source, rows in ((PARALLEL_LIBREOFFICE, 1500), (PARALLEL_BIBLE, 300)):
        path = folder / source.name.removesuffix(".gz")
        with gzip.open(source, "rt", encoding="utf-8") as src:
            path.write_text("".join(itertools.islice(src, rows + 1)), encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def translator_model(train_settings: Settings, parallel_files: list[Path]) -> Path:
    """A tiny es->en seq2seq translator trained by the real pipeline (quality: none to speak of)."""
    params = Seq2SeqParams(vocab_size=400, embedding_dim=32, hidden_size=64, epochs=2, batch_tokens=1500,
                           val_sentences=50, max_source_tokens=60, max_target_tokens=120)
    path, _ = build_translator(TranslatorRun(data=parallel_files, name="tr-small", source="es", target="en",
                                             validation=0.05, test=0.05), params,
                               settings=train_settings, progress=False)
    return path


@pytest.fixture(scope="session")
def settings(models_dir: Path, cache_dir: Path, w2v_model: Path, ft_model: Path, bow_model: Path,
             rnn_model: Path, translator_model: Path) -> Settings:
    return Settings(models_dir=models_dir, cache_dir=cache_dir, default_vectors_model="w2v-small",
                    default_sentiment_model="rnn-small", default_classifier_model="bow-small",
                    default_translator_model="tr-small", device="cpu",
                    preload_ann=False, max_words=50, max_texts=8, max_text_chars=2000, max_topn=100,
                    max_body_bytes=100_000)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with ready_client(create_app(settings)) as c:
        yield c


# ---- a tiny generator behind a real server, for the clients of other ecosystems (TGI's, OpenAI's) ----------


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with ``gen-tiny``: a tiny random GPT-2 of 64 positions with a real BPE tokenizer."""
    from .helpers import save_tiny_generator

    folder = tmp_path_factory.mktemp("tiny-generator")
    save_tiny_generator(folder, "gen-tiny", positions=64)
    return folder


@pytest.fixture(scope="session")
def tiny_generator(tiny_generator_dir: Path) -> Any:
    """``gen-tiny`` loaded in this process (transformers' model and tokenizer): the reference."""
    from nlp_service.generate import GeneratorModel

    return GeneratorModel.load(tiny_generator_dir / "gen-tiny", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def generator_server(tiny_generator_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``nlp-service serve`` of ``gen-tiny`` as a subprocess (prompts of at most 40 tokens, 60 in all): an
    ``httpx.Client`` on it."""
    from .test_e2e import run_server

    with run_server(tiny_generator_dir, tmp_path_factory.mktemp("generator-server"), {
            "NLP_DEFAULT_GENERATOR_MODEL": "gen-tiny", "NLP_GENERATION_MAX_INPUT_TOKENS": "40",
            "NLP_GENERATION_MAX_TOTAL_TOKENS": "60"}) as http:
        yield http
