"""The micro-batching worker, with a real function standing in for a model's forward pass."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nlp_service.serving import MicroBatcher, QueueFull


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
    assert rec.threads and all(name.startswith("batch-") for name in rec.threads)  # never the event loop


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_run_batches_side_by_side(workers: int) -> None:
    """Each batch waits until ``workers`` batches are in the model at once: with two workers the first
    two meet; with one they never do (the wait times out) and every result still arrives, in order."""
    meeting = threading.Barrier(2, timeout=0.5)
    met: list[bool] = []

    def model(items: list[str]) -> list[str]:
        try:
            meeting.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
        return [s.upper() for s in items]

    async def main() -> list[list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(model, max_batch_size=2, max_wait_ms=1, workers=workers)
        try:
            return await asyncio.gather(*(batcher.submit([f"{i}a", f"{i}b"]) for i in range(4)))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[f"{i}A", f"{i}B"] for i in range(4)]
    assert met[:2] == ([True, True] if workers == 2 else [False, False])


def test_an_oversized_request_runs_alone() -> None:
    rec = Recorder()

    async def main() -> list[str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=4, max_wait_ms=1)
        out = await batcher.submit([str(i) for i in range(10)])
        await batcher.close()
        return out

    assert asyncio.run(main()) == [str(i) for i in range(10)]
    assert rec.batches == [[str(i) for i in range(10)]]


def test_one_bad_request_fails_alone_and_the_worker_survives() -> None:
    """Issue 11, defect 2: one bad item among good ones failed the whole shared batch (91 of 145 good
    requests got 500). Now the batch is run again request by request: only the bad one fails."""
    rec = Recorder(fail_on="boom")

    async def main() -> tuple[list[object], list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=8, max_wait_ms=30)
        first = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["boom"]), batcher.submit(["b", "c"]),
                                     return_exceptions=True)
        after = await batcher.submit(["ok"])
        await batcher.close()
        return first, after

    first, after = asyncio.run(main())
    assert first[0] == ["A"] and first[2] == ["B", "C"]
    assert isinstance(first[1], ValueError)
    assert after == ["OK"]
    assert ["a", "boom", "b", "c"] in rec.batches  # they did share a batch first


def test_a_full_queue_refuses_with_queue_full() -> None:
    """Issue 11, defect 4: the queues were unbounded (256 clients never saw a 429)."""
    rec = Recorder(delay=0.2)

    async def main() -> tuple[list[object], dict[str, float]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(rec, max_batch_size=2, max_wait_ms=0, max_queue=4)
        busy = asyncio.create_task(batcher.submit(["x", "y"]))
        await asyncio.sleep(0.05)  # the worker is inside that batch; the queue is empty
        waiting = [asyncio.create_task(batcher.submit([f"w{i}", f"v{i}"])) for i in range(2)]  # 4 texts queued
        await asyncio.sleep(0.01)
        refused = await asyncio.gather(batcher.submit(["z"]), return_exceptions=True)
        done = await asyncio.gather(busy, *waiting)
        await batcher.close()
        return [*refused, *done], batcher.stats.as_dict()

    results, stats = asyncio.run(main())
    assert isinstance(results[0], QueueFull) and results[0].details["limit"] == 4
    assert results[1:] == [["X", "Y"], ["W0", "V0"], ["W1", "V1"]]
    assert stats["rejected"] == 1 and stats["queued"] == 0


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
