"""Connection limits: slow clients cannot hold the service's sockets or descriptors.

A client that opens connections and never finishes its request headers (slow loris), or
sends its body a byte at a time, would otherwise keep a descriptor and a task each for as
long as it likes; enough of them and the service stops accepting anyone, Home Assistant
included. So:

- a connection must complete its first request's headers within `HEADER_TIMEOUT`; between
  requests, aiohttp's keep-alive timeout (`KEEPALIVE_TIMEOUT`) closes idle ones, including one
  dribbling the next request's headers;
- a request body must arrive at `MIN_BODY_RATE` on average after `BODY_GRACE` seconds, or the
  request ends with 408;
- at most `limit` connections are open at once. When a new one would pass the limit, the
  oldest connection that is not running a request (still sending headers, or idle between
  requests) is closed to make room; when every connection is busy, the new one is answered
  503 at once.

The guard sits between the listening socket and aiohttp's request handler (a protocol that
forwards every call), and learns which connections are running a request from a middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import logging
import resource
import time
from typing import Any

from aiohttp import web

from model_service import metrics

_LOGGER = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 75.0
BODY_GRACE = 10.0
MIN_BODY_RATE = 16 * 1024  # bytes per second, averaged from the start of the request
BODY_CHECK_INTERVAL = 2.0
# Descriptors kept free of connections: the event store, clips, ffmpeg pipes, model files.
RESERVED_DESCRIPTORS = 128

_BUSY_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 51\r\n\r\n"
    b'{"error": "too many open connections; retry later"}'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def connection_limit(wanted: int) -> int:
    """The connection cap this process can afford: raises the soft descriptor limit to the
    hard one where that is allowed, and keeps `RESERVED_DESCRIPTORS` out of the cap."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    affordable = max(16, soft - RESERVED_DESCRIPTORS)
    if wanted > affordable:
        _LOGGER.warning(
            "max_connections %s is more than the descriptor limit allows; using %s",
            wanted,
            affordable,
        )
    return min(wanted, affordable)


class _Connection(asyncio.Protocol):
    """Forwards everything to aiohttp's handler; remembers when it opened and if it served."""

    def __init__(self, guard: ConnectionGuard, handler: Any) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.opened = time.monotonic()
        self.admitted = False
        self.served = False
        self.busy = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self):
            transport.write(_BUSY_503)
            transport.close()
            return
        self.admitted = True
        self.handler.connection_made(transport)
        self._deadline = asyncio.get_running_loop().call_later(
            self.guard.header_timeout, self._header_deadline
        )

    def _header_deadline(self) -> None:
        self._deadline = None
        if not self.served and not self.busy:
            metrics.CONNECTIONS_CLOSED.labels(reason="header_timeout").inc()
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once (no goodbye: the peer is not cooperating)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.guard.release(self)
        if self.admitted:
            self.handler.connection_lost(exc)


class ConnectionGuard:
    """Protocol factory around aiohttp's server that enforces the limits above."""

    def __init__(self, *, limit: int, header_timeout: float = HEADER_TIMEOUT) -> None:
        """Guard at most `limit` connections at once; `server` is set by GuardedSite."""
        self.server: web.Server | None = None
        self.limit = limit
        self.header_timeout = header_timeout
        # Insertion order is opening order: the first idle one found is the oldest.
        self.open: dict[Any, _Connection] = {}

    def __call__(self) -> _Connection:
        assert self.server is not None
        return _Connection(self, self.server())

    def admit(self, conn: _Connection) -> bool:
        """Make room for `conn` if needed; False when every open connection is busy."""
        if len(self.open) >= self.limit:
            idle = next((c for c in self.open.values() if not c.busy), None)
            if idle is None:
                metrics.CONNECTIONS_CLOSED.labels(reason="refused").inc()
                return False
            metrics.CONNECTIONS_CLOSED.labels(reason="evicted").inc()
            self.release(idle)
            idle.abort()
        self.open[conn.handler] = conn
        metrics.CONNECTIONS.set(len(self.open))
        return True

    def release(self, conn: _Connection) -> None:
        """Forget a connection (closed, or being closed to make room)."""
        self.open.pop(conn.handler, None)
        metrics.CONNECTIONS.set(len(self.open))

    def middleware(self) -> Any:
        """Marks a connection busy while a request runs, and times out slow bodies."""

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = self.open.get(request.protocol)
            if conn is not None:
                conn.served = True
                conn.busy += 1
            watch = None
            if request.can_read_body and request.content is not None:
                watch = asyncio.get_running_loop().create_task(_watch_body(request))
            try:
                return await handler(request)
            finally:
                if watch is not None:
                    watch.cancel()
                if conn is not None:
                    conn.busy -= 1

        return track


async def _watch_body(request: web.Request) -> None:
    """End a request whose body arrives slower than `MIN_BODY_RATE` with 408."""
    content = request.content
    started = time.monotonic()
    while not content.is_eof():
        await asyncio.sleep(BODY_CHECK_INTERVAL)
        elapsed = time.monotonic() - started
        if elapsed < BODY_GRACE or content.is_eof():
            continue
        if content.total_bytes < MIN_BODY_RATE * (elapsed - BODY_GRACE / 2):
            metrics.CONNECTIONS_CLOSED.labels(reason="slow_body").inc()
            content.set_exception(
                web.HTTPRequestTimeout(
                    text=f"the request body arrived too slowly ({content.total_bytes} bytes in "
                    f"{elapsed:.0f} s); send it at {MIN_BODY_RATE // 1024} KiB/s or more"
                )
            )
            return


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a ConnectionGuard."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        """Listen on host:port with `guard` in front of the runner's server."""
        super().__init__(runner, host, port)
        self._guard = guard
        assert runner.server is not None, "set up the runner first"
        guard.server = runner.server

    async def start(self) -> None:
        """Start listening (what TCPSite.start does, with the guard as protocol factory)."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard, self._host, self._port, backlog=self._backlog
        )
