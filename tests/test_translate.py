"""Translation: parallel readers, subwords, the seq2seq network, greedy/beam search, training, artifacts."""

from __future__ import annotations

import gzip
import io
import itertools
import math
import zipfile
from pathlib import Path

import pytest
import sacrebleu
import torch

from nlp_service.artifacts import ArtifactError
from nlp_service.data import PARALLEL_BIBLE, PARALLEL_LIBREOFFICE, DataError, iter_anki_pairs, iter_parallel
from nlp_service.translate import (
    DecodeOptions,
    LengthFilter,
    Seq2Seq,
    Seq2SeqParams,
    Subwords,
    TranslationRequest,
    TranslatorModel,
    beam_search,
    decode_many,
    greedy_decode,
    read_parallel,
    score_sequences,
    split_pairs,
    train_seq2seq,
)
from nlp_service.translate._seq2seq import collate, length_penalty  # white-box: the search's own pieces
from nlp_service.translate._subwords import EOS

# The exact Tatoeba/Anki export format of manythings.org's spa-eng.zip (spa.txt).
ANKI_LINES = (
    "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986655 (cueyayotl)\n"
    "Go.\tVete.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986656 (cueyayotl)\n"
    "I love you.\tTe quiero.\tCC-BY 2.0 (France) Attribution: tatoeba.org #1434 (awael) & #1447 (Shishir)\n"
    "\n"
    "Thank you very much.\tMuchas gracias.\tCC-BY 2.0 (France) Attribution: tatoeba.org #20 (CK) & #407 (x)\n"
)


def _libreoffice(n: int) -> list[tuple[str, str]]:
    return list(itertools.islice(iter_parallel(PARALLEL_LIBREOFFICE, "es", "en"), n))


# -- readers ---------------------------------------------------------------------------------


def test_shipped_parallel_files_read_in_both_directions() -> None:
    es_en = list(itertools.islice(iter_parallel(PARALLEL_BIBLE, "es", "en"), 3))
    en_es = list(itertools.islice(iter_parallel(PARALLEL_BIBLE, "en", "es"), 3))
    assert [(b, a) for a, b in es_en] == en_es
    assert "Asirios" in es_en[0][0] and "Assyrians" in es_en[0][1]
    assert sum(1 for _ in iter_parallel(PARALLEL_LIBREOFFICE, "es", "en")) == 6101


def test_anki_txt_and_zip(tmp_path: Path) -> None:
    txt = tmp_path / "spa.txt"
    txt.write_text(ANKI_LINES, encoding="utf-8")
    pairs = list(iter_anki_pairs(txt))
    assert pairs == [("Go.", "Ve."), ("Go.", "Vete."), ("I love you.", "Te quiero."),
                     ("Thank you very much.", "Muchas gracias.")]
    archive = tmp_path / "spa-eng.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("_about.txt", "Tab-delimited bilingual sentence pairs from tatoeba.org\n")
        zf.writestr("spa.txt", ANKI_LINES)
    assert list(iter_parallel(archive, "es", "en")) == [(b, a) for a, b in pairs]
    assert list(iter_parallel(archive, "en", "es")) == pairs
    with pytest.raises(DataError, match="pairs English with one other language"):
        list(iter_parallel(archive, "es", "fr"))
    data = read_parallel([archive], "es", "en")
    assert data.sources == ["Ve.", "Vete.", "Te quiero.", "Muchas gracias."] and data.origins[0] == "spa-eng"


def test_reader_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("only one field\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:1: expected English<TAB>translation"):
        list(iter_anki_pairs(bad))
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("id\tspanish\tenglish\n1\thola\thello\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'es'; columns are \['id', 'spanish', 'english'\]"):
        list(iter_parallel(tsv, "es", "en"))
    assert list(iter_parallel(tsv, "es", "en", source_column="spanish", target_column="english")) == [
        ("hola", "hello")]
    with pytest.raises(DataError, match="no such file"):
        list(iter_parallel(tmp_path / "missing.zip", "es", "en"))


def test_dedupe_length_filter_and_split(tmp_path: Path) -> None:
    tsv = tmp_path / "p.tsv.gz"
    rows = ["es\ten", "uno dos\tone two", "uno dos\tone, two", "a b c d e f g h\tx", "tres\tthree", " \tempty"]
    with gzip.open(tsv, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    data = read_parallel([tsv], "es", "en", length=LengthFilter(max_words=10, max_ratio=2.0))
    assert data.sources == ["uno dos", "tres"]
    assert data.dropped == {"duplicate": 1, "length": 1}
    split = split_pairs(1000, validation=0.05, test=0.05, seed=3)
    assert split == split_pairs(1000, validation=0.05, test=0.05, seed=3)
    assert split != split_pairs(1000, validation=0.05, test=0.05, seed=4)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [900, 50, 50]
    assert sorted(split["train"] + split["validation"] + split["test"]) == list(range(1000))
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_pairs(10, validation=0.5, test=0.5, seed=1)


# -- subwords --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["bpe", "unigram"])
def test_subwords_round_trip(algorithm: str, tmp_path: Path) -> None:
    texts = [es for es, _ in _libreoffice(2000)]
    words = Subwords.train(texts, vocab_size=800, algorithm=algorithm)  # type: ignore[arg-type]
    assert len(words) == 800
    probe = ["Pulse el icono para más información.", "¿Desea guardar los cambios (sí/no)?", "Niño: «año», 3,5 %"]
    ids = words.encode(probe)
    assert all(row[-1] == EOS for row in ids)
    assert words.decode(ids) == probe  # spacing and punctuation come back exactly
    assert words.encode(probe, max_tokens=3)[0] == [*ids[0][:3], EOS]
    words.save(tmp_path / "w.json")
    assert Subwords.load(tmp_path / "w.json").encode(probe) == ids


# -- network and search ----------------------------------------------------------------------


def _tiny(attention: str = "luong", vocab: int = 6, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    params = Seq2SeqParams(embedding_dim=8, hidden_size=8, attention=attention, dropout=0.0)  # type: ignore[arg-type]
    model = Seq2Seq(vocab, vocab, params)
    # Random init gives near-uniform outputs; sharpen them so the search has something to find.
    with torch.no_grad():
        model.out.weight.mul_(8.0)
    return model.eval()


def _sources(vocab: int, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    seqs = [[*torch.randint(4, vocab, (n - 1,), generator=gen).tolist(), EOS] for n in lengths]
    return collate(seqs, torch.device("cpu"))


def _exhaustive_best(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, vocab: int, max_length: int,
                     alpha: float) -> list[tuple[list[int], float]]:
    """Every hypothesis the search may return, scored by teacher forcing: the exact optimum."""
    real = list(range(4, vocab))
    best = []
    for i in range(src.size(0)):
        candidates: list[tuple[list[int], list[int], int]] = []  # (pieces, scored targets, length)
        for n in range(1, max_length):  # n pieces then </s> (never </s> first)
            candidates += [(list(p), [*p, EOS], n + 1) for p in itertools.product(real, repeat=n)]
        candidates += [(list(p), list(p), max_length) for p in itertools.product(real, repeat=max_length)]
        scores = score_sequences(model, src[i : i + 1], src_len[i : i + 1], [c[1] for c in candidates])
        normalized = [s / length_penalty(c[2], alpha) for s, c in zip(scores, candidates, strict=True)]
        j = max(range(len(candidates)), key=normalized.__getitem__)
        best.append((candidates[j][0], normalized[j]))
    return best


@pytest.mark.parametrize(("attention", "alpha"), [("luong", 0.0), ("luong", 1.0), ("bahdanau", 0.6)])
def test_wide_beam_search_is_exact_search(attention: str, alpha: float) -> None:
    vocab, max_length = 7, 4  # 3 real pieces: 3 + 9 + 27 finished and 81 cut hypotheses per sentence
    model = _tiny(attention, vocab)
    src, src_len = _sources(vocab, [5, 2, 4])
    exact = _exhaustive_best(model, src, src_len, vocab, max_length, alpha)
    found = beam_search(model, src, src_len, beam_size=27, max_length=max_length, alpha=alpha)
    for (tokens, normalized), hyps in zip(exact, found, strict=True):
        assert hyps[0].tokens == tokens
        assert hyps[0].normalized == pytest.approx(normalized, abs=1e-4)


def test_beam_of_one_is_greedy_and_scores_are_consistent() -> None:
    vocab = 30
    model = _tiny("luong", vocab, seed=3)
    src, src_len = _sources(vocab, [9, 3, 6, 12], seed=5)
    greedy, greedy_scores = greedy_decode(model, src, src_len, max_length=15)
    beam1 = beam_search(model, src, src_len, beam_size=1, max_length=15, alpha=0.0)
    assert [h[0].tokens for h in beam1] == greedy
    for hyp, g in zip(beam1, greedy_scores, strict=True):
        assert hyp[0].score == pytest.approx(g, abs=1e-4)
    # Scores returned by the search are the model's own log-probabilities of its output.
    beam5 = beam_search(model, src, src_len, beam_size=5, max_length=15, alpha=0.0, n_best=3)
    for i, hyps in enumerate(beam5):
        assert len(hyps) == 3 and hyps[0].normalized >= hyps[1].normalized >= hyps[2].normalized
        target = [*hyps[0].tokens, EOS] if hyps[0].finished else hyps[0].tokens
        assert score_sequences(model, src[i : i + 1], src_len[i : i + 1], [target])[0] == pytest.approx(
            hyps[0].score, abs=1e-4)
        # A wider search never finds a worse best hypothesis (alpha 0: total log-probability).
        assert hyps[0].score >= beam1[i][0].score - 1e-5


@pytest.mark.parametrize("beam_size", [1, 4])
@pytest.mark.parametrize("max_length", [12, None])
def test_batched_decoding_equals_one_at_a_time(beam_size: int, max_length: int | None) -> None:
    """Padding, masking and the default length cap (from each source's own length) never let a
    sentence's translation depend on the others in its batch."""
    vocab = 40
    model = _tiny("bahdanau", vocab, seed=11)
    with torch.no_grad():
        model.out.bias[EOS] = -20.0  # never stops by itself: every output runs to its length cap
    gen = torch.Generator().manual_seed(2)
    sources = [[*torch.randint(4, vocab, (n,), generator=gen).tolist(), EOS] for n in (1, 7, 3, 12, 5, 9)]
    batched = decode_many(model, sources, beam_size=beam_size, max_length=max_length, batch_size=64)
    single = [decode_many(model, [s], beam_size=beam_size, max_length=max_length)[0] for s in sources]
    assert batched == single
    if max_length is None:
        assert [len(x) for x in batched] == [2 * len(s) + 10 for s in sources]


# -- training --------------------------------------------------------------------------------


def _encode_pairs(n: int) -> tuple[Subwords, Subwords, list[list[int]], list[list[int]], list[str]]:
    pairs = [p for p in _libreoffice(400) if len(p[0].split()) <= 5][:n]
    src = Subwords.train([s for s, _ in pairs], vocab_size=300)
    tgt = Subwords.train([t for _, t in pairs], vocab_size=300)
    return src, tgt, src.encode([s for s, _ in pairs]), tgt.encode([t for _, t in pairs]), [t for _, t in pairs]


def test_training_learns_to_translate_its_training_pairs() -> None:
    """Memorising 48 real pairs exercises the whole path: subwords, attention, teacher forcing, search."""
    src_words, tgt_words, src, tgt, refs = _encode_pairs(48)
    params = Seq2SeqParams(embedding_dim=64, hidden_size=128, dropout=0.0, label_smoothing=0.0, epochs=60,
                           patience=100, batch_tokens=400, learning_rate=5e-3, seed=1)
    result = train_seq2seq(src, tgt, src, refs, source_vocab=len(src_words), target_vocab=len(tgt_words),
                           params=params, detokenize=tgt_words.decode, device="cpu", progress=False)
    hyps = tgt_words.decode(decode_many(result.model, src, beam_size=3))
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert bleu > 80, list(zip(refs, hyps, strict=True))[:5]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] / 5
    assert result.best_val_bleu == max(h["val_bleu"] for h in result.history)


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path: Path) -> None:
    src_words, tgt_words, src, tgt, refs = _encode_pairs(40)

    def run(epochs: int, ckpt: Path | None) -> tuple[dict[str, torch.Tensor], list[dict[str, object]]]:
        params = Seq2SeqParams(embedding_dim=16, hidden_size=16, epochs=epochs, patience=10, batch_tokens=200,
                               seed=4)
        r = train_seq2seq(src, tgt, src[:8], refs[:8], source_vocab=len(src_words), target_vocab=len(tgt_words),
                          params=params, detokenize=tgt_words.decode, checkpoint_dir=ckpt, device="cpu",
                          progress=False)
        return r.model.state_dict(), r.history

    whole, whole_history = run(3, None)
    run(2, tmp_path)  # "interrupted" after two epochs
    resumed, resumed_history = run(3, tmp_path)
    assert [h["train_loss"] for h in resumed_history] == [h["train_loss"] for h in whole_history]
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key


def test_time_budget_stops_training() -> None:
    src_words, tgt_words, src, tgt, refs = _encode_pairs(40)
    params = Seq2SeqParams(embedding_dim=16, hidden_size=16, epochs=1000, patience=1000, batch_tokens=100,
                           max_minutes=0.02)
    r = train_seq2seq(src, tgt, src[:4], refs[:4], source_vocab=len(src_words), target_vocab=len(tgt_words),
                      params=params, detokenize=tgt_words.decode, device="cpu", progress=False)
    assert r.stopped == "time_budget" and len(r.history) < 1000 and r.seconds < 60


def test_params_are_validated() -> None:
    for bad in ({"attention": "dot"}, {"hidden_size": 7}, {"dropout": 1.0}, {"vocab_size": 10},
                {"max_minutes": 0}, {"subword": "wordpiece"}):
        with pytest.raises(ValueError):
            Seq2SeqParams(**bad).validate()  # type: ignore[arg-type]


# -- artifacts -------------------------------------------------------------------------------


def test_saved_translator(translator_model: Path) -> None:
    model = TranslatorModel.load(translator_model, device="cpu")
    assert (model.source_lang, model.target_lang, model.backend) == ("es", "en", "seq2seq")
    test = model.manifest.metrics["test"]
    assert 0 <= test["bleu"] <= 100 and 0 <= test["chrf"] <= 100 and test["sentences"] > 0
    assert set(test["by_source"]) == {"libreoffice_ui", "rv1909_kjv"}
    lines = (translator_model / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "es\ten\torigin" and len(lines) - 1 == test["sentences"]
    texts = ["Pulse el icono para más información.", "Y dijo Dios: Sea la luz."]
    out = model.translate(texts, beam_size=3)
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    beam3, greedy = DecodeOptions(beam_size=3), DecodeOptions(beam_size=1)
    items = [TranslationRequest(texts[0], beam3), TranslationRequest(texts[1], greedy),
             TranslationRequest(texts[1], beam3)]
    assert [t.text for t in model.predict(items)] == [out[0], model.translate([texts[1]], beam_size=1)[0], out[1]]
    assert model.describe()["test_metrics"]["bleu"] == test["bleu"]


def test_loading_never_unpickles_objects(translator_model: Path, tmp_path: Path) -> None:
    import shutil

    from nlp_service.artifacts import read_manifest, write_manifest

    folder = tmp_path / "evil"
    shutil.copytree(translator_model, folder)
    torch.save({"payload": io.BytesIO(b"not a tensor")}, folder / "model.pt")
    write_manifest(folder, read_manifest(folder))  # checksums match: only weights_only stands in the way
    with pytest.raises(ArtifactError, match="cannot load translator"):
        TranslatorModel.load(folder, device="cpu")


def test_length_penalty_is_gnmt() -> None:
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert math.isclose(length_penalty(10, 0.6), (15 / 6) ** 0.6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_with_mixed_precision_and_decoding() -> None:
    """On CUDA: training runs under autocast, and greedy/beam decoding on the GPU gives the CPU's
    output for the same weights (fp16/bf16 autocast may flip near-ties: most must agree)."""
    src_words, tgt_words, src, tgt, refs = _encode_pairs(48)
    params = Seq2SeqParams(embedding_dim=64, hidden_size=128, dropout=0.0, label_smoothing=0.0, epochs=40,
                           patience=100, batch_tokens=400, learning_rate=5e-3, seed=1)
    result = train_seq2seq(src, tgt, src, refs, source_vocab=len(src_words), target_vocab=len(tgt_words),
                           params=params, detokenize=tgt_words.decode, device="cuda", progress=False)
    assert result.device.startswith("cuda")
    gpu = decode_many(result.model, src, beam_size=3)
    assert sacrebleu.corpus_bleu(tgt_words.decode(gpu), [refs]).score > 80
    cpu_model = result.model.to("cpu")
    cpu = decode_many(cpu_model, src, beam_size=3, device=torch.device("cpu"))
    assert sum(a == b for a, b in zip(gpu, cpu, strict=True)) >= 0.9 * len(src)
