"""``nlp-service plot vectors`` and ``nlp-service plot attention``: real PNG files from the session's models."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from nlp_service.cli import app
from nlp_service.plots import pca_2d
from nlp_service.translate import TranslatorModel
from nlp_service.vectors import VectorsModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def assert_png(path: Path, min_size: tuple[int, int] = (200, 200)) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]


def test_pca_is_the_top_two_components() -> None:
    rng = np.random.default_rng(3)
    # Points spread along two known directions, with little noise elsewhere.
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0][:, :2]
    x = rng.normal(size=(40, 2)) * [10.0, 3.0] @ basis.T + rng.normal(scale=0.01, size=(40, 8)) + 5.0
    coords = pca_2d(x)
    centred = x - x.mean(axis=0)
    # The projection keeps almost all the variance, more on the first axis than the second.
    assert (coords**2).sum() == pytest.approx((centred**2).sum(), rel=1e-3)
    assert coords[:, 0].var() > coords[:, 1].var()
    assert pca_2d(x[:1]).tolist() == [[0.0, 0.0]]  # one word: the origin, not an error


def test_plot_vectors_with_neighbours(tmp_path: Path, models_dir: Path, w2v_model: Path) -> None:
    out = tmp_path / "maps" / "rey.png"
    result = invoke("plot", "vectors", "--model", "w2v-small", "rey", "dios", "tierra", "--neighbors", "3",
                    "--output", str(out), "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"plot: {out}")
    assert_png(out)


def test_plot_vectors_marks_subword_words(tmp_path: Path, models_dir: Path, ft_model: Path) -> None:
    model = VectorsModel.load(ft_model)
    [(_, known), (_, built)] = model.word_vectors(["government", "governmentalish"])
    assert (known, built) == ("vocabulary", "subwords")
    out = tmp_path / "ft.png"
    result = invoke("plot", "vectors", "--model", "ft-lee", "government", "governmentalish", "--output", str(out),
                    "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    assert_png(out)


def test_plot_vectors_bad_word(tmp_path: Path, models_dir: Path, w2v_model: Path) -> None:
    out = tmp_path / "none.png"
    result = invoke("plot", "vectors", "--model", "w2v-small", "rey", "zzqxjw", "wqxzzj", "--output", str(out),
                    "--models-dir", str(models_dir))
    assert result.exit_code == 1
    assert "error:" in result.stderr and "'zzqxjw'" in result.stderr and "'wqxzzj'" in result.stderr
    assert not out.exists()
    result = invoke("plot", "vectors", "--model", "no-such-model", "rey", "--models-dir", str(models_dir))
    assert result.exit_code == 1 and "error:" in result.stderr


@pytest.mark.parametrize("beam_size", ["1", "4"])
def test_plot_attention(tmp_path: Path, models_dir: Path, translator_model: Path, beam_size: str) -> None:
    text = "Pulse el icono para más información."
    out = tmp_path / f"att{beam_size}.png"
    result = invoke("plot", "attention", "--model", "tr-small", text, "--beam-size", beam_size, "--output",
                    str(out), "--models-dir", str(models_dir))
    assert result.exit_code == 0, result.output
    want = TranslatorModel.load(translator_model, device="cpu").translate([text], beam_size=int(beam_size))[0]
    assert result.stdout.splitlines() == [want, f"plot: {out}"]
    assert_png(out)


def test_plot_attention_errors(tmp_path: Path, models_dir: Path, translator_model: Path) -> None:
    result = invoke("plot", "attention", "--model", "tr-small", "palabra " * 100, "--output",
                    str(tmp_path / "x.png"), "--models-dir", str(models_dir))
    assert result.exit_code == 1 and "subword pieces" in result.stderr
    result = invoke("plot", "attention", "--model", "w2v-small", "hola", "--models-dir", str(models_dir))
    assert result.exit_code == 1 and "error:" in result.stderr
