"""The command line: help, listing, converting (good and corrupt files), training, fetching offline."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.core
import typer.main
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner, Result

from nlp_service import config
from nlp_service.artifacts import read_manifest
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.data import DATASETS_DIR
from nlp_service.vectors import VectorsModel

FORTUNES = DATASETS_DIR / "corpus_es" / "fortunes_es.txt.gz"
LEE_VEC = Path(datapath("lee_fasttext.vec"))
LEE_BIN = Path(datapath("lee_fasttext.bin"))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No NLP_* variable from the outside; the cache in a temporary folder; settings re-read."""
    for name in [k for k in os.environ if k.startswith("NLP_")]:
        monkeypatch.delenv(name)
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLP_CACHE_DIR", str(cache))
    config.get_settings.cache_clear()
    yield cache
    config.get_settings.cache_clear()


def invoke(*args: str) -> Result:
    # A wide terminal so Rich does not cut long option names in --help.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_clean_models_dir(models: Path, name: str) -> None:
    """No model folder called ``name`` and no half-written temporary folder."""
    assert not (models / name).exists()
    leftovers = (
        [p.name for p in models.iterdir() if p.name.startswith((".tmp-", ".old-"))] if models.exists() else []
    )
    assert leftovers == []


# ---- help -------------------------------------------------------------------------------------


HELP_OPTIONS: dict[tuple[str, ...], list[str]] = {
    (): ["--help"],
    ("serve",): ["--host", "--port", "--models-dir", "--model"],
    ("defaults",): ["--models-dir", "--only"],
    ("convert",): [
        "--name",
        "--format",
        "--limit",
        "--ann",
        "--no-ann",
        "--lowercase",
        "--overwrite",
        "--models-dir",
    ],
    ("models",): ["--models-dir", "--json"],
    ("train",): ["--help"],
    ("train", "word2vec"): [
        "--name",
        "--column",
        "--architecture",
        "--loss",
        "--negative",
        "--vector-size",
        "--window",
        "--min-count",
        "--sample",
        "--epochs",
        "--seed",
        "--workers",
        "--phrases",
        "--phrases-min-count",
        "--phrases-threshold",
        "--lowercase",
        "--strip-accents",
        "--keep-punct",
        "--eval-similarity",
        "--eval-analogy",
        "--export",
        "--ann",
        "--no-ann",
        "--overwrite",
        "--models-dir",
    ],
    ("fetch",): ["--help"],
    ("fetch", "cc-es"): ["--format", "--dest", "--url", "--timeout"],
    ("fetch", "tatoeba"): ["--lang", "--dest", "--url", "--timeout"],
    ("train", "translator"): ["--name", "--source", "--target", "--format", "--subword", "--vocab-size",
                              "--joint-vocab", "--hidden-size", "--attention", "--label-smoothing", "--max-minutes",
                              "--batch-tokens", "--beam-size", "--device", "--models-dir"],
    ("translate",): ["--model", "--beam-size", "--device", "--models-dir"],
    ("import-marian",): ["--name", "--source", "--target", "--overwrite", "--models-dir"],
    ("train", "gpt2"): ["--name", "--column", "--init", "--vocab-size", "--n-layer", "--block-size", "--max-steps",
                        "--max-minutes", "--warmup-steps", "--device", "--models-dir"],
    ("generate",): ["--model", "--max-new-tokens", "--sample", "--top-p", "--seed", "--models-dir"],
    ("import-generator",): ["--name", "--overwrite", "--models-dir"],
    ("plot",): ["--help"],
    ("plot", "vectors"): ["--model", "--neighbors", "--output", "--models-dir"],
    ("plot", "attention"): ["--model", "--beam-size", "--output", "--device", "--models-dir"],
}


def has_option(text: str, option: str) -> bool:
    """``option`` appears whole (``--model`` is not found inside ``--models-dir``)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def _command_options(path: tuple[str, ...]) -> list[str]:
    """Every option string the command really has (Typer builds on its own copy of Click)."""
    cmd: Any = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    return [
        opt
        for p in cmd.params
        if isinstance(p, typer.core.TyperOption)
        for opt in [*p.opts, *p.secondary_opts]
    ]


@pytest.mark.parametrize("path", list(HELP_OPTIONS), ids=lambda p: " ".join(p) or "main")
def test_help_lists_options(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    for option in HELP_OPTIONS[path]:
        assert has_option(result.stdout, option), option
    # and every option the command really has
    for opt in _command_options(path):
        assert has_option(result.stdout, opt), opt


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ((), ["serve", "defaults", "convert", "models", "train", "fetch", "translate", "import-marian", "generate",
              "import-generator", "plot"]),
        (("plot",), ["vectors", "attention"]),
        (("train",), ["word2vec", "bow", "neural", "rnn", "translator", "gpt2"]),
        (("fetch",), ["cc-es", "tatoeba"]),
    ],
)
def test_help_lists_commands(group: tuple[str, ...], commands: list[str]) -> None:
    result = invoke(*group, "--help")
    assert result.exit_code == 0
    for name in commands:
        assert name in result.stdout


@pytest.mark.parametrize(
    ("path", "documented"),
    [
        (("serve",), ["NLP_HOST", "NLP_PORT", "NLP_MODELS_DIR"]),
        (("fetch", "cc-es"), ["NLP_CACHE_DIR"]),
    ],
)
def test_help_shows_environment_defaults(path: tuple[str, ...], documented: list[str]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    for name in documented:
        assert name in result.stdout, result.stdout


def test_module_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nlp_service", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("serve", "convert", "models", "train", "fetch"):
        assert name in proc.stdout


# ---- models -----------------------------------------------------------------------------------


def test_models_lists_models(settings: Settings, models_dir: Path) -> None:
    result = invoke("models", "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert {"w2v-small", "ft-lee"} <= set(lines)
    assert lines["w2v-small"].split()[1] == "vectors"
    assert "vocab=" in lines["w2v-small"] and "ann_recall@10=" in lines["w2v-small"]
    assert lines["ft-lee"].split()[1] == "vectors"


def test_models_json(settings: Settings, models_dir: Path) -> None:
    result = invoke("models", "--models-dir", str(models_dir), "--json")
    assert result.exit_code == 0, result.output
    found = {m["name"]: m for m in json.loads(result.stdout)}
    assert {"w2v-small", "ft-lee"} <= set(found)
    assert {found[n]["kind"] for n in ("bow-small", "rnn-small")} == {"classifier"}
    for name, m in found.items():
        assert Path(m["path"]) == models_dir / name
        assert "manifest.json" not in m["files"]
        if m["kind"] == "vectors":
            assert "store/vectors.npy" in m["files"]


def test_models_empty_dir(tmp_path: Path) -> None:
    result = invoke("models", "--models-dir", str(tmp_path / "empty"))
    assert result.exit_code == 0
    assert "no models in" in result.stdout
    result = invoke("models", "--models-dir", str(tmp_path / "empty"), "--json")
    assert json.loads(result.stdout) == []


def test_models_dir_from_environment(
    settings: Settings, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NLP_MODELS_DIR", str(models_dir))
    config.get_settings.cache_clear()
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    assert {"w2v-small", "ft-lee"} <= {m["name"] for m in json.loads(result.stdout)}


# ---- convert ----------------------------------------------------------------------------------


def test_convert_vec(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = invoke("convert", str(LEE_VEC), "--name", "lee-vec", "--models-dir", str(models))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert Path(out["model"]) == models / "lee-vec"
    assert 0.5 < out["metrics"]["ann"]["recall_at_10"] <= 1.0
    assert (models / "lee-vec" / "manifest.json").is_file()
    assert read_manifest(models / "lee-vec").kind == "vectors"
    assert_clean_models_dir(models, "not-there")

    model = VectorsModel.load(models / "lee-vec")
    kv = KeyedVectors.load_word2vec_format(str(LEE_VEC))
    assert model.store.words == kv.index_to_key
    assert model.store.dim == kv.vector_size
    assert model.store.subwords is None
    assert model.store.has_ann
    for word in ("government", "police", "the"):
        np.testing.assert_allclose(model.store.vector(word)[0], kv.get_vector(word), rtol=1e-5, atol=1e-6)
        got = model.store.most_similar([word], topn=10)
        want = kv.most_similar(word, topn=10)
        assert [n.word for n in got] == [w for w, _ in want]
        np.testing.assert_allclose([n.score for n in got], [s for _, s in want], atol=1e-5)


def test_convert_with_limit(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = invoke(
        "convert",
        str(LEE_VEC),
        "--name",
        "lee-100",
        "--limit",
        "100",
        "--no-ann",
        "--models-dir",
        str(models),
    )
    assert result.exit_code == 0, result.output
    store = VectorsModel.load(models / "lee-100").store
    assert len(store) == 100
    assert not store.has_ann
    assert store.words == KeyedVectors.load_word2vec_format(str(LEE_VEC), limit=100).index_to_key


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CORRUPT: dict[str, tuple[bytes, str, str]] = {
    # file name: (content, extra args, what the error must say)
    "bad-number.vec": (b"3 4\nuno 1 2 3 4\ndos 1 x 3 4\ntres 1 2 3 4\n", "", ":3: not a number"),
    "truncated.vec": (b"3 4\nuno 1 2 3 4\n", "", "truncated"),
    "short-line.vec": (b"2 4\nuno 1 2 3 4\ndos 1 2 3\n", "", ":3: expected a word and 4 numbers"),
    "bad-header.vec": (b"three four\nuno 1 2 3 4\n", "", "first line should be"),
    "nan.vec": (b"1 2\nuno nan 1\n", "", "NaN"),
    "truncated.w2v.bin": (
        b"2 4\nuno " + b"\x00" * 16 + b"dos " + b"\x00" * 5,
        "--format=word2vec-binary",
        "truncated",
    ),
    "truncated-fasttext.bin": (LEE_BIN.read_bytes()[:100_000], "", "not a readable fastText .bin"),
    "broken.vec.gz": (gzip.compress(LEE_VEC.read_bytes())[:5000], "", "cannot read"),
}


@pytest.mark.parametrize("filename", list(CORRUPT))
def test_convert_corrupt_file(tmp_path: Path, filename: str) -> None:
    content, extra, message = CORRUPT[filename]
    source = _write(tmp_path / filename, content)
    models = tmp_path / "models"
    models.mkdir()
    result = invoke(
        "convert",
        str(source),
        "--name",
        "bad",
        "--no-ann",
        "--models-dir",
        str(models),
        *([extra] if extra else []),
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert_clean_models_dir(models, "bad")
    assert list(models.iterdir()) == []


def test_convert_missing_file(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = invoke("convert", str(tmp_path / "nope.vec"), "--name", "bad", "--models-dir", str(models))
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "no such file" in lines[0]
    assert_clean_models_dir(models, "bad")


def test_convert_unknown_format_option(tmp_path: Path) -> None:
    result = invoke(
        "convert", str(LEE_VEC), "--name", "x", "--format", "glove", "--models-dir", str(tmp_path)
    )
    assert result.exit_code == 2
    assert "--format must be one of" in result.stderr
    assert_clean_models_dir(tmp_path, "x")


def test_convert_refuses_to_overwrite(tmp_path: Path) -> None:
    models = tmp_path / "models"
    args = ["convert", str(LEE_VEC), "--name", "lee", "--no-ann", "--models-dir", str(models)]
    assert invoke(*args).exit_code == 0
    manifest = (models / "lee" / "manifest.json").read_bytes()

    result = invoke(*args[:-2], "--limit", "10", *args[-2:])
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1
    assert "already exists" in lines[0] and "overwrite" in lines[0]
    assert (models / "lee" / "manifest.json").read_bytes() == manifest  # untouched
    assert len(VectorsModel.load(models / "lee").store) == 1762
    assert [p.name for p in models.iterdir()] == ["lee"]

    result = invoke(*args[:-2], "--limit", "10", "--overwrite", *args[-2:])
    assert result.exit_code == 0, result.output
    assert len(VectorsModel.load(models / "lee").store) == 10
    assert [p.name for p in models.iterdir()] == ["lee"]  # no .tmp-* or .old-* left


def test_convert_corrupt_file_keeps_existing_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert (
        invoke("convert", str(LEE_VEC), "--name", "lee", "--no-ann", "--models-dir", str(models)).exit_code
        == 0
    )
    bad = _write(tmp_path / "bad.vec", CORRUPT["bad-number.vec"][0])
    result = invoke("convert", str(bad), "--name", "lee", "--overwrite", "--models-dir", str(models))
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1
    assert len(VectorsModel.load(models / "lee").store) == 1762
    assert [p.name for p in models.iterdir()] == ["lee"]


# ---- train ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fortunes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2000 real Spanish lines as a CSV with columns id,text."""
    path = tmp_path_factory.mktemp("csv") / "fortunes.csv"
    with (
        gzip.open(FORTUNES, "rt", encoding="utf-8") as src,
        open(path, "w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(["id", "text"])
        for i, line in enumerate(itertools.islice(src, 2000)):
            writer.writerow([i, line.strip()])
    return path


TRAIN_ARGS = ["--min-count", "2", "--epochs", "1", "--vector-size", "16", "--no-ann", "--workers", "2"]


def test_train_word2vec_csv(fortunes_csv: Path, tmp_path: Path, isolated_settings: Path) -> None:
    models = tmp_path / "models"
    result = invoke(
        "train",
        "word2vec",
        str(fortunes_csv),
        "--name",
        "tiny",
        "--column",
        "text",
        *TRAIN_ARGS,
        "--models-dir",
        str(models),
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert Path(out["model"]) == models / "tiny"
    metrics = out["metrics"]
    assert metrics["tokenize"]["sentences"] == 2000
    assert metrics["tokenize"]["words"] > 10_000
    assert metrics["tokenize"]["cached"] is False
    assert metrics["train"]["vocabulary"] > 500

    model = VectorsModel.load(models / "tiny")
    assert model.store.dim == 16
    assert len(model.store) == metrics["train"]["vocabulary"]
    assert not model.store.has_ann
    assert {"amigos", "vida", "que"} <= set(model.store.words)
    assert "id" not in model.store.words  # the header row is not text
    manifest = read_manifest(models / "tiny")
    assert manifest.data["column"] == "text"
    assert manifest.params["word2vec"]["vector_size"] == 16
    assert [p.name for p in models.iterdir()] == ["tiny"]
    # the tokenized corpus went to NLP_CACHE_DIR
    assert isolated_settings.is_dir() and any(isolated_settings.rglob("*"))


def test_train_word2vec_wrong_column(fortunes_csv: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = invoke(
        "train",
        "word2vec",
        str(fortunes_csv),
        "--name",
        "tiny",
        "--column",
        "texto",
        *TRAIN_ARGS,
        "--models-dir",
        str(models),
    )
    assert result.exit_code == 1, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "'texto'" in lines[0]
    assert "['id', 'text']" in lines[0]
    assert_clean_models_dir(models, "tiny")


def test_train_word2vec_missing_corpus(tmp_path: Path) -> None:
    result = invoke(
        "train",
        "word2vec",
        str(tmp_path / "nope.txt"),
        "--name",
        "tiny",
        *TRAIN_ARGS,
        "--models-dir",
        str(tmp_path / "models"),
    )
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 1 and "no such corpus file" in lines[0]


# ---- fetch ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fetch_offline_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    dest = tmp_path / "downloads"
    url = f"http://127.0.0.1:{_closed_port()}/x"
    start = time.monotonic()
    result = invoke("fetch", "cc-es", "--url", url, "--dest", str(dest), "--timeout", "2")
    elapsed = time.monotonic() - start
    assert elapsed < 10
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot download " + url)
    assert "nlp-service convert" in result.stderr
    assert str(dest / "cc.es.300.bin.gz") in result.stderr  # where to put the file by hand
    assert "Traceback" not in result.output
    assert not dest.exists() or list(dest.iterdir()) == []


def test_fetch_uses_existing_file(tmp_path: Path) -> None:
    dest = tmp_path / "downloads"
    dest.mkdir()
    shutil.copy(LEE_VEC, dest / "cc.es.300.vec.gz")
    result = invoke(
        "fetch",
        "cc-es",
        "--format",
        "vec",
        "--url",
        f"http://127.0.0.1:{_closed_port()}/x",
        "--dest",
        str(dest),
    )
    assert result.exit_code == 0, result.output
    assert "nlp-service convert" in result.stdout
    assert str(dest / "cc.es.300.vec.gz") in result.stdout


def test_train_bow_and_rnn_on_a_user_csv(sentiment_file: Path, tmp_path: Path, isolated_settings: Path) -> None:
    """Both classification pipelines from the command line on a user's CSV (other column names)."""
    import csv

    from nlp_service.classify import ClassifierModel

    data = tmp_path / "encuesta.csv"
    with open(sentiment_file, encoding="utf-8") as src, open(data, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["respuesta", "valoracion"])
        for row in csv.DictReader(src, delimiter="\t"):
            writer.writerow([row["text"], row["label"]])
    models = tmp_path / "models"
    result = invoke("train", "bow", str(data), "--name", "enc-bow", "--text-column", "respuesta",
                    "--label-column", "valoracion", "--classifier", "linearsvc", "--cv", "3", "--models-dir",
                    str(models))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0.5 < report["test"]["accuracy"] <= 1 and report["cross_validation"]["k"] == 3
    assert result.stderr.splitlines()[-1].startswith("plot: none (`train bow`")
    result = invoke("train", "rnn", str(data), "--name", "enc-gru", "--text-column", "respuesta", "--label-column",
                    "valoracion", "--cell", "gru", "--hidden-size", "8", "--embedding-dim", "8", "--epochs", "1",
                    "--device", "cpu", "--models-dir", str(models))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["best_epoch"] == 1
    # Last on stderr, where the run's curves are (the baseline has none).
    assert result.stderr.splitlines()[-1] == f"plot: {models / 'enc-gru' / 'training_curve.png'}"
    assert (models / "enc-gru" / "training_curve.png").read_bytes().startswith(b"\x89PNG")
    for name in ("enc-bow", "enc-gru"):
        preds = ClassifierModel.load(models / name, device="cpu").predict(["Muy buena."])
        assert preds[0].label in {"pos", "neg"}
    bad = invoke("train", "rnn", str(data), "--name", "x", "--label-column", "nota", "--models-dir", str(models))
    assert bad.exit_code == 1 and "no column 'text'" in bad.stderr
