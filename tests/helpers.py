"""Helpers of the HTTP API tests."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

W2V = "w2v-small"
FT = "ft-lee"
# Every model of the session's models folder (tests/conftest.py).
ALL_MODELS = ["bow-small", FT, "rnn-small", "tr-small", W2V]
# A small chat template in the usual style (save_tiny_generator's chat_template); it refuses the roles it does
# not know, as many real ones do.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role not in ('system', 'user', 'assistant') %}"
    "{{ raise_exception('this template knows system, user and assistant messages, not ' + m.role) }}"
    "{% endif %}"
    "<|{{ m.role }}|>{{ m.content }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def post(client: TestClient, path: str, body: Any) -> dict[str, Any]:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str, *in_message: str) -> dict[str, Any]:
    """The response is ``status`` with the JSON error shape, ``code``, and a message naming the problem."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["details"], dict), err
    for part in in_message:
        assert part in err["message"], (part, err["message"])
    return err


def chunked_neighbors_request(padding: int) -> Iterator[bytes]:
    """A neighbours request sent in chunks, without a Content-Length: ``padding`` bytes of JSON whitespace
    in 10,000-byte pieces between its fields (a body over the size limit only once it has streamed in)."""
    yield b'{"word": "rey", "topn": 3'
    for _ in range(padding // 10_000):
        yield b" " * 10_000
    yield b"}"


def modules_loaded_by(code: str, candidates: Sequence[str]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {list(candidates)!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@contextmanager
def ready_client(app: FastAPI, timeout: float = 300.0) -> Iterator[TestClient]:
    """A test client of ``app`` once its models are loaded: the app loads them in the background and
    answers 503 "loading" until then."""
    with TestClient(app) as client:
        assert app.state.service.wait_until_ready(timeout), f"models not loaded after {timeout:.0f} s"
        yield client


def save_tiny_generator(folder: Path, name: str, *, positions: int, never_eos: bool = False,
                        chat_template: str | None = None) -> Path:
    """A tiny random GPT-2 (2 layers, width 32) with a real byte-level BPE tokenizer trained on Spanish
    proverbs, saved as generator ``name`` in ``folder``. ``never_eos``: its end-of-text embedding is zero,
    so greedy decoding practically never picks it and every request runs its ``max_new_tokens``.
    ``chat_template``: a Jinja chat template saved with its tokenizer (none by default)."""
    import gzip
    import itertools

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from nlp_service.data import SPANISH_CORPUS
    from nlp_service.generate import save_generator, train_byte_bpe

    fortunes = next(p for p in SPANISH_CORPUS if "fortunes" in p.name)
    with gzip.open(fortunes, "rt", encoding="utf-8") as fh:
        texts = [line.strip() for line in itertools.islice(fh, 2000)]
    tokenizer = train_byte_bpe(texts, 500)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=positions, n_embd=32, n_layer=2, n_head=2,
                        initializer_range=0.2, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config).eval()
    if never_eos:
        with torch.no_grad():
            model.transformer.wte.weight[tokenizer.eos_token_id].zero_()
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    save_generator(folder, name, model=model, tokenizer=tokenizer, params={}, data={"source": "random"}, metrics={})
    return folder / name


def save_tiny_marian(folder: Path, *, pairs: int = 1500, vocab_size: int = 300, width: int = 32) -> Path:
    """A tiny randomly initialised Marian model (es->en) with real SentencePiece vocabularies trained on the
    shipped LibreOffice pairs, saved with ``save_pretrained`` into ``folder / "marian"`` exactly as
    Helsinki-NLP's checkpoints are (their work files in ``folder / "spm"``)."""
    import json

    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    from nlp_service.data import PARALLEL_LIBREOFFICE, iter_parallel

    work = folder / "spm"
    work.mkdir(parents=True, exist_ok=True)
    texts = list(itertools.islice(iter_parallel(PARALLEL_LIBREOFFICE, "es", "en"), pairs))
    for side, lines in (("source", [p[0] for p in texts]), ("target", [p[1] for p in texts])):
        (work / f"{side}.txt").write_text("\n".join(lines), encoding="utf-8")
        spm.SentencePieceTrainer.train(input=str(work / f"{side}.txt"), model_prefix=str(work / side),
                                       vocab_size=vocab_size, model_type="unigram", bos_id=-1, eos_id=-1, pad_id=-1,
                                       unk_id=0, minloglevel=2)
        (work / f"{side}.model").rename(work / f"{side}.spm")
    pieces = ["</s>", "<unk>", "<pad>"]
    for side in ("source", "target"):
        proc = spm.SentencePieceProcessor(model_file=str(work / f"{side}.spm"))
        pieces += [proc.id_to_piece(i) for i in range(proc.get_piece_size())]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    (work / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = MarianTokenizer(str(work / "source.spm"), str(work / "target.spm"), str(work / "vocab.json"),
                                source_lang="es", target_lang="en")
    config = MarianConfig(vocab_size=len(vocab), d_model=width, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * width,
                          decoder_ffn_dim=2 * width, max_position_embeddings=64, pad_token_id=vocab["<pad>"],
                          eos_token_id=vocab["</s>"], decoder_start_token_id=vocab["<pad>"],
                          forced_eos_token_id=vocab["</s>"])
    torch.manual_seed(0)
    model = MarianMTModel(config)
    out = folder / "marian"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
