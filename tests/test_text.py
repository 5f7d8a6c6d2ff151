from __future__ import annotations

from pathlib import Path

from gensim.models.phrases import Phrases

from nlp_service.text import PhraseMerger, Tokenizer, strip_accents, tokenize_to_file


def test_spanish_tokenization() -> None:
    tok = Tokenizer()
    assert tok.tokenize("¿Qué tal? El Niño comió 3,5 kg de pan.") == ["qué", "tal", "el", "niño", "comió",
                                                                       "3,5", "kg", "de", "pan"]
    assert Tokenizer(keep_punct=True).tokenize("¡Hola!") == ["¡", "hola", "!"]
    assert Tokenizer(lowercase=False).tokenize("Madrid es bonita") == ["Madrid", "es", "bonita"]


def test_strip_accents_keeps_enye() -> None:
    assert strip_accents("Árbol pingüino acción año") == "Arbol pinguino accion año"
    assert Tokenizer(strip_accents=True).tokenize("Canción del Niño") == ["cancion", "del", "niño"]


def test_tokenizer_round_trips_through_manifest_dict() -> None:
    tok = Tokenizer(lowercase=False, strip_accents=True)
    again = Tokenizer.from_dict(tok.to_dict())
    assert again == tok and again.fingerprint() == tok.fingerprint()
    assert Tokenizer().fingerprint() != tok.fingerprint()


def test_parallel_tokenization_keeps_order(tmp_path: Path) -> None:
    texts = [f"Frase número {i}: el perro ladra." for i in range(5000)]
    one = tmp_path / "one.txt"
    two = tmp_path / "two.txt"
    stats1 = tokenize_to_file(texts, one, Tokenizer(), workers=1, chunk_size=300, progress=False)
    stats2 = tokenize_to_file(texts, two, Tokenizer(), workers=2, chunk_size=300, progress=False)
    assert one.read_text() == two.read_text()
    assert stats1 == stats2 == {"sentences": 5000, "words": 5000 * 6}
    assert two.read_text().splitlines()[4999] == "frase número 4999 el perro ladra"
    assert not list(tmp_path.glob("*.tmp*"))


def test_phrase_merger_matches_gensim() -> None:
    sentences = [["nueva", "york", "es", "grande"], ["vivo", "en", "nueva", "york"], ["york", "nueva", "york"],
                 ["buenos", "aires", "y", "nueva", "york"]] * 30
    frozen = Phrases(sentences, min_count=1, threshold=0.05).freeze()
    merger = PhraseMerger.from_dict(PhraseMerger({k: float(v) for k, v in frozen.phrasegrams.items()}).to_dict())
    assert "nueva_york" in merger.phrasegrams
    for sent in [*sentences[:4], ["nueva"], [], ["nueva", "york", "nueva", "york"]]:
        assert merger(sent) == frozen[sent]
