"""The vectors endpoints over HTTP (TestClient): results checked against gensim on the same vectors,
their limits and their bad input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gensim.models import KeyedVectors
from gensim.models.fasttext import FastTextKeyedVectors, load_facebook_vectors
from gensim.test.utils import datapath

from nlp_service.vectors import VectorsModel

from .helpers import FT, W2V, assert_error, post

TOL = 1e-5


# ---- reference models: the same vectors, loaded in gensim -------------------------------------


@pytest.fixture(scope="module")
def w2v_kv(w2v_model: Path) -> KeyedVectors:
    """gensim KeyedVectors rebuilt from the native store's raw vectors (unit * norm)."""
    store = VectorsModel.load(w2v_model).store
    raw = np.asarray(store.unit, dtype=np.float32) * np.asarray(store.norms, dtype=np.float32)[:, None]
    kv = KeyedVectors(store.dim, dtype=np.float32)  # no count=: add_vectors appends after preallocated rows
    kv.add_vectors(list(store.words), raw)
    assert len(kv) == len(store)
    return kv


@pytest.fixture(scope="module")
def ft_kv() -> FastTextKeyedVectors:
    """gensim's own reading of the fastText .bin the ft-lee model was converted from."""
    return load_facebook_vectors(datapath("lee_fasttext.bin"))


@pytest.fixture(scope="module")
def kvs(w2v_kv: KeyedVectors, ft_kv: FastTextKeyedVectors) -> dict[str, KeyedVectors]:
    return {W2V: w2v_kv, FT: ft_kv}



def assert_same_neighbors(got: list[dict[str, Any]], expected: list[tuple[str, float]]) -> None:
    assert [n["word"] for n in got] == [w for w, _ in expected]
    np.testing.assert_allclose([n["score"] for n in got], [s for _, s in expected], atol=TOL)


def test_models_list_describes_the_vectors(client: TestClient, kvs: dict[str, KeyedVectors]) -> None:
    by_name = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    w2v, ft = by_name[W2V], by_name[FT]
    assert (w2v["kind"], w2v["dimensions"], w2v["words"]) == ("vectors", 32, len(kvs[W2V]))
    assert w2v["subwords"] is False
    assert w2v["approximate_index"] is True
    assert 0.0 < w2v["ann_recall_at_10"] <= 1.0
    assert w2v["source"] == "word2vec"
    assert "train" in w2v["metrics"] and "ann" in w2v["metrics"]
    assert (ft["kind"], ft["dimensions"], ft["words"]) == ("vectors", 10, len(kvs[FT].index_to_key))
    assert ft["subwords"] is True
    assert ft["approximate_index"] is False
    assert ft["ann_recall_at_10"] is None
    assert ft["source"].endswith("lee_fasttext.bin")


# ---- results equal gensim's -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "word"), [(W2V, "rey"), (W2V, "tierra"), (FT, "government"), (FT, "police")]
)
def test_neighbors_by_word_match_gensim(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str, word: str
) -> None:
    body = post(client, "/v1/neighbors", {"model": model, "word": word, "topn": 15})
    assert body["model"] == model
    assert body["approximate"] is False
    assert len(body["neighbors"]) == 15
    assert_same_neighbors(body["neighbors"], kvs[model].most_similar(word, topn=15))


def test_neighbors_default_model_and_topn(client: TestClient, w2v_kv: KeyedVectors) -> None:
    body = post(client, "/v1/neighbors", {"word": "dios"})
    assert body["model"] == W2V  # settings.default_vectors_model
    assert_same_neighbors(body["neighbors"], w2v_kv.most_similar("dios", topn=10))


@pytest.mark.parametrize(
    ("model", "positive", "negative"),
    [
        (W2V, ["rey", "mujer"], ["hombre"]),
        (W2V, ["tierra", "agua", "cielos"], []),
        (W2V, [], ["dios"]),
        (FT, ["government", "police"], ["people"]),
    ],
)
def test_neighbors_positive_negative_match_gensim(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str, positive: list[str], negative: list[str]
) -> None:
    body = post(
        client, "/v1/neighbors", {"model": model, "positive": positive, "negative": negative, "topn": 12}
    )
    expected = kvs[model].most_similar(positive=positive, negative=negative, topn=12)
    assert_same_neighbors(body["neighbors"], expected)
    assert not {n["word"] for n in body["neighbors"]} & {*positive, *negative}


@pytest.mark.parametrize("model", [W2V, FT])
def test_neighbors_by_vector_match_gensim(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str
) -> None:
    kv = kvs[model]
    word = kv.index_to_key[40]
    vec = kv.get_vector(word)  # raw: the service normalises the query itself
    body = post(client, "/v1/neighbors", {"model": model, "vector": vec.tolist(), "topn": 10})
    # A vector query excludes nothing: the word the vector came from comes first, at cosine 1.
    assert body["neighbors"][0]["word"] == word
    assert body["neighbors"][0]["score"] == pytest.approx(1.0, abs=TOL)
    assert_same_neighbors(body["neighbors"], kv.similar_by_vector(vec, topn=10))


def test_neighbors_of_oov_word_on_fasttext_match_gensim(
    client: TestClient, ft_kv: FastTextKeyedVectors
) -> None:
    oov = "governmentalish"
    assert oov not in ft_kv.key_to_index
    body = post(client, "/v1/neighbors", {"model": FT, "word": oov, "topn": 10})
    assert_same_neighbors(body["neighbors"], ft_kv.most_similar(oov, topn=10))


def test_neighbors_approximate(client: TestClient, w2v_kv: KeyedVectors) -> None:
    body = post(client, "/v1/neighbors", {"model": W2V, "word": "rey", "topn": 10, "approximate": True})
    assert body["approximate"] is True
    got = body["neighbors"]
    assert len(got) == 10
    words = [n["word"] for n in got]
    assert "rey" not in words
    assert len(set(words)) == 10
    scores = [n["score"] for n in got]
    assert scores == sorted(scores, reverse=True)
    for n in got:  # scores are true cosines, whatever the index found
        assert n["score"] == pytest.approx(float(w2v_kv.similarity("rey", n["word"])), abs=TOL)
    exact = [w for w, _ in w2v_kv.most_similar("rey", topn=10)]
    assert len(set(words) & set(exact)) >= 8  # HNSW recall on a 4k-word vocabulary


def test_neighbors_approximate_without_index(client: TestClient) -> None:
    err = assert_error(
        client.post("/v1/neighbors", json={"model": FT, "word": "police", "approximate": True}),
        422,
        "no_approximate_index",
        "approximate",
    )
    assert err["details"] == {"model": FT}


@pytest.mark.parametrize(
    ("model", "a", "b", "c"),
    [
        (W2V, "hombre", "rey", "mujer"),
        (W2V, "padre", "hijo", "madre"),
        (FT, "police", "government", "people"),
    ],
)
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_match_gensim(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str, a: str, b: str, c: str, method: str
) -> None:
    body = post(client, "/v1/analogy", {"model": model, "a": a, "b": b, "c": c, "topn": 8, "method": method})
    assert (body["model"], body["method"]) == (model, method)
    kv = kvs[model]
    if method == "3cosadd":
        expected = kv.most_similar(positive=[b, c], negative=[a], topn=8)
    else:
        expected = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=8)
    assert_same_neighbors(body["answers"], expected)
    assert not {x["word"] for x in body["answers"]} & {a, b, c}


def test_analogy_default_method_and_topn(client: TestClient, w2v_kv: KeyedVectors) -> None:
    body = post(client, "/v1/analogy", {"a": "hombre", "b": "rey", "c": "mujer"})
    assert body["method"] == "3cosadd"
    assert_same_neighbors(
        body["answers"], w2v_kv.most_similar(positive=["rey", "mujer"], negative=["hombre"], topn=5)
    )


@pytest.mark.parametrize(
    ("model", "w1", "w2"),
    [
        (W2V, "dios", "señor"),
        (W2V, "rey", "agua"),
        (W2V, "tierra", "tierra"),
        (FT, "government", "police"),
        (FT, "governmentalish", "government"),  # OOV from subwords
    ],
)
def test_similarity_match_gensim(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str, w1: str, w2: str
) -> None:
    body = post(client, "/v1/similarity", {"model": model, "word1": w1, "word2": w2})
    assert (body["model"], body["word1"], body["word2"]) == (model, w1, w2)
    assert body["similarity"] == pytest.approx(float(kvs[model].similarity(w1, w2)), abs=TOL)
    assert -1.0 - TOL <= body["similarity"] <= 1.0 + TOL


@pytest.mark.parametrize("model", [W2V, FT])
def test_word_vectors_raw_and_normalized(
    client: TestClient, kvs: dict[str, KeyedVectors], model: str
) -> None:
    kv = kvs[model]
    words = kv.index_to_key[30:35]
    raw = post(client, "/v1/embeddings/words", {"model": model, "words": words})
    unit = post(client, "/v1/embeddings/words", {"model": model, "words": words, "normalize": True})
    dim = 32 if model == W2V else 10
    for body in (raw, unit):
        assert (body["model"], body["dimensions"]) == (model, dim)
        assert [v["word"] for v in body["vectors"]] == words
        assert {v["source"] for v in body["vectors"]} == {"vocabulary"}
        assert all(len(v["vector"]) == dim for v in body["vectors"])
    for word, r, u in zip(words, raw["vectors"], unit["vectors"], strict=True):
        np.testing.assert_allclose(r["vector"], kv.get_vector(word), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(u["vector"], kv.get_vector(word, norm=True), rtol=1e-5, atol=1e-6)
        assert np.linalg.norm(u["vector"]) == pytest.approx(1.0, abs=1e-5)
        assert np.linalg.norm(r["vector"]) == pytest.approx(
            float(np.linalg.norm(kv.get_vector(word))), rel=1e-5
        )
    # raw vectors are not unit length (word2vec/fastText norms carry frequency information)
    assert any(abs(np.linalg.norm(v["vector"]) - 1.0) > 0.01 for v in raw["vectors"])


def test_word_vectors_oov_from_subwords(client: TestClient, ft_kv: FastTextKeyedVectors) -> None:
    oov, known = "qwertyzz", "police"
    assert oov not in ft_kv.key_to_index
    raw = post(client, "/v1/embeddings/words", {"model": FT, "words": [oov, known]})
    assert [(v["word"], v["source"]) for v in raw["vectors"]] == [(oov, "subwords"), (known, "vocabulary")]
    np.testing.assert_allclose(raw["vectors"][0]["vector"], ft_kv.get_vector(oov), rtol=1e-5, atol=1e-6)
    unit = post(client, "/v1/embeddings/words", {"model": FT, "words": [oov], "normalize": True})
    assert unit["vectors"][0]["source"] == "subwords"
    np.testing.assert_allclose(
        unit["vectors"][0]["vector"], ft_kv.get_vector(oov, norm=True), rtol=1e-5, atol=1e-6
    )
    assert np.linalg.norm(unit["vectors"][0]["vector"]) == pytest.approx(1.0, abs=1e-5)


def test_text_vectors_match_gensim_mean(client: TestClient, w2v_kv: KeyedVectors) -> None:
    texts = ["En el principio creó Dios los cielos y la tierra.", "Y dijo Dios: Sea la luz"]
    body = post(client, "/v1/embeddings/texts", {"model": W2V, "texts": texts})
    assert (body["model"], body["dimensions"]) == (W2V, 32)
    assert len(body["embeddings"]) == 2
    first = body["embeddings"][0]
    assert first["tokens"] == ["en", "el", "principio", "creó", "dios", "los", "cielos", "y", "la", "tierra"]
    assert first["oov"] == ["creó"]  # not in this small vocabulary: skipped
    for emb in body["embeddings"]:
        assert emb["oov"] == [t for t in emb["tokens"] if t not in w2v_kv.key_to_index]
        known = [t for t in emb["tokens"] if t in w2v_kv.key_to_index]
        expected = w2v_kv.get_mean_vector(known, pre_normalize=False)
        np.testing.assert_allclose(emb["vector"], expected, rtol=1e-5, atol=1e-6)
    unit = post(client, "/v1/embeddings/texts", {"model": W2V, "texts": texts[:1], "normalize": True})
    expected = w2v_kv.get_mean_vector(
        [t for t in first["tokens"] if t != "creó"], pre_normalize=False, post_normalize=True
    )
    np.testing.assert_allclose(unit["embeddings"][0]["vector"], expected, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(unit["embeddings"][0]["vector"]) == pytest.approx(1.0, abs=1e-5)


def test_text_vectors_all_oov_is_null(client: TestClient) -> None:
    body = post(client, "/v1/embeddings/texts", {"model": W2V, "texts": ["Qqqzx xxyzw", "rey"]})
    first, second = body["embeddings"]
    assert first == {"tokens": ["qqqzx", "xxyzw"], "oov": ["qqqzx", "xxyzw"], "vector": None}
    assert second["oov"] == [] and second["vector"] is not None


def test_text_vectors_fasttext_uses_subwords(client: TestClient, ft_kv: FastTextKeyedVectors) -> None:
    body = post(client, "/v1/embeddings/texts", {"model": FT, "texts": ["The police qwertyzz government"]})
    emb = body["embeddings"][0]
    assert emb["tokens"] == ["The", "police", "qwertyzz", "government"]  # ft-lee keeps case
    assert emb["oov"] == ["qwertyzz"]
    expected = ft_kv.get_mean_vector(emb["tokens"], pre_normalize=False)  # gensim also uses subwords
    np.testing.assert_allclose(emb["vector"], expected, rtol=1e-5, atol=1e-6)


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "missing"),
    [
        ("/v1/similarity", {"word1": "qqqzx", "word2": "dios"}, ["qqqzx"]),
        ("/v1/similarity", {"word1": "qqqzx", "word2": "zzyxw"}, ["qqqzx", "zzyxw"]),
        ("/v1/neighbors", {"word": "qqqzx"}, ["qqqzx"]),
        ("/v1/neighbors", {"positive": ["rey", "qqqzx"], "negative": ["zzyxw"]}, ["qqqzx", "zzyxw"]),
        ("/v1/analogy", {"a": "qqqzx", "b": "rey", "c": "zzyxw"}, ["qqqzx", "zzyxw"]),
        ("/v1/embeddings/words", {"words": ["rey", "qqqzx", "dios", "zzyxw"]}, ["qqqzx", "zzyxw"]),
    ],
)
def test_unknown_words(client: TestClient, path: str, body: dict[str, Any], missing: list[str]) -> None:
    err = assert_error(client.post(path, json=body), 404, "word_not_found", *(repr(w) for w in missing))
    assert err["details"] == {"words": missing, "model": W2V}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/similarity", {"word1": "rey", "word2": "dios"}),
        ("/v1/neighbors", {"word": "rey"}),
        ("/v1/analogy", {"a": "hombre", "b": "rey", "c": "mujer"}),
        ("/v1/embeddings/words", {"words": ["rey"]}),
        ("/v1/embeddings/texts", {"texts": ["rey"]}),
    ],
)
def test_unknown_model(client: TestClient, path: str, body: dict[str, Any]) -> None:
    err = assert_error(client.post(path, json={**body, "model": "nope"}), 404, "model_not_found", "'nope'")
    assert err["details"]["available"] == [FT, W2V]


def test_empty_text(client: TestClient) -> None:
    err = assert_error(
        client.post("/v1/embeddings/texts", json={"texts": ["rey", ""]}), 422, "validation_error", "texts.1"
    )
    assert err["details"]["errors"][0]["type"] == "string_too_short"


def test_whitespace_text(client: TestClient) -> None:
    err = assert_error(
        client.post("/v1/embeddings/texts", json={"texts": ["rey", " \t\n "]}),
        422,
        "empty_text",
        "texts[1]",
        "whitespace",
    )
    assert err["details"] == {"index": 1}


def test_no_texts_and_no_words(client: TestClient) -> None:
    assert_error(client.post("/v1/embeddings/texts", json={"texts": []}), 422, "validation_error", "texts")
    assert_error(client.post("/v1/embeddings/words", json={"words": []}), 422, "validation_error", "words")


@pytest.mark.parametrize(
    ("path", "body", "what", "got", "setting"),
    [
        ("/v1/embeddings/words", {"words": ["rey"] * 51}, "words", 51, "NLP_MAX_WORDS"),
        (
            "/v1/neighbors",
            {"positive": ["rey"] * 30, "negative": ["dios"] * 21},
            "words",
            51,
            "NLP_MAX_WORDS",
        ),
        ("/v1/embeddings/texts", {"texts": ["rey"] * 9}, "texts", 9, "NLP_MAX_TEXTS"),
    ],
)
def test_too_many(
    client: TestClient, path: str, body: dict[str, Any], what: str, got: int, setting: str
) -> None:
    limit = 50 if what == "words" else 8
    err = assert_error(
        client.post(path, json=body), 422, "limit_exceeded", f"too many {what}", str(got), str(limit)
    )
    assert err["details"] == {"limit": limit, "got": got, "setting": setting}


def test_at_the_limits_is_accepted(client: TestClient) -> None:
    assert len(post(client, "/v1/embeddings/words", {"words": ["rey"] * 50})["vectors"]) == 50
    assert len(post(client, "/v1/embeddings/texts", {"texts": ["rey"] * 8})["embeddings"]) == 8
    assert (
        len(post(client, "/v1/embeddings/texts", {"texts": ["rey " * 500]})["embeddings"][0]["tokens"]) == 500
    )
    assert len(post(client, "/v1/neighbors", {"word": "rey", "topn": 100})["neighbors"]) == 100


def test_text_too_long(client: TestClient) -> None:
    err = assert_error(
        client.post("/v1/embeddings/texts", json={"texts": ["rey", "a" * 2001]}),
        422,
        "limit_exceeded",
        "texts[1]",
        "2001 characters",
        "2000",
    )
    assert err["details"]["setting"] == "NLP_MAX_TEXT_CHARS"


@pytest.mark.parametrize("path", ["/v1/neighbors", "/v1/analogy"])
def test_topn_zero(client: TestClient, path: str) -> None:
    body: dict[str, Any] = (
        {"word": "rey"} if path == "/v1/neighbors" else {"a": "hombre", "b": "rey", "c": "mujer"}
    )
    err = assert_error(client.post(path, json={**body, "topn": 0}), 422, "validation_error", "topn")
    assert err["details"]["errors"][0]["field"] == "topn"


@pytest.mark.parametrize("path", ["/v1/neighbors", "/v1/analogy"])
def test_topn_over_limit(client: TestClient, path: str) -> None:
    body: dict[str, Any] = (
        {"word": "rey"} if path == "/v1/neighbors" else {"a": "hombre", "b": "rey", "c": "mujer"}
    )
    err = assert_error(
        client.post(path, json={**body, "topn": 101}), 422, "limit_exceeded", "topn 101", "100"
    )
    assert err["details"] == {"limit": 100, "got": 101, "setting": "NLP_MAX_TOPN"}


@pytest.mark.parametrize(("model", "size", "dim"), [(W2V, 31, 32), (W2V, 33, 32), (FT, 32, 10)])
def test_vector_wrong_dimensions(client: TestClient, model: str, size: int, dim: int) -> None:
    err = assert_error(
        client.post("/v1/neighbors", json={"model": model, "vector": [0.1] * size}),
        422,
        "wrong_dimensions",
        f"{size} values",
        f"{dim} dimensions",
    )
    assert err["details"] == {"expected": dim, "got": size}


def test_vector_all_zeros(client: TestClient) -> None:
    assert_error(client.post("/v1/neighbors", json={"vector": [0.0] * 32}), 422, "invalid_vector", "zeros")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"topn": 3},
        {"word": "rey", "vector": [0.1] * 32},
        {"word": "rey", "positive": ["dios"]},
        {"vector": [0.1] * 32, "negative": ["dios"]},
    ],
)
def test_neighbors_needs_exactly_one_query(client: TestClient, body: dict[str, Any]) -> None:
    assert_error(client.post("/v1/neighbors", json=body), 422, "validation_error", "exactly one of")




# ---- concurrency ------------------------------------------------------------------------------


def test_concurrent_requests(client: TestClient) -> None:
    words = ["rey", "dios", "tierra", "agua", "hombre", "mujer", "padre", "madre", "hijo", "cielos"]
    requests: list[tuple[str, dict[str, Any]]] = []
    for i, w in enumerate(words):
        other = words[(i + 3) % len(words)]
        requests += [
            ("/v1/neighbors", {"word": w, "topn": 5}),
            ("/v1/neighbors", {"word": w, "topn": 5, "approximate": True}),
            ("/v1/similarity", {"word1": w, "word2": other}),
            ("/v1/embeddings/texts", {"texts": [f"{w} y {other}"]}),
            ("/v1/neighbors", {"model": FT, "word": ["police", "government", "people"][i % 3], "topn": 5}),
            (
                "/v1/analogy",
                {
                    "a": w,
                    "b": other,
                    "c": words[(i + 5) % len(words)],
                    "topn": 3,
                    "method": "3cosmul" if i % 2 else "3cosadd",
                },
            ),
        ]
    expected = [post(client, path, body) for path, body in requests]  # one at a time first

    def worker(t: int) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for j in range(20):
            k = (t * 20 + j * 7) % len(requests)
            path, body = requests[k]
            r = client.post(path, json=body)
            assert r.status_code == 200, r.text
            out.append((k, r.json()))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [item for chunk in pool.map(worker, range(8)) for item in chunk]
    assert len(results) == 160
    for k, body in results:
        assert body == expected[k], requests[k]
