"""GPT-2 training: byte-level BPE, the schedule, training and resume, the pipeline and its artifact."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from nlp_service.config import Settings
from nlp_service.data import SPANISH_CORPUS
from nlp_service.generate import (
    GeneratorModel,
    GPT2Engine,
    GPT2Run,
    GPT2TrainParams,
    SamplingParams,
    build_gpt2,
    lr_at,
    pack,
    perplexity,
    train_byte_bpe,
    train_gpt2,
)


@pytest.fixture(scope="module")
def proverbs() -> list[str]:
    fortunes = next(p for p in SPANISH_CORPUS if "fortunes" in p.name)
    with gzip.open(fortunes, "rt", encoding="utf-8") as fh:
        return [line.strip() for line in itertools.islice(fh, 2000) if line.strip()]


@pytest.fixture(scope="module")
def tokenizer(proverbs: list[str]) -> object:
    return train_byte_bpe(proverbs, 600)


def test_byte_level_bpe_round_trips_any_text(tokenizer: object) -> None:
    for text in ["Más vale pájaro en mano que ciento volando.", "¿Qué? ¡Ñandú! 😀 中文 \t tabs  y  espacios"]:
        ids = tokenizer(text)["input_ids"]  # type: ignore[operator]
        assert tokenizer.decode(ids) == text  # type: ignore[attr-defined]
    assert tokenizer.eos_token == "<|endoftext|>" and len(tokenizer) == 600  # type: ignore[attr-defined, arg-type]


def test_schedule_warms_up_then_decays_to_a_tenth() -> None:
    p = GPT2TrainParams(learning_rate=1e-3, warmup_steps=10, max_steps=110)
    assert lr_at(0, p) == pytest.approx(1e-4)
    assert lr_at(9, p) == pytest.approx(1e-3)
    assert lr_at(60, p) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(110, p) == pytest.approx(1e-4)
    assert all(lr_at(s, p) >= lr_at(s + 1, p) for s in range(10, 110))


def _tiny(tokenizer: object, dropout: float = 0.1) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2, n_head=2,  # type: ignore[arg-type]
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(config)


def test_training_lowers_held_out_perplexity(tokenizer: object, proverbs: list[str]) -> None:
    train, val = pack(tokenizer, proverbs[100:], 32), pack(tokenizer, proverbs[:100], 32)
    model = _tiny(tokenizer)
    before = perplexity(model, val, 32, torch.device("cpu"))
    params = GPT2TrainParams(block_size=32, batch_size=32, max_steps=120, warmup_steps=10, learning_rate=3e-3,
                             eval_every=60, eval_batches=4)
    result = train_gpt2(model, train, val, params, device="cpu", progress=False)
    after = perplexity(result.model, val, 32, torch.device("cpu"))
    assert after < before / 3, (before, after)
    assert [h["step"] for h in result.history] == [60, 120] and result.stopped == "max_steps"


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tokenizer: object, proverbs: list[str],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after its step-20 checkpoint and started again ends with the weights of a run that
    was never interrupted (same batches, schedule and dropout masks)."""
    import nlp_service.torch_utils as checkpoints

    train, val = pack(tokenizer, proverbs[100:600], 32), pack(tokenizer, proverbs[:50], 32)
    params = GPT2TrainParams(block_size=32, batch_size=8, max_steps=40, warmup_steps=5, eval_every=10,
                             eval_batches=2, checkpoint_every=10)
    whole = train_gpt2(_tiny(tokenizer), train, val, params, device="cpu", progress=False)

    class Killed(Exception):
        pass

    real_save = checkpoints.save_checkpoint

    def save_then_die(path: Path, state: dict[str, object]) -> None:
        real_save(path, state)
        if state["done"] == 20:
            raise Killed

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_gpt2(_tiny(tokenizer), train, val, params, device="cpu", checkpoint_dir=tmp_path, progress=False)
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    resumed = train_gpt2(_tiny(tokenizer), train, val, params, device="cpu", checkpoint_dir=tmp_path, progress=False)
    assert resumed.resumed_from_step == 20 and resumed.steps == 40
    assert resumed.history == [{**h, "seconds": r["seconds"]} for h, r in zip(whole.history, resumed.history,
                                                                               strict=True)]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_pipeline_artifact_and_fine_tuning(proverbs: list[str], tmp_path: Path) -> None:
    corpus = tmp_path / "refranes.txt"
    corpus.write_text("\n".join(proverbs), encoding="utf-8")
    params = GPT2TrainParams(vocab_size=500, n_layer=2, n_head=2, n_embd=32, block_size=48, batch_size=16,
                             max_steps=40, warmup_steps=5, eval_every=20, eval_batches=2)
    settings = Settings(models_dir=tmp_path / "models", cache_dir=tmp_path / "cache", device="cpu")
    path, metrics = build_gpt2(GPT2Run(corpus=[corpus], name="gpt2-tiny"), params, settings=settings, progress=False)
    assert metrics["test"]["perplexity"] > 1 and metrics["steps"] == 40
    assert {s["prompt"] for s in metrics["samples"]} == {"En el principio", "El hombre que", "La vida es", "Y dijo"}
    loaded = GeneratorModel.load(path, device="cpu", dtype="float32")
    assert loaded.describe()["layers"] == 2 and loaded.describe()["test_metrics"] == metrics["test"]
    # The saved model generates through the engine exactly as transformers does.
    prompt = loaded.tokenizer("Más vale", add_special_tokens=False)["input_ids"]
    ours = GPT2Engine(loaded.model, max_slots=1).generate([prompt], SamplingParams(max_new_tokens=12,
                                                                                    ignore_eos=True))[0]
    with torch.inference_mode():
        hf = loaded.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   max_new_tokens=12, min_new_tokens=12, do_sample=False,
                                   pad_token_id=loaded.tokenizer.eos_token_id)[0, len(prompt):].tolist()
    assert ours == hf
    # --init: fine-tune the saved checkpoint on other text; its tokenizer is kept.
    tuned, tuned_metrics = build_gpt2(GPT2Run(corpus=[corpus], name="gpt2-tuned", init=str(path / "hf")), params,
                                      settings=settings, progress=False)
    assert tuned_metrics["vocabulary"] == metrics["vocabulary"]
    assert GeneratorModel.load(tuned, device="cpu").manifest.data["init"] == str(path / "hf")


def test_cli_trains_imports_and_generates(proverbs: list[str], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from nlp_service.cli import app

    corpus = tmp_path / "refranes.txt.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(proverbs))
    runner = CliRunner()
    common = ["--models-dir", str(tmp_path / "models")]
    r = runner.invoke(app, ["train", "gpt2", str(corpus), "--name", "g", "--vocab-size", "400", "--n-layer", "1",
                            "--n-embd", "32", "--n-head", "2", "--block-size", "32", "--max-steps", "30",
                            "--warmup-steps", "5", "--device", "cpu", *common],
                      env={"NLP_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("{"):])
    assert out["steps"] == 30 and out["test"]["perplexity"] > 1
    r = runner.invoke(app, ["import-generator", str(tmp_path / "models" / "g" / "hf"), "--name", "g2", *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["generate", "Más vale", "--model", "g2", "--max-new-tokens", "8", *common])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Más vale")
    r = runner.invoke(app, ["generate", "x", "--model", "missing", *common])
    assert r.exit_code == 1 and "error:" in r.stderr
    # A value out of its bounds is a usage error, found before any model is loaded.
    r = runner.invoke(app, ["generate", "x", "--model", "missing", "--sample", "--temperature", "0", *common])
    assert r.exit_code == 2 and "temperature must be positive" in r.stderr
    r = runner.invoke(app, ["import-generator", str(tmp_path / "nothing"), "--name", "g3", *common])
    assert r.exit_code == 1 and "cannot load a causal language model" in r.stderr
