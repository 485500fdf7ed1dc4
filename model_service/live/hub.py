"""Fan-out of live audio and events: a ring buffer of recent audio per source, and the hub
that hands every message to the WebSocket subscribers with bounded queues."""

from __future__ import annotations

import asyncio
from collections import deque
import json
import logging
from typing import Any

import numpy as np

from model_service import metrics
from model_service.arrays import Array

_LOGGER = logging.getLogger(__name__)
RING_SECONDS = 40.0  # >= 30 s of history plus the analysis backlog
_SCALE = np.float32(1.0 / 32768.0)
# What one WebSocket connection may have waiting to be sent. A live subscriber gets a few
# hundred bytes per second per source; a client that stops reading reaches this and is
# disconnected (1013) instead of growing the service.
SUBSCRIBER_MAX_BYTES = 4 * 1024 * 1024


class RingBuffer:
    """The last `capacity` samples of a stream as int16, addressed by absolute sample index."""

    def __init__(self, capacity: int) -> None:
        """Create an empty buffer holding at most `capacity` samples."""
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.int16)
        self.written = 0  # absolute index one past the newest sample

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.written - self.capacity)

    def reset(self) -> None:
        """Forget everything (a new run starts at index 0)."""
        self.written = 0

    def append(self, pcm: Array) -> None:
        """Add int16 samples (at most `capacity` at once)."""
        n = pcm.size
        if n > self.capacity:
            pcm = pcm[-self.capacity :]
            self.written += n - self.capacity
            n = self.capacity
        pos = self.written % self.capacity
        first = min(n, self.capacity - pos)
        self._buf[pos : pos + first] = pcm[:first]
        if first < n:
            self._buf[: n - first] = pcm[first:]
        self.written += n

    def read_float(self, start: int, end: int) -> Array:
        """Samples [start, end) as float32 in [-1, 1): one pass, no intermediate copies."""
        start = max(start, self.oldest)
        end = min(end, self.written)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        a = start % self.capacity
        n = end - start
        out = np.empty(n, dtype=np.float32)
        first = min(n, self.capacity - a)
        np.multiply(self._buf[a : a + first], _SCALE, out=out[:first], dtype=np.float32)
        if first < n:
            np.multiply(self._buf[: n - first], _SCALE, out=out[first:], dtype=np.float32)
        return out

    def read(self, start: int, end: int) -> Array:
        """A copy of samples [start, end) clipped to what is held (int16)."""
        start = max(start, self.oldest)
        end = min(end, self.written)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        a = start % self.capacity
        n = end - start
        if a + n <= self.capacity:
            return self._buf[a : a + n].copy()
        first = self.capacity - a
        return np.concatenate((self._buf[a:], self._buf[: n - first]))


class Subscriber:
    """One WebSocket connection's bounded outgoing queue.

    Publishing never waits: when the queue would hold more than `max_queue` messages or
    `max_bytes` of text, the subscriber is marked overflowed and its queue dropped; the
    connection then says so, closes with 1013 and the client resumes with `after`. Items are
    (json text, rev) where rev is set for event messages.
    """

    def __init__(self, max_queue: int, max_bytes: int = SUBSCRIBER_MAX_BYTES) -> None:
        """Create an empty queue of at most `max_queue` messages and `max_bytes` characters."""
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self.queue: deque[tuple[str, int | None]] = deque()
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.overflowed = False
        self.subscribed = False

    def offer(self, text: str, rev: int | None = None) -> None:
        """Queue a message unless the subscriber already fell behind."""
        if self.overflowed:
            return
        if len(self.queue) >= self.max_queue or self.queued_bytes + len(text) > self.max_bytes:
            self.overflowed = True
            self.queue.clear()
            self.queued_bytes = 0
            metrics.WS_OVERFLOWS.inc()
        else:
            self.queue.append((text, rev))
            self.queued_bytes += len(text)
        self.wake.set()

    def pop(self) -> tuple[str, int | None]:
        """The oldest queued message."""
        text, rev = self.queue.popleft()
        self.queued_bytes -= len(text)
        return text, rev


class Hub:
    """Fans live messages out to subscribed connections."""

    def __init__(self) -> None:
        """Create a hub without subscribers."""
        self.subscribers: set[Subscriber] = set()

    def add(self, sub: Subscriber) -> None:
        """Start delivering live messages to `sub`."""
        sub.subscribed = True
        self.subscribers.add(sub)
        metrics.WS_SUBSCRIBERS.set(len(self.subscribers))

    def remove(self, sub: Subscriber) -> None:
        """Stop delivering to `sub`."""
        self.subscribers.discard(sub)
        metrics.WS_SUBSCRIBERS.set(len(self.subscribers))

    def publish(self, message: dict[str, Any], rev: int | None = None) -> None:
        """Send a message to every subscriber (serialised once)."""
        if not self.subscribers:
            return
        text = json.dumps(message, separators=(",", ":"))
        for sub in list(self.subscribers):
            sub.offer(text, rev)

    def queued(self) -> int:
        """Messages waiting, over all subscribers (for /metrics)."""
        return sum(len(s.queue) for s in self.subscribers)

    def queued_bytes(self) -> int:
        """Characters waiting, over all subscribers (for /metrics)."""
        return sum(s.queued_bytes for s in self.subscribers)
