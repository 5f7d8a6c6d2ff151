"""A micro-batching worker shared by the tensor models.

Requests arriving within ``max_wait_ms`` of each other (up to ``max_batch_size`` items) are
run as one batch by a worker thread, so concurrent clients share forward passes and the
event loop never runs tensor code. ``workers`` batches run at once (one by default): on a CPU, a
small model's forward pass hardly uses a second core, while two passes side by side do. Each
request gets back exactly its own results, in order, or its own error: when a batch fails, its
requests are run again one by one, so one bad request never fails the others. The queue is
bounded: beyond ``max_queue`` waiting items, a request is refused with :class:`QueueFull` (HTTP 429).
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

from ._limits import QueueFull
from ._metrics import BATCH_SECONDS, BATCH_SIZE, QUEUE_DEPTH, REJECTED

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0
    busy_seconds: float = 0.0
    queued: int = 0  # items waiting for a batch now
    rejected: int = 0  # requests refused with a full queue
    failed: int = 0  # requests that got an error

    def as_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "max_batch": self.max_batch,
                "mean_batch": round(mean, 2), "busy_seconds": round(self.busy_seconds, 3), "queued": self.queued,
                "rejected": self.rejected, "failed": self.failed}


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
                 max_wait_ms: float = 5.0, max_queue: int = 1_000_000, name: str = "batcher",
                 setting: str = "NLP_BATCH_MAX_QUEUE", workers: int = 1) -> None:
        """``name`` labels its metrics and threads (a model's name); ``setting`` is what sets ``max_queue``,
        for the error message. ``fn`` must be safe to call from ``workers`` threads at once."""
        if max_batch_size < 1 or max_queue < 1 or workers < 1:
            raise ValueError("max_batch_size, max_queue and workers must be at least 1")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self.setting = setting
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"batch-{name}")
        self._running: set[asyncio.Task[None]] = set()
        self._depth = QUEUE_DEPTH.labels(name)
        self._sizes = BATCH_SIZE.labels(name)
        self._seconds = BATCH_SECONDS.labels(name)

    def _ensure_started(self) -> asyncio.Queue[_Pending[T, R]]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self._queue

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results for ``items`` (one request's worth), computed in a shared batch."""
        if not items:
            return []
        self.check_room(len(items))
        queue = self._ensure_started()
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queued(len(items))
        queue.put_nowait(_Pending(items, future))  # unbounded asyncio queue: the bound is the check above
        return await future

    def check_room(self, count: int) -> None:
        """:class:`QueueFull` unless ``count`` more items fit in the queue now. ``submit`` checks it; callers
        may check first too, before costly preparation (tokenizing) that a refusal would waste."""
        if self.stats.queued + count > self.max_queue:
            self.stats.rejected += 1
            REJECTED.labels(self.name).inc()
            raise QueueFull(f"model {self.name!r} is busy: {self.stats.queued} texts are waiting (at most "
                            f"{self.max_queue}); try again shortly", limit=self.max_queue, setting=self.setting)

    def _queued(self, change: int) -> None:
        self.stats.queued += change
        self._depth.set(self.stats.queued)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        slots = asyncio.Semaphore(self.workers)
        carry: _Pending[T, R] | None = None
        while True:
            await slots.acquire()  # a batch is formed when a worker is free to run it: the fullest batches
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
            self._queued(-sum(len(p.items) for p in batch))
            live = [p for p in batch if not p.future.done()]  # a cancelled request costs nothing
            if not live:
                slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._complete(live, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _complete(self, live: list[_Pending[T, R]], slots: asyncio.Semaphore) -> None:
        """Run one batch and answer its requests; then the worker is free."""
        try:
            try:
                results = await self._predict([item for p in live for item in p.items])
            except Exception as exc:
                if len(live) == 1:
                    self._fail(live[0], exc)
                    return
                # Find whose request it is: each gets its own result or error.
                log.warning("%s: a batch of %d requests failed; running them one by one", self.name, len(live))
                for p in live:
                    await self._run_alone(p)
                return
            offset = 0
            for p in live:
                n = len(p.items)
                if not p.future.done():
                    p.future.set_result(list(results[offset : offset + n]))
                offset += n
        finally:
            slots.release()

    async def _predict(self, flat: list[T]) -> Sequence[R]:
        start = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, flat)
        finally:
            elapsed = time.perf_counter() - start
            self.stats.busy_seconds += elapsed
            self._seconds.observe(elapsed)
        if len(results) != len(flat):
            raise RuntimeError(f"{self.name}: got {len(results)} results for {len(flat)} inputs")
        self.stats.batches += 1
        self.stats.items += len(flat)
        self.stats.max_batch = max(self.stats.max_batch, len(flat))
        self._sizes.observe(len(flat))
        return results

    async def _run_alone(self, pending: _Pending[T, R]) -> None:
        if pending.future.done():
            return
        try:
            results = await self._predict(list(pending.items))
        except Exception as exc:
            self._fail(pending, exc)
            return
        if not pending.future.done():
            pending.future.set_result(list(results))

    def _fail(self, pending: _Pending[T, R], exc: Exception) -> None:
        self.stats.failed += 1
        if not isinstance(exc, ValueError):  # a bad request is the client's (a 4xx), anything else is logged
            log.error("%s: a request of %d items failed", self.name, len(pending.items), exc_info=exc)
        if not pending.future.done():
            pending.future.set_exception(exc)

    async def close(self) -> None:
        for task in [self._task, *self._running]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._executor.shutdown(wait=False, cancel_futures=True)
