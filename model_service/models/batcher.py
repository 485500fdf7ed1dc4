"""Dynamic batching: gather requests from every client and source, run them together off the loop."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass
import logging
import time
from typing import Generic, TypeVar

from model_service import metrics

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(RuntimeError):
    """The batcher's queue is full; the caller should retry after `retry_after` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name} queue is full, retry in {retry_after:.0f} s")
        self.retry_after = retry_after


class BatcherClosedError(RuntimeError):
    """The batcher was stopped while a request was waiting."""


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    queued_at: float


class DynamicBatcher(Generic[T, R]):
    """Collects items up to `max_batch` or `max_wait_ms` and runs `fn` on them in one thread.

    One worker thread per model: batches run one after another, which is what a single GPU
    (or a CPU with intra-op threads) wants. The queue is bounded; `submit` raises
    `QueueFullError` instead of queueing without bound.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
    ) -> None:
        """Create a stopped batcher; call `start` from a running loop."""
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be positive")
        self.name = name
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: deque[_Pending[T, R]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batch_seconds = 0.05

    def start(self) -> None:
        """Start the gathering loop and the worker thread."""
        if self._task is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{self.name}")
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"batcher-{self.name}"
        )

    async def stop(self) -> None:
        """Stop gathering; waiting requests fail with `BatcherClosedError`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(BatcherClosedError(f"{self.name} stopped"))
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def retry_after(self) -> float:
        """Seconds a refused client should wait: roughly how long the queue takes to drain."""
        batches = max(1, len(self._queue) // self.max_batch)
        return max(1.0, round(batches * self._batch_seconds + 0.5))

    def _check_room(self, count: int) -> None:
        if self._task is None:
            raise BatcherClosedError(f"{self.name} is not running")
        if len(self._queue) + count > self.max_queue:
            metrics.BATCH_REJECTED.labels(model=self.name).inc()
            raise QueueFullError(self.name, self.retry_after())

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue several items at once (all or none) and wait for all their results."""
        if not items:
            return []
        self._check_room(len(items))
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            self._queue.append(_Pending(item, fut, now))
            futures.append(fut)
        metrics.QUEUE_DEPTH.labels(model=self.name).set(len(self._queue))
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Give concurrent requests a moment to join, unless the batch is already full.
            deadline = loop.time() + self.max_wait
            while len(self._queue) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Pending[T, R]] = []
            while self._queue and len(batch) < self.max_batch:
                pending = self._queue.popleft()
                if not pending.future.done():  # skip requests whose caller gave up
                    batch.append(pending)
            metrics.QUEUE_DEPTH.labels(model=self.name).set(len(self._queue))
            if not batch:
                continue
            started = time.monotonic()
            for pending in batch:
                metrics.QUEUE_WAIT.labels(model=self.name).observe(started - pending.queued_at)
            metrics.BATCH_SIZE.labels(model=self.name).observe(len(batch))
            items = [p.item for p in batch]
            try:
                assert self._executor is not None
                results = await loop.run_in_executor(self._executor, self._fn, items)
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"{self.name} returned {len(results)} results for {len(batch)} items"
                    )
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(BatcherClosedError(f"{self.name} stopped"))
                raise
            except Exception as err:
                _LOGGER.exception("Batch of %s items failed in %s", len(batch), self.name)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(err)
                continue
            elapsed = time.monotonic() - started
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
            metrics.BATCH_SECONDS.labels(model=self.name).observe(elapsed)
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
