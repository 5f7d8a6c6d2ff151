"""The streaming fastText ``.bin`` reader (white-box: it imports ``nlp_service.vectors._fasttext_bin``) against
gensim's ``load_facebook_vectors`` on real files: gensim's ``lee_fasttext.bin`` (the pre-2017 format), a
model trained here and saved by gensim in Facebook's format, and synthetic files; broken files; memory."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gensim.models.fasttext import FastText, load_facebook_vectors, save_facebook_model
from gensim.models.fasttext_inner import compute_ngrams_bytes, ft_hash_bytes
from gensim.test.utils import datapath

from nlp_service.vectors import (
    ConversionError,
    VectorsModel,
    VectorStore,
    convert_vectors,
    fasttext_hash,
    ngram_bytes,
    read_vectors,
)
from nlp_service.vectors._fasttext_bin import MAGIC, _Reader, ngram_hasher

LEE = Path(datapath("lee_fasttext.bin"))
OOV = ["zzqx", "informaciónes", "ñandúes", "Köln-2024", "a", "🙂emoji"]


def assert_same_as_gensim(path: Path, limit: int | None = None) -> None:
    """Our words, raw vectors and OOV vectors equal gensim's (the sums' order differs: a few ulps)."""
    store = read_vectors(path, "fasttext-bin", limit=limit, progress=False)
    kv = load_facebook_vectors(str(path))
    n = len(kv.index_to_key) if limit is None else min(limit, len(kv.index_to_key))
    assert store.words == list(kv.index_to_key[:n])
    raw = np.asarray(store.unit) * np.asarray(store.norms)[:, None]
    np.testing.assert_allclose(raw, kv.vectors[:n], rtol=1e-5, atol=1e-6)
    assert store.subwords is not None
    np.testing.assert_array_equal(np.asarray(store.subwords.ngrams), kv.vectors_ngrams)
    for word in OOV:
        if word not in kv.key_to_index:
            np.testing.assert_allclose(store.vector(word)[0], kv[word], rtol=1e-6, atol=1e-7)
    assert store.path is not None and (store.path / "vectors.npy").is_file()


# ---- real files ------------------------------------------------------------------------------------


def test_lee_bin_equals_gensim() -> None:
    assert_same_as_gensim(LEE)


def test_lee_bin_limit() -> None:
    assert_same_as_gensim(LEE, limit=100)
    assert len(read_vectors(LEE, limit=1, progress=False)) == 1


@pytest.fixture(scope="module")
def spanish_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .bin trained here with gensim and saved in Facebook's (current, version 12) format."""
    sentences = [
        ["el", "niño", "comió", "una", "manzana", "en", "la", "mañana"],
        ["la", "canción", "del", "corazón", "suena", "en", "el", "salón"],
        ["información", "útil", "para", "el", "pingüino", "del", "árbol"],
        ["el", "camión", "llegó", "tarde", "a", "la", "estación", "de", "Málaga"],
        ["¿qué", "año", "es?", "¡ñandú", "y", "acción!"],
    ] * 20
    model = FastText(vector_size=12, window=3, min_count=1, epochs=3, bucket=500, min_n=2, max_n=5, seed=7,
                     workers=1)
    model.build_vocab(corpus_iterable=sentences)
    model.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=model.epochs)
    path = tmp_path_factory.mktemp("ft-es") / "es.bin"
    save_facebook_model(model, str(path))
    assert struct.unpack("<2i", path.read_bytes()[:8]) == (MAGIC, 12)
    return path


def test_trained_spanish_bin_equals_gensim(spanish_bin: Path) -> None:
    assert_same_as_gensim(spanish_bin)
    assert_same_as_gensim(spanish_bin, limit=5)
    store = read_vectors(spanish_bin, progress=False)
    assert {"niño", "canción", "pingüino", "Málaga"} <= set(store.words)


def test_convert_cli_path_links_the_streamed_files(spanish_bin: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    path = convert_vectors(spanish_bin, models, "es", ann=False, progress=False, limit=10)
    model = VectorsModel.load(path)
    kv = load_facebook_vectors(str(spanish_bin))
    assert model.store.words == list(kv.index_to_key[:10])
    kept = kv.index_to_key[3]
    np.testing.assert_allclose(model.word_vectors([kept])[0][0], kv[kept], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.word_vectors(["cancioncita"])[0][0], kv["cancioncita"], rtol=1e-6, atol=1e-7)
    assert sorted(p.name for p in models.iterdir()) == ["es"]  # the scratch folder is gone
    assert (path / "store" / "vectors.npy").stat().st_nlink == 1  # linked from it, then it was removed
    # With an index, as the default convert does.
    with_ann = convert_vectors(spanish_bin, models, "es-ann", progress=False)
    assert VectorsModel.load(with_ann).store.has_ann


def test_save_links_mapped_matrices_instead_of_copying(spanish_bin: Path, tmp_path: Path) -> None:
    store = read_vectors(spanish_bin, progress=False, workdir=tmp_path / "work")
    store.save(tmp_path / "saved")
    for name in ("vectors.npy", "norms.npy", "ngrams.npy"):
        assert os.path.samefile(tmp_path / "work" / name, tmp_path / "saved" / name)
    loaded = VectorStore.load(tmp_path / "saved")
    assert loaded.words == store.words
    np.testing.assert_array_equal(np.asarray(loaded.unit), np.asarray(store.unit))
    # A slice of a mapped matrix is not its file: written out, not linked.
    part = VectorStore(store.words[:3], store.unit[:3], store.norms[:3], subwords=store.subwords)
    part.save(tmp_path / "part")
    assert not os.path.samefile(tmp_path / "work" / "vectors.npy", tmp_path / "part" / "vectors.npy")
    assert VectorStore.load(tmp_path / "part").unit.shape == (3, store.dim)


def test_compressed_bin(tmp_path: Path) -> None:
    """cc.es.300 is published as .bin.gz: decompressed into the work folder first, then removed."""
    gz = tmp_path / "lee.bin.gz"
    gz.write_bytes(gzip.compress(LEE.read_bytes()))
    work = tmp_path / "work"
    store = read_vectors(gz, progress=False, workdir=work)
    assert store.words == list(load_facebook_vectors(str(LEE)).index_to_key)
    assert sorted(p.name for p in work.iterdir()) == ["ngrams.npy", "norms.npy", "vectors.npy"]
    cut = tmp_path / "cut.bin.gz"
    cut.write_bytes(gz.read_bytes()[:-100])
    with pytest.raises(ConversionError, match=r"cut\.bin\.gz: not a readable fastText \.bin file: cannot decompress"):
        read_vectors(cut, "fasttext-bin", progress=False)


def test_compiled_hasher_is_bit_identical() -> None:
    words = ["niño", "pingüino", "Ωmega", "日本語", "a", "🙂x", "corazón-roto", "x" * 40]
    for minn, maxn, bucket in [(3, 6, 2_000_000), (1, 3, 97), (2, 5, 500)]:
        hasher = ngram_hasher(minn, maxn, bucket)
        for word in words:
            ours = [fasttext_hash(g) % bucket for g in ngram_bytes(word, minn, maxn)]
            assert hasher(word) == ours
            assert [ft_hash_bytes(g) % bucket for g in compute_ngrams_bytes(word, minn, maxn)] == ours
    assert ngram_hasher(3, 0, 100)("hola") == []


# ---- synthetic files -------------------------------------------------------------------------------


def write_bin(path: Path, words: list[str], dim: int, bucket: int, *, minn: int = 3, maxn: int = 6, seed: int = 0,
              quant: int = 0, output: bool = True, chunk_rows: int = 50_000) -> Path:
    """A fastText .bin (version 12) with random float32 matrices, written a chunk of rows at a time."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<2i", MAGIC, 12))
        fh.write(struct.pack("<12id", dim, 5, 5, 1, 5, 1, 2, 1, bucket, minn, maxn, 100, 1e-4))
        fh.write(struct.pack("<3i2q", len(words), len(words), 0, 10 * len(words), -1))
        for i, word in enumerate(words):
            fh.write(word.encode() + b"\0" + struct.pack("<qb", len(words) - i, 0))
        fh.write(bytes([quant]))
        rows = len(words) + bucket
        fh.write(struct.pack("<2q", rows, dim))
        for start in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - start)
            fh.write((rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.1)).tobytes())
        if output:
            fh.write(b"\0" + struct.pack("<2q", len(words), dim))
            zeros = np.zeros((min(chunk_rows, len(words)), dim), dtype=np.float32).tobytes()
            for start in range(0, len(words), chunk_rows):
                fh.write(zeros[: min(chunk_rows, len(words) - start) * dim * 4])
    return path


def spanish_like_words(count: int, seed: int = 0) -> list[str]:
    syllables = ["ca", "de", "la", "ción", "mien", "to", "ñu", "qué", "rá", "es", "pa", "ro", "güe", "sí", "tri",
                 "bl", "an", "cho", "llo", "zu", "má", "en", "gi", "fo", "vi", "ré", "xo", "us", "ter", "ha"]
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        parts = rng.integers(0, len(syllables), size=(count, 5))
        lengths = rng.integers(1, 6, size=count)
        for row, k in zip(parts, lengths, strict=True):
            word = "".join(syllables[j] for j in row[:k])
            if word not in seen:
                seen.add(word)
                out.append(word)
                if len(out) == count:
                    break
    return out


def test_synthetic_bin_equals_gensim(tmp_path: Path) -> None:
    path = write_bin(tmp_path / "syn.bin", spanish_like_words(3000), dim=16, bucket=5000)
    assert_same_as_gensim(path)
    assert_same_as_gensim(path, limit=1234)


def test_reader_across_buffer_boundaries(tmp_path: Path) -> None:
    """Words and records that straddle the reader's buffer (4 MB for real; 7 bytes here)."""
    words = spanish_like_words(500)
    data = b"".join(w.encode() + b"\0" + struct.pack("<qb", i, 0) for i, w in enumerate(words))
    path = broken(tmp_path, data, "dictionary.bin")
    for size in (1, 7, 64, 1 << 22):
        with open(path, "rb") as fh:
            reader = _Reader(fh, path, buffer_size=size)
            got = []
            for i in range(len(words)):
                got.append(reader.until_nul("word").decode())
                assert struct.unpack("<qb", reader.read(9, "entry")) == (i, 0)
            assert got == words and reader.offset == len(data)


def test_synthetic_bin_without_output_matrix(tmp_path: Path) -> None:
    path = write_bin(tmp_path / "vectors-only.bin", spanish_like_words(50), dim=4, bucket=30, output=False)
    assert len(read_vectors(path, progress=False)) == 50


# ---- broken files ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_bin(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_bin(tmp_path_factory.mktemp("good") / "good.bin", spanish_like_words(200), dim=8, bucket=100)
    return path.read_bytes()


def broken(tmp_path: Path, data: bytes, name: str = "broken.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def matrix_offset(data: bytes) -> int:
    """Offset of the input matrix's first float in a file of :func:`write_bin` (200 words)."""
    pos = 8 + 56 + 28
    for _ in range(200):
        pos = data.index(b"\0", pos) + 1 + 9
    return pos + 1 + 16


@pytest.mark.parametrize(("cut", "message"), [
    (5, r"truncated: the file ends inside the header \(byte 0\)"),
    (70, r"truncated: the file ends inside the dictionary header"),
    (400, r"truncated: the file ends inside dictionary entry \d+ of 200"),
    (-7000, r"truncated: the input matrix \(300 x 8 floats from byte \d+\) needs \d+ bytes, the file has"),
    (-10, r"truncated: the output matrix \(200 x 8, byte \d+\) needs 6417 bytes, 6407 remain"),
])
def test_truncated_file(tmp_path: Path, good_bin: bytes, cut: int, message: str) -> None:
    path = broken(tmp_path, good_bin[:cut])
    with pytest.raises(ConversionError, match=r"broken\.bin: not a readable fastText \.bin file: " + message):
        read_vectors(path, "fasttext-bin", progress=False)


def test_wrong_magic(tmp_path: Path, good_bin: bytes) -> None:
    path = broken(tmp_path, struct.pack("<i", -12345) + good_bin[4:])
    with pytest.raises(ConversionError, match=r"not a fastText \.bin: magic number -12345, expected 793712314"):
        read_vectors(path, "fasttext-bin", progress=False)
    with pytest.raises(ConversionError, match=r"file version 99"):
        read_vectors(broken(tmp_path, good_bin[:4] + struct.pack("<i", 99) + good_bin[8:]), "fasttext-bin",
                     progress=False)


def test_quantized_model_is_refused(tmp_path: Path, good_bin: bytes) -> None:
    flag = matrix_offset(good_bin) - 17
    path = broken(tmp_path, good_bin[:flag] + b"\x01" + good_bin[flag + 1 :], "model.ftz")
    with pytest.raises(ConversionError, match=r"model\.ftz: .*a quantized fastText model \(\.ftz, quant_input set at "
                                              rf"byte {flag}\)"):
        read_vectors(path, "fasttext-bin", progress=False)


def test_bad_dimensions(tmp_path: Path, good_bin: bytes) -> None:
    shape = matrix_offset(good_bin) - 16
    wrong_dim = good_bin[:shape] + struct.pack("<2q", 300, 9) + good_bin[shape + 16 :]
    with pytest.raises(ConversionError, match=r"input matrix is 300 x 9 \(byte \d+\); the header says 200 words "
                                              r"\+ 100 buckets = 300 rows of dim 8"):
        read_vectors(broken(tmp_path, wrong_dim), "fasttext-bin", progress=False)
    wrong_rows = good_bin[:shape] + struct.pack("<2q", 301, 8) + good_bin[shape + 16 :]
    with pytest.raises(ConversionError, match=r"input matrix is 301 x 8"):
        read_vectors(broken(tmp_path, wrong_rows), "fasttext-bin", progress=False)
    zero_dim = good_bin[:8] + struct.pack("<i", 0) + good_bin[12:]
    with pytest.raises(ConversionError, match=r"bad model arguments: dim 0"):
        read_vectors(broken(tmp_path, zero_dim), "fasttext-bin", progress=False)


def test_nan_values_are_named(tmp_path: Path, good_bin: bytes) -> None:
    row = matrix_offset(good_bin) + 3 * 8 * 4  # the 4th word's own row
    data = good_bin[:row] + np.array([np.nan], dtype="<f4").tobytes() + good_bin[row + 4 :]
    with pytest.raises(ConversionError, match=r"word 4 \('\w+'\) holds NaN or infinite values"):
        read_vectors(broken(tmp_path, data), "fasttext-bin", progress=False)


def test_failed_convert_leaves_no_model_folder(tmp_path: Path, good_bin: bytes) -> None:
    models = tmp_path / "models"
    path = broken(tmp_path, good_bin[:-7000])
    with pytest.raises(ConversionError, match="truncated"):
        convert_vectors(path, models, "cut", ann=False, progress=False)
    assert list(models.iterdir()) == []  # neither the model nor its scratch or temporary folders


# ---- memory ---------------------------------------------------------------------------------------------

MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    import numpy as np, scipy.sparse, gensim.models.fasttext_inner, tqdm.auto  # what the reader imports
    from nlp_service.vectors import VectorsModel, convert_vectors
    from nlp_service.vectors import _fasttext_bin

    _fasttext_bin.CHUNK_BYTES = 4 << 20  # the laptop's 128 MB, scaled down to this file
    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    probe = np.ones((64, 64)) @ np.ones((64, 64))  # BLAS' own buffers before the baseline
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS (Linux >= 4.0)
    before = status("VmRSS")
    path = convert_vectors(Path(sys.argv[1]), Path(sys.argv[2]), "big", ann=False, progress=False)
    peak = status("VmHWM")
    control = np.fromfile(sys.argv[1], dtype=np.uint8)  # what reading the file whole would cost
    control_peak = status("VmHWM")
    store = VectorsModel.load(path).store
    print(json.dumps({"growth_kb": peak - before, "control_growth_kb": control_peak - before,
                      "words": len(store), "buckets": store.subwords.bucket}))
""")


@pytest.fixture(scope="module")
def big_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = write_bin(tmp_path_factory.mktemp("big") / "big.bin", spanish_like_words(200_000, seed=1), dim=100,
                     bucket=600_000)
    yield path
    path.unlink()


def test_memory_stays_bounded_on_a_large_file(big_bin: Path, tmp_path: Path) -> None:
    """200k words + 600k buckets x 100 dims: a 320 MB input matrix (and an 80 MB output matrix), which
    gensim holds twice over. The streamed conversion with 4 MB chunks needs the vocabulary (200k Python
    strings, then its lookup table: ~55 MB measured) and a few chunks: ~80 MB. The bound, 40% of the
    matrix (128 MB), is far from both; the control shows the measure sees a whole read of the file."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(big_bin), str(tmp_path / "models")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["words"] == 200_000 and report["buckets"] == 600_000
    matrix_kb = 800_000 * 100 * 4 // 1024
    assert report["control_growth_kb"] > matrix_kb, report
    assert report["growth_kb"] < 0.4 * matrix_kb, report
