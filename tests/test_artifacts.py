from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp_service.artifacts import (
    ArtifactError,
    Manifest,
    atomic_model_dir,
    list_models,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest,
)


def _save(models: Path, name: str, payload: str, *, overwrite: bool = False) -> Path:
    with atomic_model_dir(models, name, overwrite=overwrite) as tmp:
        (tmp / "weights.txt").write_text(payload)
        write_manifest(tmp, Manifest(name=name, kind="toy", format_version=1, params={"p": 1},
                                     metrics={"acc": 0.5}))
    return models / name


def test_save_writes_manifest_with_hashes(tmp_path: Path) -> None:
    path = _save(tmp_path, "m1", "hola")
    m = read_manifest(path)
    assert m.kind == "toy" and m.params == {"p": 1} and m.metrics == {"acc": 0.5}
    assert m.files["weights.txt"] == {"size": 4, "sha256": sha256_file(path / "weights.txt")}
    assert "numpy" in m.libraries and m.created_at
    raw = json.loads((path / "manifest.json").read_text())
    assert set(raw) >= {"kind", "format_version", "params", "data", "metrics", "created_at", "libraries", "files"}
    verify_files(path, m, checksums=True)


def test_failed_save_leaves_nothing_and_keeps_old_model(tmp_path: Path) -> None:
    _save(tmp_path, "m1", "version one")
    with pytest.raises(RuntimeError), atomic_model_dir(tmp_path, "m1", overwrite=True) as tmp:
        (tmp / "weights.txt").write_text("half-writ")
        raise RuntimeError("crash while saving")
    assert (tmp_path / "m1" / "weights.txt").read_text() == "version one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1"]


def test_overwrite_replaces_and_refuses_by_default(tmp_path: Path) -> None:
    _save(tmp_path, "m1", "one")
    with pytest.raises(ArtifactError, match="already exists"):
        _save(tmp_path, "m1", "two")
    _save(tmp_path, "m1", "two", overwrite=True)
    assert (tmp_path / "m1" / "weights.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["m1"]


def test_save_without_manifest_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="without a manifest"), atomic_model_dir(tmp_path, "m2") as tmp:
        (tmp / "x").write_text("x")
    assert not (tmp_path / "m2").exists()


def test_verify_detects_truncation_and_tampering(tmp_path: Path) -> None:
    path = _save(tmp_path, "m1", "abcdef")
    m = read_manifest(path)
    (path / "weights.txt").write_text("abcdeX")
    verify_files(path, m)  # same size: only the checksum sees it
    with pytest.raises(ArtifactError, match="sha256"):
        verify_files(path, m, checksums=True)
    (path / "weights.txt").write_text("abc")
    with pytest.raises(ArtifactError, match="size 3"):
        verify_files(path, m)


def test_list_models_skips_junk(tmp_path: Path) -> None:
    _save(tmp_path, "b", "1")
    _save(tmp_path, "a", "2")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{oops")
    assert [m.name for _, m in list_models(tmp_path)] == ["a", "b"]
    with pytest.raises(ArtifactError, match="cannot read"):
        read_manifest(tmp_path / "broken")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", ".."])
def test_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArtifactError, match="invalid model name"), atomic_model_dir(tmp_path, name):
        pass
