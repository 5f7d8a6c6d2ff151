"""The batch scripts in pipelines/, run as a user runs them: as files, in a fresh process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from gensim.test.utils import datapath

from nlp_service.artifacts import read_manifest

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
SCRIPTS = sorted(p.name for p in PIPELINES.glob("*.py"))


def run(script: str, *args: str, cache: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NLP_")} | {"NLP_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, str(PIPELINES / script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def test_there_are_scripts() -> None:
    assert {"retrain.py", "compare_classifiers.py", "pretrained_vectors.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str, tmp_path: Path) -> None:
    proc = run(script, "--help", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "python pipelines/" in proc.stdout  # with an example


def test_retrain_from_saved_runs(rnn_model: Path, bow_model: Path, tmp_path: Path) -> None:
    """Two models retrained from their params.toml under new names; a broken config is reported and the
    others still run."""
    broken = tmp_path / "broken.toml"
    broken.write_text('command = "bow"\nname = "b"\ndata = ["missing.csv"]\n', encoding="utf-8")
    models = tmp_path / "models"
    proc = run("retrain.py", str(rnn_model / "params.toml"), str(broken), str(bow_model / "params.toml"),
               "--suffix", "again", "--models-dir", str(models), cache=tmp_path / "cache")
    assert proc.returncode == 1, proc.stderr  # one of three failed
    reports = json.loads(proc.stdout)
    assert [r.get("model", "").rsplit("/", 1)[-1] for r in reports] == ["rnn-small-again", "", "bow-small-again"]
    assert "no such file" in reports[1]["error"] and f"error: {broken}" in proc.stderr
    for old in (rnn_model, bow_model):
        new = models / f"{old.name}-again"
        assert read_manifest(new).params == read_manifest(old).params
        saved = tomllib.loads((new / "params.toml").read_text(encoding="utf-8"))
        assert saved == {**tomllib.loads((old / "params.toml").read_text(encoding="utf-8")), "name": new.name}
    # The same data, split and seeds: the baseline is the same model.
    assert read_manifest(models / "bow-small-again").metrics["test"] == read_manifest(bow_model).metrics["test"]


def test_compare_classifiers(sentiment_file: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    proc = run("compare_classifiers.py", str(sentiment_file), "--prefix", "cmp", "--cells", "gru", "--epochs", "1",
               "--models-dir", str(models), cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 4 and {r["kind"] for r in rows} == {"bow", "gru"}
    assert [r["macro_f1"] for r in rows] == sorted((r["macro_f1"] for r in rows), reverse=True)
    assert len({r["test_rows"] for r in rows}) == 1  # the same held-out rows for every model
    for r in rows:
        assert read_manifest(models / r["model"]).metrics["test"]["macro_f1"] == r["macro_f1"]
    assert "macro-F1" in proc.stderr  # the table


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pretrained_vectors_from_a_file_and_offline(tmp_path: Path) -> None:
    models = tmp_path / "models"
    proc = run("pretrained_vectors.py", "--source", datapath("lee_fasttext.vec"), "--name", "lee", "--limit", "100",
               "--no-ann", "--models-dir", str(models), cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == str(models / "lee")
    assert read_manifest(models / "lee").params["limit"] == 100
    proc = run("pretrained_vectors.py", "--url", f"http://127.0.0.1:{_closed_port()}/cc.es.300.bin.gz",
               "--timeout", "2", "--models-dir", str(models), cache=tmp_path / "cache", timeout=60)
    assert proc.returncode == 1 and "Cannot download the Spanish fastText vectors" in proc.stderr
    assert "Traceback" not in proc.stderr
