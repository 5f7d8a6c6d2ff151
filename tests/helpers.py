"""Helpers of the HTTP API tests."""

from __future__ import annotations

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


def save_tiny_generator(folder: Path, name: str, *, positions: int, never_eos: bool = False) -> Path:
    """A tiny random GPT-2 (2 layers, width 32) with a real byte-level BPE tokenizer trained on Spanish
    proverbs, saved as generator ``name`` in ``folder``. ``never_eos``: its end-of-text embedding is zero,
    so greedy decoding practically never picks it and every request runs its ``max_new_tokens``."""
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
    save_generator(folder, name, model=model, tokenizer=tokenizer, params={}, data={"source": "random"}, metrics={})
    return folder / name
