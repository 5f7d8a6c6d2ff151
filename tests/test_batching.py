"""The micro-batching worker, with a real function standing in for a model's forward pass."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nlp_service.serving import MicroBatcher


class Recorder:
    """Upper-cases items and remembers the batches it was given (and on which thread)."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot process {self.fail_on!r}")
        time.sleep(self.delay)
        return [s.upper() for s in items]


def test_concurrent_requests_share_batches_and_keep_their_order() -> None:
    rec = Recorder(delay=0.01)

    async def main() -> list[list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=16, max_wait_ms=20)
        requests = [[f"r{i}-{j}" for j in range(i % 3 + 1)] for i in range(30)]
        try:
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            assert batcher.stats.items == sum(len(r) for r in requests)
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[f"R{i}-{j}" for j in range(i % 3 + 1)] for i in range(30)]
    assert len(rec.batches) < 30  # coalesced
    assert max(len(b) for b in rec.batches) <= 16
    assert rec.threads and all(name.startswith("batcher") for name in rec.threads)  # never the event loop


def test_an_oversized_request_runs_alone() -> None:
    rec = Recorder()

    async def main() -> list[str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=4, max_wait_ms=1)
        out = await batcher.submit([str(i) for i in range(10)])
        await batcher.close()
        return out

    assert asyncio.run(main()) == [str(i) for i in range(10)]
    assert rec.batches == [[str(i) for i in range(10)]]


def test_errors_reach_every_waiter_of_the_batch_and_the_worker_survives() -> None:
    rec = Recorder(fail_on="boom")

    async def main() -> tuple[list[object], list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=8, max_wait_ms=30)
        first = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["boom"]), return_exceptions=True)
        after = await batcher.submit(["ok"])
        await batcher.close()
        return first, after

    first, after = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in first)
    assert after == ["OK"]


def test_cancelled_requests_are_skipped() -> None:
    rec = Recorder(delay=0.05)

    async def main() -> list[str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=1, max_wait_ms=0)
        busy = asyncio.create_task(batcher.submit(["first"]))
        await asyncio.sleep(0.01)  # the worker is now inside the first batch
        gone = asyncio.create_task(batcher.submit(["gone"]))
        await asyncio.sleep(0.001)
        gone.cancel()
        out = await batcher.submit(["last"])
        await busy
        await batcher.close()
        return out

    assert asyncio.run(main()) == ["LAST"]
    assert ["gone"] not in rec.batches


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(Recorder(), max_batch_size=0)
