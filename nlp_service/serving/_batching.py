"""A micro-batching worker shared by the tensor models.

Requests arriving within ``max_wait_ms`` of each other (up to ``max_batch_size`` items) are
run as one batch by one worker thread, so concurrent clients share forward passes and the
event loop never runs tensor code. Each request gets back exactly its own results, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0
    busy_seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "max_batch": self.max_batch,
                "mean_batch": round(mean, 2), "busy_seconds": round(self.busy_seconds, 3)}


@dataclass
class _Pending(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T, R]):
    """Coalesce concurrent ``submit`` calls into batches for ``fn(items) -> results``.

    ``fn`` must return one result per item, in order; it runs in a dedicated thread. Sorting
    by length inside the batch is ``fn``'s business (the models do it), which keeps this
    worker generic.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch_size: int = 64,
                 max_wait_ms: float = 5.0, name: str = "batcher") -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.name = name
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def _ensure_started(self) -> asyncio.Queue[_Pending[T, R]]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self._queue

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results for ``items`` (one request's worth), computed in a shared batch."""
        if not items:
            return []
        queue = self._ensure_started()
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(items, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        carry: _Pending[T, R] | None = None
        while True:
            first = carry or await queue.get()
            carry = None
            batch = [first]
            size = len(first.items)
            deadline = first.enqueued + self.max_wait
            while size < self.max_batch_size:
                timeout = deadline - time.perf_counter()
                try:
                    nxt = queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout)
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                if size + len(nxt.items) > self.max_batch_size and size > 0:
                    carry = nxt  # keeps its place at the head of the next batch
                    break
                batch.append(nxt)
                size += len(nxt.items)
            live = [p for p in batch if not p.future.done()]  # a cancelled request costs nothing
            if not live:
                continue
            flat: list[T] = [item for p in live for item in p.items]
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.fn, flat)
                if len(results) != len(flat):
                    raise RuntimeError(f"{self.name}: got {len(results)} results for {len(flat)} inputs")
            except Exception as exc:  # every waiter of the batch gets the error
                log.exception("%s: batch of %d failed", self.name, len(flat))
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self.stats.busy_seconds += time.perf_counter() - start
            self.stats.batches += 1
            self.stats.items += len(flat)
            self.stats.max_batch = max(self.stats.max_batch, len(flat))
            offset = 0
            for p in live:
                n = len(p.items)
                if not p.future.done():
                    p.future.set_result(list(results[offset : offset + n]))
                offset += n

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)
