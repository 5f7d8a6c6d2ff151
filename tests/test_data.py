from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest

from nlp_service.data import SPANISH_CORPUS, DataError, iter_corpus, iter_texts, record_format

TEXTS = ["Donde hay concordia siempre hay victoria.", "El niño comió pan, ¿verdad?", "Línea con\ttabulador"]


def test_plain_gz_bz2_read_the_same(tmp_path: Path) -> None:
    body = "\n".join(TEXTS) + "\n\n  \n"
    (tmp_path / "a.txt").write_text(body, encoding="utf-8")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write(body)
    with bz2.open(tmp_path / "a.txt.bz2", "wt", encoding="utf-8") as fh:
        fh.write(body)
    for name in ("a.txt", "a.txt.gz", "a.txt.bz2"):
        assert list(iter_texts(tmp_path / name)) == TEXTS, name


def test_jsonl_field_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i, t in enumerate(TEXTS):
            fh.write(json.dumps({"id": i, "cuerpo": t}, ensure_ascii=False) + "\n")
    assert list(iter_texts(path, "cuerpo")) == TEXTS
    with pytest.raises(DataError, match="no field 'texto'"):
        list(iter_texts(path, "texto"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        list(iter_texts(bad))


@pytest.mark.parametrize("suffix,delim", [(".csv", ","), (".tsv", "\t"), (".tsv.gz", "\t")])
def test_delimited_column_by_name(tmp_path: Path, suffix: str, delim: str) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delim)
    writer.writerow(["id", "label", "text"])
    for i, t in enumerate(TEXTS):
        writer.writerow([i, "pos", t])
    path = tmp_path / f"d{suffix}"
    if suffix.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
    else:
        path.write_text(buf.getvalue(), encoding="utf-8", newline="")
    assert list(iter_texts(path, "text")) == TEXTS  # quoted tab inside a TSV field survives
    with pytest.raises(DataError, match=r"no column 'texto'; columns are \['id', 'label', 'text'\]"):
        list(iter_texts(path, "texto"))


def test_readers_stream(tmp_path: Path) -> None:
    """A reader yields before reading the whole file: a broken tail is only hit when reached."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "uno"}\n' + "garbage\n", encoding="utf-8")
    it = iter_texts(path)
    assert next(it) == "uno"
    with pytest.raises(DataError):
        next(it)


def test_missing_file_and_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        list(iter_texts(tmp_path / "nope.txt"))
    assert record_format("x.JSONL.gz") == "jsonl"
    assert record_format("x.tsv.bz2") == "tsv"
    assert record_format("x.txt") == "text"


def test_shipped_corpus_is_real_spanish() -> None:
    assert len(SPANISH_CORPUS) == 3
    first = next(iter_corpus(SPANISH_CORPUS))
    assert isinstance(first, str) and first
    count = sum(1 for _ in iter_texts(SPANISH_CORPUS[0]))
    assert count > 10_000
