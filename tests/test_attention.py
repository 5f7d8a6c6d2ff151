"""Attention of the seq2seq translator: over HTTP (``return_attention``) and from the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nlp_service.translate import TranslatorModel

from .helpers import post

TEXTS = ["Pulse el icono para más información.", "Y dijo Dios: Sea la luz.", "Guardar el documento"]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_attention_matrices(client: TestClient, translator_model: Path, beam_size: int) -> None:
    body = {"texts": TEXTS, "source": "es", "target": "en", "beam_size": beam_size}
    plain = post(client, "/v1/translate", body)
    attended = post(client, "/v1/translate", {**body, "return_attention": True})
    assert "attention" not in plain
    assert attended["translations"] == plain["translations"]  # asking for attention changes nothing else
    model = TranslatorModel.load(translator_model, device="cpu")
    assert len(attended["attention"]) == len(TEXTS)
    for text, translation, att in zip(TEXTS, attended["translations"], attended["attention"], strict=True):
        source_ids = model.impl.source.encode([text])[0]
        assert att["source_tokens"] == model.impl.source.pieces(source_ids)
        assert att["source_tokens"][-1] == "</s>"
        # The target pieces are the translation's: decoding them gives the text returned.
        pieces = [p for p in att["target_tokens"] if p != "</s>"]
        ids = [model.impl.target.tokenizer.token_to_id(p) for p in pieces]
        assert model.impl.target.decode([ids]) == [translation]
        weights = att["weights"]
        assert len(weights) == len(att["target_tokens"]) > 0
        for row in weights:
            assert len(row) == len(att["source_tokens"])
            assert sum(row) == pytest.approx(1.0, abs=1e-4)
            assert all(0.0 <= w <= 1.0 for w in row)


def test_attention_follows_the_search_step_by_step(translator_model: Path) -> None:
    """The teacher-forced attention equals what the decoder computed while searching: re-run the chosen
    hypothesis one step at a time (as beam search steps) and compare each step's weights."""
    import torch

    from nlp_service.translate._seq2seq import collate

    model = TranslatorModel.load(translator_model, device="cpu")
    (got,) = model.translate_attended([TEXTS[0]], beam_size=3)
    assert got.attention is not None and got.text == model.translate([TEXTS[0]], beam_size=3)[0]
    net, source = model.impl.model, model.impl.source.encode([TEXTS[0]])[0]
    target = [model.impl.target.tokenizer.token_to_id(p) for p in got.attention.target_tokens]
    with torch.inference_mode():
        src, src_len = collate([source], torch.device("cpu"))
        enc, mask, state, keys = net.encode(src, src_len)
        token = torch.tensor([2])  # <s>
        for t, nxt in enumerate(target):
            dec, state = net.decoder(net.target_embed(token).unsqueeze(1), state)
            step = net.attention(dec, enc, mask, keys)[0, 0]
            assert step.tolist() == pytest.approx(got.attention.weights[t], abs=1e-5)
            token = torch.tensor([nxt])


def test_attention_refuses_bad_values(client: TestClient) -> None:
    r = client.post("/v1/translate", json={"texts": TEXTS, "return_attention": "maybe"})
    assert r.status_code == 422 and "return_attention" in r.text
