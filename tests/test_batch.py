"""Batch jobs (``nlp-service batch``, :mod:`nlp_service.batch`): every input format, each task equal to its
HTTP endpoint, bad rows, resuming after a real ``kill -9``, the command line and the pipelines script, and
a real local Ray giving the local engine's output row for row."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nlp_service.api import create_app
from nlp_service.batch import MANIFEST, BatchJob, EmbedOptions, Inputs, OutputExists, run_on_ray
from nlp_service.cli import app
from nlp_service.config import Settings
from nlp_service.data import DataError
from nlp_service.generate import SamplingParams
from nlp_service.translate import DecodeOptions

from .helpers import modules_loaded_by, post, ready_client, save_tiny_generator

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reviews(sentiment_file: Path) -> list[tuple[str, str]]:
    """(id, text) of 60 real Spanish review snippets."""
    with open(sentiment_file, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [(f"r{i:03d}", row["text"]) for i, row in enumerate(rows[:60])]


def write_csv(path: Path, rows: list[tuple[str, str]], delimiter: str = ",") -> Path:
    opener = gzip.open if path.name.endswith(".gz") else bz2.open if path.name.endswith(".bz2") else open
    with opener(path, "wt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(["id", "respuesta"])
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else bz2.open if path.name.endswith(".bz2") else open
    with opener(path, "wt", encoding="utf-8") as fh:  # type: ignore[operator]
        for ident, text in rows:
            fh.write(json.dumps({"id": ident, "respuesta": text, "otro": 1}, ensure_ascii=False) + "\n")
    return path


def write_parquet(path: Path, rows: list[tuple[str, str]]) -> Path:
    pq.write_table(pa.table({"id": [r[0] for r in rows], "respuesta": [r[1] for r in rows]}), path)
    return path


def read_output(folder: Path) -> pa.Table:
    """Every part of an output folder, in order (a local run's parts are numbered; Ray's are sorted here)."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(("_", ".")))
    fmt = "json" if files[0].suffix == ".jsonl" or files[0].suffix == ".json" else "parquet"
    table = pads.dataset([str(p) for p in files], format=fmt).to_table()
    return table.sort_by([("source", "ascending"), ("row", "ascending")])


# ---- inputs ----------------------------------------------------------------------------------------------


def test_every_input_format_gives_the_same_rows(tmp_path: Path, reviews: list[tuple[str, str]]) -> None:
    rows = reviews[:25]
    files = [write_csv(tmp_path / "a.csv", rows), write_csv(tmp_path / "a.tsv", rows, "\t"),
             write_csv(tmp_path / "a.csv.gz", rows), write_jsonl(tmp_path / "a.jsonl", rows),
             write_jsonl(tmp_path / "a.jsonl.bz2", rows), write_parquet(tmp_path / "a.parquet", rows)]
    for path in files:
        got = [(r.id, r.text, r.error) for r in Inputs([path], text_column="respuesta", id_column="id").rows()]
        assert got == [(i, t, None) for i, t in rows], path.name
        assert [r.row for r in Inputs([path], text_column="respuesta").rows()] == list(range(25))
    text = tmp_path / "plain.txt.gz"
    with gzip.open(text, "wt", encoding="utf-8") as fh:
        fh.write("".join(t + "\n" for _, t in rows))
    assert [r.text for r in Inputs([text]).rows()] == [t for _, t in rows]
    # Globs and folders: every matching file, sorted, each row once (a file named twice is read once).
    sub = tmp_path / "sub"
    sub.mkdir()
    write_csv(sub / "b.csv", rows[:3])
    write_csv(sub / "c.csv", rows[3:5])
    (sub / "notes.md").write_text("not an input")
    found = Inputs([sub, str(sub / "*.csv")], text_column="respuesta")
    assert [f.path.name for f in found.files] == ["b.csv", "c.csv"]
    assert [r.text for r in found.rows()] == [t for _, t in rows[:5]]
    assert [r.text for r in found.rows(skip=3)] == [t for _, t in rows[3:5]]


def test_a_missing_file_or_column_fails_before_any_work(tmp_path: Path, reviews: list[tuple[str, str]],
                                                        settings: Settings) -> None:
    path = write_csv(tmp_path / "a.csv", reviews[:3])
    with pytest.raises(DataError, match=r"no column 'texto'.*'id', 'respuesta'"):
        Inputs([path], text_column="texto")
    with pytest.raises(DataError, match="no column 'clave'"):
        Inputs([write_jsonl(tmp_path / "a.jsonl", reviews[:3])], text_column="respuesta", id_column="clave")
    with pytest.raises(DataError, match="no such file or folder"):
        Inputs([tmp_path / "nada.csv"])
    with pytest.raises(DataError, match="no file matches"):
        Inputs([str(tmp_path / "*.parquet")])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["batch", "classify", str(path), "--output", str(out), "--text-column", "texto",
                                      "--models-dir", str(settings.models_dir)])
    assert result.exit_code == 1
    assert "no column 'texto'" in result.output
    assert not out.exists()  # nothing started
    result = CliRunner().invoke(app, ["batch", "classify", str(path), "--output", str(out), "--model", "nadie",
                                      "--text-column", "respuesta", "--models-dir", str(settings.models_dir)])
    assert result.exit_code == 1 and "nadie" in result.output


def test_bad_rows_get_an_error_and_the_job_goes_on(tmp_path: Path, settings: Settings,
                                                   reviews: list[tuple[str, str]]) -> None:
    good = reviews[:4]
    path = tmp_path / "mixed.csv"
    write_csv(path, good[:2])
    with open(path, "ab") as fh:
        fh.write(b'x1,"mal \xff codificado"\n')  # invalid UTF-8
        fh.write(b"x2\n")  # a row without its text field
        fh.write(b"x3,\n")  # empty text
        fh.write(("x4," + "palabra " * 400 + "\n").encode())  # over NLP_MAX_TEXT_CHARS (2000 in these tests)
    write_csv(tmp_path / "tail.csv", good[2:])
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text('{"id": "j1", "respuesta": "Muy buena."}\n{not json\n{"id": "j3", "respuesta": 7}\n'
                     '{"id": "j4"}\n[1, 2]\n', encoding="utf-8")
    job = BatchJob("classify", [path, tmp_path / "tail.csv"], tmp_path / "out", model="bow-small",
                   text_column="respuesta", id_column="id", settings=settings)
    summary = job.run(progress=False)
    table = read_output(tmp_path / "out").to_pylist()
    assert [r["id"] for r in table] == ["r000", "r001", "x1", "x2", "x3", "x4", "r002", "r003"]
    errors = {r["id"]: r["error"] for r in table}
    assert errors["x1"].startswith("undecodable")
    assert errors["x2"].startswith("malformed_row")
    assert errors["x3"].startswith("empty_text")
    assert errors["x4"].startswith("limit_exceeded") and "2000" in errors["x4"]
    assert all(errors[i] is None and r["label"] in ("pos", "neg") for r in table if (i := r["id"]).startswith("r"))
    assert summary.rows == 8 and summary.errors == 4
    assert summary.errors_by_code == {"undecodable": 1, "malformed_row": 1, "empty_text": 1, "limit_exceeded": 1}
    summary = BatchJob("classify", [jsonl], tmp_path / "out-jsonl", model="bow-small", text_column="respuesta",
                       id_column="id", settings=settings, output_format="jsonl").run(progress=False)
    lines = [json.loads(x) for x in (tmp_path / "out-jsonl" / "part-00000.jsonl").read_text().splitlines()]
    assert [(x["row"], (x["error"] or "").split(":")[0]) for x in lines] == [
        (0, ""), (1, "invalid_json"), (2, "invalid_text"), (3, "missing_text"), (4, "invalid_record")]
    assert lines[0]["label"] in ("pos", "neg") and set(lines[0]["probabilities"]) == {"neg", "pos"}


# ---- the same results as the endpoints -------------------------------------------------------------------


def _jsonl_input(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", rows)


def test_embed_classify_and_translate_match_their_endpoints(tmp_path: Path, settings: Settings, client: TestClient,
                                                            reviews: list[tuple[str, str]]) -> None:
    rows = reviews[:24]
    texts = [t for _, t in rows]
    source = _jsonl_input(tmp_path, rows)

    def run(task: str, model: str, options: object = None) -> list[dict]:
        out = tmp_path / f"out-{task}-{model}"
        BatchJob(task, [source], out, model=model, text_column="respuesta", id_column="id", options=options,
                 settings=settings, part_rows=10).run(progress=False)
        table = read_output(out).to_pylist()
        assert [r["id"] for r in table] == [i for i, _ in rows] and all(r["error"] is None for r in table)
        assert {r["model"] for r in table} == {model}
        return table

    def over_http(path: str, body: dict, key: str) -> list:  # the tests' limit is 8 texts a request
        nonlocal texts
        return [x for i in range(0, len(texts), 8) for x in post(client, path, {**body, "texts": texts[i:i + 8]})[key]]

    embedded = run("embed", "w2v-small", EmbedOptions(normalize=True))
    expected = over_http("/v1/embeddings/texts", {"model": "w2v-small", "normalize": True}, "embeddings")
    for got, want in zip(embedded, expected, strict=True):
        assert (got["tokens"], got["oov"]) == (len(want["tokens"]), len(want["oov"]))
        np.testing.assert_allclose(got["embedding"], want["vector"], rtol=1e-6, atol=1e-7)
    for model in ("bow-small", "rnn-small"):
        classified = run("classify", model)
        expected = over_http("/v1/classify", {"model": model}, "results")
        assert [r["label"] for r in classified] == [e["label"] for e in expected]
        for got, want in zip(classified, expected, strict=True):
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    # The tiny translator takes at most 60 subword pieces: short texts (longer ones are their rows' errors).
    source = _jsonl_input(tmp_path, [(i, " ".join(t.split()[:6])) for i, t in rows])
    texts = [" ".join(t.split()[:6]) for t in texts]
    translated = run("translate", "tr-small", DecodeOptions(beam_size=2, max_length=20))
    expected = over_http("/v1/translate", {"model": "tr-small", "beam_size": 2, "max_length": 20}, "translations")
    assert [r["translation"] for r in translated] == expected


@pytest.fixture(scope="module")
def gen_settings(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Settings:
    folder = tmp_path_factory.mktemp("batch-gen")
    save_tiny_generator(folder, "gen-batch", positions=64)
    return Settings(models_dir=folder, cache_dir=cache_dir, device="cpu", default_generator_model="gen-batch")


def test_generate_matches_its_endpoint(tmp_path: Path, gen_settings: Settings,
                                       reviews: list[tuple[str, str]]) -> None:
    rows = [(i, t[:60]) for i, t in reviews[:12]] + [("long", "palabra " * 200)]
    params = [SamplingParams(max_new_tokens=10), SamplingParams(max_new_tokens=12, do_sample=True, seed=5,
                                                                 temperature=0.9, stop=("a ",))]
    with ready_client(create_app(gen_settings)) as client:
        for n, sampling in enumerate(params):
            out = tmp_path / f"out-{n}"
            BatchJob("generate", [_jsonl_input(tmp_path, rows)], out, text_column="respuesta", id_column="id",
                     options=sampling, settings=gen_settings).run(progress=False)
            table = read_output(out).to_pylist()
            # Over the engine's 64 positions: that row's error only.
            assert table[-1]["error"].startswith("limit_exceeded: the prompt has")
            for (_, text), got in zip(rows[:-1], table[:-1], strict=True):
                parameters = {"max_new_tokens": sampling.max_new_tokens, "stop": list(sampling.stop), "details": True}
                if sampling.do_sample:  # TGI samples when given a temperature
                    parameters |= {"do_sample": True, "seed": sampling.seed, "temperature": sampling.temperature}
                body = {"inputs": text, "parameters": parameters}
                want = post(client, "/v1/generate", body)
                assert got["generated_text"] == want["generated_text"]
                assert got["finish_reason"] == {"length": "length", "eos_token": "eos",
                                                "stop_sequence": "stop"}[want["details"]["finish_reason"]]


# ---- resuming ---------------------------------------------------------------------------------------------


def test_a_classifier_job_runs_a_batch_per_core_each_on_one_thread(tmp_path: Path, settings: Settings) -> None:
    import torch

    before = torch.get_num_threads()

    def workers(job: BatchJob) -> tuple[int, int]:
        processor = job.processor()
        try:
            return processor.service.models.batcher(processor.model.name).workers, torch.get_num_threads()
        finally:
            processor.close()

    def job(**kw: object) -> BatchJob:
        return BatchJob("classify", [tmp_path / "in.csv"], tmp_path / "out", model="rnn-small", **kw)  # type: ignore[arg-type]

    assert workers(job(settings=settings, workers=2)) == (2, 1)
    assert torch.get_num_threads() == before  # given back: torch's threads are the whole process's
    assert workers(job(settings=settings, workers=1)) == (1, before)
    # Set explicitly (NLP_BATCH_WORKERS, NLP_TORCH_THREADS): kept.
    explicit = settings.model_copy(update={"batch_workers": 3, "torch_threads": 2})
    assert workers(job(settings=explicit)) == (3, 2)
    assert torch.get_num_threads() == before


def test_a_killed_job_resumes_and_every_row_is_there_once(tmp_path: Path, settings: Settings,
                                                          reviews: list[tuple[str, str]]) -> None:
    rows = [(f"{k}-{i}", t) for k in range(100) for i, t in reviews[:50]]  # 5,000 rows
    source = write_csv(tmp_path / "big.csv.gz", rows)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nlp_service", "batch", "classify", str(source), "--output", str(out),
               "--model", "rnn-small", "--text-column", "respuesta", "--id-column", "id", "--part-rows", "100",
               "--batch-size", "16", "--models-dir", str(settings.models_dir)]
    env = {**os.environ, "NLP_DEVICE": "cpu"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    parts = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / MANIFEST).is_file():
            parts = len(json.loads((out / MANIFEST).read_text())["parts"])
            if parts >= 3:
                break
        time.sleep(0.02)
    assert proc.poll() is None, f"the job ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"] and 3 <= len(manifest["parts"]) < 50
    done = manifest["rows"]
    (out / f"part-{len(manifest['parts']):05d}.parquet").write_bytes(b"a part the manifest does not list")
    (out / ".part-99999.parquet.x.tmp").write_bytes(b"a temporary file of a write cut short")

    resumed = subprocess.run([*command, "--summary-json"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_rows"] == done and summary["rows"] == 5000 and summary["errors"] == 0
    assert not any(p.name.startswith(".") for p in out.iterdir())
    table = read_output(out)
    assert table.column("id").to_pylist() == [i for i, _ in rows]  # every row once, in order
    assert table.column("row").to_pylist() == list(range(5000))

    # The same as a run never interrupted, to the last bit: the same parts make the same batches.
    clean = tmp_path / "clean"
    BatchJob("classify", [source], clean, model="rnn-small", text_column="respuesta", id_column="id",
             settings=settings.model_copy(update={"batch_max_size": 16}), part_rows=100).run(progress=False)
    assert read_output(clean).equals(table)

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_an_output_folder_of_another_job_is_refused_unless_overwrite(tmp_path: Path, settings: Settings,
                                                                     reviews: list[tuple[str, str]]) -> None:
    source = write_csv(tmp_path / "a.csv", reviews[:5])
    out = tmp_path / "out"
    job = BatchJob("classify", [source], out, model="bow-small", text_column="respuesta", settings=settings)
    job.run(progress=False)
    with pytest.raises(OutputExists, match="differs in model"):
        BatchJob("classify", [source], out, model="rnn-small", text_column="respuesta", settings=settings).run()
    summary = BatchJob("classify", [source], out, model="rnn-small", text_column="respuesta", settings=settings,
                       overwrite=True).run(progress=False)
    assert summary.rows == 5 and set(read_output(out).column("model").to_pylist()) == {"rnn-small"}


# ---- command line, pipelines script, engines -------------------------------------------------------------


def test_each_task_runs_from_the_command_line(tmp_path: Path, settings: Settings, gen_settings: Settings,
                                              reviews: list[tuple[str, str]]) -> None:
    source = write_parquet(tmp_path / "in.parquet", [(i, " ".join(t.split()[:6])) for i, t in reviews[:6]])
    runs = [(["embed", "--model", "w2v-small", "--output-format", "jsonl"], settings, "embedding"),
            (["classify", "--model", "bow-small"], settings, "label"),
            (["translate", "--model", "tr-small", "--beam-size", "1", "--max-length", "10"], settings, "translation"),
            (["generate", "--model", "gen-batch", "--max-new-tokens", "4", "--stop", "x"], gen_settings,
             "generated_text")]
    for args, where, column in runs:
        out = tmp_path / f"out-{args[0]}"
        result = CliRunner().invoke(app, ["batch", *args, str(source), "--output", str(out), "--text-column",
                                          "respuesta", "--id-column", "id", "--models-dir", str(where.models_dir)])
        assert result.exit_code == 0, result.output
        assert f"batch {args[0]}" in result.output and "6 rows, 0 errors" in result.output
        table = read_output(out)
        assert table.num_rows == 6 and None not in table.column(column).to_pylist()
    result = CliRunner().invoke(app, ["batch", "translate", "--help"])
    assert "--beam-size" in result.output and "--num-actors" in result.output


def test_the_pipelines_script_and_the_local_engine_without_ray(tmp_path: Path, settings: Settings,
                                                               reviews: list[tuple[str, str]]) -> None:
    source = write_csv(tmp_path / "a.csv", reviews[:10])
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(REPO / "pipelines" / "batch_job.py"), "classify", str(source),
                             "--output", str(out), "--model", "bow-small", "--text-column", "respuesta",
                             "--models-dir", str(settings.models_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "10 rows" in result.stdout and read_output(out).num_rows == 10
    code = (f"from nlp_service.batch import BatchJob\nfrom nlp_service.config import Settings\n"
            f"BatchJob('classify', [{str(source)!r}], {str(tmp_path / 'out2')!r}, model='bow-small', "
            f"text_column='respuesta', settings=Settings(models_dir={str(settings.models_dir)!r})).run()")
    assert modules_loaded_by(code, ["ray"]) == []


@pytest.fixture
def ray_local() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_local_engines_output_row_for_row(tmp_path: Path, settings: Settings, ray_local: None,
                                                        reviews: list[tuple[str, str]]) -> None:
    files = [write_csv(tmp_path / "a.csv", reviews[:30]), write_parquet(tmp_path / "b.parquet", reviews[30:])]
    with open(files[0], "ab") as fh:
        fh.write(b'bad,"\xff"\n')
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for out in (local, on_ray):
        job = BatchJob("classify", files, out, model="rnn-small", text_column="respuesta", id_column="id",
                       settings=settings, part_rows=8)
        summary = job.run(progress=False) if out is local else run_on_ray(job, num_actors=2, block_rows=8,
                                                                           batch_size=8)
        assert summary.rows == 61 and summary.errors == 1
    expected, got = read_output(local), read_output(on_ray)
    assert got.schema == expected.schema
    # Row for row the same; probabilities to float rounding (batches of other texts: 3e-8 seen).
    assert got.drop_columns(["probabilities"]).equals(expected.drop_columns(["probabilities"]))
    for a, b in zip(got.column("probabilities").to_pylist(), expected.column("probabilities").to_pylist(), strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    assert json.loads((on_ray / MANIFEST).read_text())["summary"]["engine"] == "ray"
