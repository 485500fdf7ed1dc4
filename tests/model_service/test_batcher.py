"""Dynamic batcher: gathering, ordering, bounded queue, failures, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from model_service import metrics
from model_service.models.batcher import BatcherClosedError, DynamicBatcher, QueueFullError


class Recorder:
    """A batch function that records batch sizes and the thread it ran on."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.release.wait(5)
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            threading.Event().wait(self.delay)
        return [i * 10 for i in items]


async def test_concurrent_requests_run_as_one_batch() -> None:
    """Requests arriving within max_wait run together, each gets its own result."""
    fn = Recorder()
    batcher = DynamicBatcher("t1", fn, max_batch=16, max_wait_ms=50)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    finally:
        await batcher.stop()
    assert results == [i * 10 for i in range(10)]
    assert max(len(b) for b in fn.batches) > 1
    assert sum(len(b) for b in fn.batches) == 10
    assert all(name.startswith("batch-t1") for name in fn.threads)


async def test_max_batch_is_respected() -> None:
    """No batch is larger than max_batch, and nothing is dropped."""
    fn = Recorder()
    batcher = DynamicBatcher("t2", fn, max_batch=4, max_wait_ms=20)
    batcher.start()
    try:
        results = await batcher.submit_many(list(range(11)))
    finally:
        await batcher.stop()
    assert results == [i * 10 for i in range(11)]
    assert max(len(b) for b in fn.batches) <= 4
    assert [i for b in fn.batches for i in b] == list(range(11))


async def test_full_queue_refuses_with_retry_after() -> None:
    """A bounded queue answers QueueFullError instead of growing."""
    fn = Recorder()
    fn.release.clear()  # hold the worker so the queue fills
    batcher = DynamicBatcher("t3", fn, max_batch=2, max_wait_ms=1, max_queue=4)
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.submit_many([1, 2]))
        await asyncio.sleep(0.05)  # the worker took [1, 2] and is blocked
        queued = asyncio.ensure_future(batcher.submit_many([3, 4, 5, 6]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError) as err:
            await batcher.submit(7)
        assert err.value.retry_after >= 1
        fn.release.set()
        assert await first == [10, 20]
        assert await queued == [30, 40, 50, 60]
    finally:
        fn.release.set()
        await batcher.stop()


async def test_model_error_fails_only_its_batch() -> None:
    """An exception in the model fails that batch's requests; the batcher keeps serving."""
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return items

    batcher = DynamicBatcher("t4", flaky, max_batch=8, max_wait_ms=1)
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2
    finally:
        await batcher.stop()


async def test_wrong_result_count_is_an_error() -> None:
    """A model returning the wrong number of results fails loudly, not silently."""
    batcher = DynamicBatcher("t5", lambda items: items[:-1], max_batch=8, max_wait_ms=1)
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="results"):
            await batcher.submit_many([1, 2])
    finally:
        await batcher.stop()


async def test_cancelled_request_is_skipped() -> None:
    """A caller that gives up does not cost a slot in a batch."""
    fn = Recorder()
    batcher = DynamicBatcher("t6", fn, max_batch=8, max_wait_ms=30)
    batcher.start()
    try:
        task = asyncio.ensure_future(batcher.submit(99))
        await asyncio.sleep(0)
        task.cancel()
        assert await batcher.submit(1) == 10
    finally:
        await batcher.stop()
    assert all(99 not in b for b in fn.batches)


async def test_stop_fails_waiting_requests_and_refuses_new() -> None:
    """Stopping fails what waits and later submits say the batcher is not running."""
    fn = Recorder()
    fn.release.clear()
    batcher = DynamicBatcher("t7", fn, max_batch=1, max_wait_ms=1)
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(1))
    waiting = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0.05)
    stopper = asyncio.ensure_future(batcher.stop())
    await asyncio.sleep(0.05)
    fn.release.set()
    await stopper
    with pytest.raises(BatcherClosedError):
        await waiting
    with pytest.raises(BatcherClosedError):  # in flight when stopped: its caller is told
        await first
    with pytest.raises(BatcherClosedError):
        await batcher.submit(3)


async def test_batch_size_histogram_records_batches() -> None:
    """midasheng_batch_size records the sizes that actually ran."""
    before = _hist_count("t8")
    batcher = DynamicBatcher("t8", Recorder(), max_batch=32, max_wait_ms=20)
    batcher.start()
    try:
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    finally:
        await batcher.stop()
    assert _hist_count("t8") - before >= 1
    assert b'midasheng_batch_size_bucket{le="8.0",model="t8"}' in metrics.render()


def _hist_count(model: str) -> float:
    for family in metrics.REGISTRY.collect():
        if family.name == "midasheng_batch_size":
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels.get("model") == model:
                    return sample.value
    return 0.0


def test_invalid_limits() -> None:
    """Non-positive limits are a programming error."""
    with pytest.raises(ValueError):
        DynamicBatcher("bad", lambda x: x, max_batch=0)
