"""Generation throughput: our engine (directly and through HTTP) against transformers' ``generate``
(eager cache and static cache), greedy, in the same run.

Tokens/s for 1 stream and aggregate for concurrent streams, each generating ``--new-tokens`` tokens
from a ``--prompt-tokens`` prompt, on the GPT-2 124M configuration (random weights: speed does not
depend on them), fp16 on a GPU, fp32 on the CPU. Prints JSON.

    python benchmarks/generation.py                      # CPU: streams 1 and 16 by default
    python benchmarks/generation.py --streams 1 16 64 256 --http   # what to run on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from _harness import ServerNotReady, cpu_model, log, package_versions, start_server, use_library

CONFIGS = {
    "gpt2-124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": 50257},
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 256, "vocab_size": 1000},
}


def machine(device: torch.device) -> dict[str, Any]:
    return {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "cpus": os.cpu_count(), "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": package_versions(("torch", "transformers", "nlp-service")),
            "loadavg_at_start": os.getloadavg()}


def build_model(name: str, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(**CONFIGS[name], bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).to(device=device, dtype=dtype).eval()


def prompts(n: int, length: int, vocab: int, seed: int = 1) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (n, length), generator=gen).tolist()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Any, device: torch.device, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def bench_engine(model: Any, batch: list[list[int]], new_tokens: int, device: torch.device, repeats: int
                 ) -> dict[str, Any]:
    from nlp_service.generate import GPT2Engine, SamplingParams

    start = time.perf_counter()
    engine = GPT2Engine(model, max_slots=len(batch), device=str(device),
                        max_seq=len(batch[0]) + new_tokens)
    setup = time.perf_counter() - start
    params = SamplingParams(max_new_tokens=new_tokens, ignore_eos=True)
    engine.generate(batch[:1], SamplingParams(max_new_tokens=2, ignore_eos=True))  # warm-up
    outputs: list[list[int]] = []

    def run() -> None:
        nonlocal outputs
        outputs = engine.generate(batch, params)

    median, times = timed(run, device, repeats)
    tokens = sum(len(o) for o in outputs)
    return {"tokens_per_second": round(tokens / median, 1), "seconds_median": round(median, 3),
            "seconds_all": [round(t, 3) for t in times], "tokens": tokens, "setup_seconds": round(setup, 2),
            "cuda_graphs": engine.cuda_graphs}


def bench_hf(model: Any, batch: list[list[int]], new_tokens: int, device: torch.device, repeats: int,
             static: bool) -> dict[str, Any]:
    ids = torch.tensor(batch, device=device)
    mask = torch.ones_like(ids)
    kwargs: dict[str, Any] = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
                              "pad_token_id": 0}
    if static:
        kwargs["cache_implementation"] = "static"
    out: Any = None

    def run() -> None:
        nonlocal out
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=mask, **kwargs)

    try:
        with torch.inference_mode():
            model.generate(ids[:1], attention_mask=mask[:1], **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})
        median, times = timed(run, device, repeats)
    except Exception as exc:  # report what the library refused, keep benchmarking the rest
        return {"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
    tokens = int((out.shape[1] - ids.shape[1]) * ids.shape[0])
    return {"tokens_per_second": round(tokens / median, 1), "seconds_median": round(median, 3),
            "seconds_all": [round(t, 3) for t in times], "tokens": tokens}


def bench_http(model: Any, streams: Sequence[int], prompt_tokens: int, new_tokens: int, device: torch.device
               ) -> dict[str, Any]:
    """The real server (uvicorn) over loopback, N concurrent clients each asking for one generation."""
    import httpx

    from nlp_service.data import SPANISH_CORPUS, iter_corpus
    from nlp_service.generate import save_generator, train_byte_bpe

    texts = [t for _, t in zip(range(20000), iter_corpus(SPANISH_CORPUS), strict=False)]
    vocab = model.config.vocab_size
    tokenizer = train_byte_bpe(texts, vocab)
    learned = len(tokenizer)
    # The shipped corpus has fewer merges to learn than GPT-2's 50,257 ids: fill the rest with unused
    # tokens so that every id the (random) model can emit decodes.
    tokenizer.add_tokens([f"<unused{i}>" for i in range(vocab - learned)])
    results: dict[str, Any] = {"tokenizer_learned": learned, "tokenizer_vocab": len(tokenizer)}
    with tempfile.TemporaryDirectory() as tmp:
        # No end-of-text id: every request makes exactly new_tokens tokens, as with ignore_eos in the
        # engine runs (a random model would otherwise stop at arbitrary points).
        models_dir = Path(tmp) / "models"
        saved = copy.deepcopy(model).float().cpu()  # the caller's model stays as it is
        saved.config.eos_token_id = None
        save_generator(models_dir, "bench-gpt2", model=saved, tokenizer=tokenizer, params={}, data={}, metrics={})
        del saved
        env = {"NLP_DEVICE": device.type, "NLP_GENERATION_MAX_BATCH": str(max(streams)),
               "NLP_GENERATION_MAX_TOTAL_TOKENS": str(prompt_tokens * 4 + new_tokens + 8)}
        try:
            server = start_server(["--models-dir", str(models_dir)], Path(tmp) / "server.log", env=env,
                                  timeout_s=300, poll_s=0.2)
        except ServerNotReady as exc:
            log(f"  http: {exc}")
            return {"error": "server did not start"}
        try:
            base = server.base
            prompt = " ".join(texts[:50])
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][:prompt_tokens]
            prompt = tokenizer.decode(ids)
            body = {"inputs": prompt, "parameters": {"max_new_tokens": new_tokens, "details": True}}
            httpx.post(base + "/v1/generate", json=body, timeout=600)  # warm-up (graph capture, first step)

            async def run(n: int) -> tuple[float, int, list[float]]:
                async with httpx.AsyncClient(base_url=base, timeout=600,
                                             limits=httpx.Limits(max_connections=n + 4)) as client:
                    async def one() -> tuple[int, float]:
                        start = time.perf_counter()
                        r = await client.post("/v1/generate", json=body)
                        r.raise_for_status()
                        return r.json()["details"]["generated_tokens"], time.perf_counter() - start

                    start = time.perf_counter()
                    done = await asyncio.gather(*(one() for _ in range(n)))
                    return time.perf_counter() - start, sum(d[0] for d in done), [d[1] for d in done]

            for n in streams:
                wall, tokens, latencies = asyncio.run(run(n))
                results[str(n)] = {"tokens_per_second": round(tokens / wall, 1), "seconds": round(wall, 3),
                                   "tokens": tokens, "request_seconds_p50": round(statistics.median(latencies), 3)}
                log(f"  http x{n}: {results[str(n)]['tokens_per_second']} tok/s")
        finally:
            server.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2-124m")
    parser.add_argument("--streams", type=int, nargs="+", help="Concurrent streams (default: 1 16 on CPU, "
                                                                "1 16 64 256 on GPU).")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per point (the median is reported).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, help="float16 / float32 (default: fp16 on GPU, fp32 on CPU).")
    parser.add_argument("--skip-hf", action="store_true", help="Only our engine.")
    parser.add_argument("--http", action="store_true", help="Also through the HTTP service (starts a server).")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    use_library()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    streams = args.streams or ([1, 16, 64, 256] if device.type == "cuda" else [1, 16])
    model = build_model(args.config, device, dtype)
    result: dict[str, Any] = {
        "benchmark": "generation", "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(device), "config": {"model": args.config, **CONFIGS[args.config],
                                               "dtype": str(dtype).removeprefix("torch."),
                                               "new_tokens": args.new_tokens, "prompt_tokens": args.prompt_tokens,
                                               "greedy": True},
        "engine": {}, "hf_generate_eager": {}, "hf_generate_static": {},
    }
    for n in streams:
        batch = prompts(n, args.prompt_tokens, CONFIGS[args.config]["vocab_size"])
        log(f"streams={n}: engine")
        result["engine"][str(n)] = bench_engine(model, batch, args.new_tokens, device, args.repeats)
        if not args.skip_hf:
            log(f"streams={n}: transformers generate (eager cache)")
            result["hf_generate_eager"][str(n)] = bench_hf(model, batch, args.new_tokens, device, args.repeats, False)
            log(f"streams={n}: transformers generate (static cache)")
            result["hf_generate_static"][str(n)] = bench_hf(model, batch, args.new_tokens, device, args.repeats, True)
        row = {k: result[k][str(n)].get("tokens_per_second") for k in ("engine", "hf_generate_eager",
                                                                       "hf_generate_static") if str(n) in result[k]}
        log(f"streams={n}: {row}")
    result["ratios"] = {
        str(n): {f"engine/{k}": round(result["engine"][str(n)]["tokens_per_second"] / v["tokens_per_second"], 2)
                 for k in ("hf_generate_eager", "hf_generate_static")
                 if (v := result[k].get(str(n))) and "tokens_per_second" in v}
        for n in streams}
    if args.http:
        log("http")
        result["http"] = bench_http(model, streams, args.prompt_tokens, args.new_tokens, device)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
