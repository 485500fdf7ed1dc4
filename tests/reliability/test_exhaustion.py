"""Resource exhaustion against a real service process: a WebSocket client that stops reading,
slow-loris connections (headers and bodies) and a flood of connections. Resident memory,
descriptors and log lines are measured; the service must stay answerable throughout."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from pathlib import Path
import socket
import struct
import time

import aiohttp
import pytest

from devtools.harness import ServiceProcess

from .conftest import peak_rss_mb

MAX_CONNECTIONS = 64


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _log_lines(process: ServiceProcess) -> int:
    return len(process.log_path.read_text(errors="replace").splitlines())


@pytest.fixture
async def guarded(tmp_path: Path):
    """The service with a small connection cap, so the cap is reached in seconds."""
    config = tmp_path / "service.yaml"
    config.write_text(f"max_connections: {MAX_CONNECTIONS}\n")
    process = ServiceProcess(
        tmp_path / "data",
        log_path=tmp_path / "service.log",
        extra_args=["--config", str(config)],
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


def _ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (RFC 6455)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload[:64])) if n <= 64 else None
    if masked is None:
        import numpy as np

        data = np.frombuffer(payload, dtype=np.uint8)
        key = np.frombuffer(mask * (n // 4 + 1), dtype=np.uint8)[:n]
        masked = (data ^ key).tobytes()
    return head + mask + masked


def _raw_websocket(port: int) -> socket.socket:
    """A WebSocket opened by hand whose receive side is never read."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


async def _health_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url + "/v1/health") as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_websocket_client_that_stops_reading(service: ServiceProcess) -> None:
    """Each message sent draws an error reply that quotes it; the client never reads. The
    replies used to pile up without a byte limit (766 MB). Now the connection is cut once
    4 MiB wait, and the service's memory stays flat."""
    pid = service.proc.pid
    before = _rss_mb(pid)
    sock = await asyncio.to_thread(_raw_websocket, service.port)
    # Unknown types that are 1 MiB long: before, each reply quoted all of it.
    junk = json.dumps({"type": "x" * (1 << 20)}).encode()
    frame = _ws_frame(junk)
    sent = 0
    cut = False
    started = time.monotonic()
    sock.settimeout(10)
    try:
        while time.monotonic() - started < 60:
            await asyncio.to_thread(sock.sendall, frame)
            sent += 1
    except OSError:
        cut = True  # the service dropped the connection
    finally:
        sock.close()
    grown = _rss_mb(pid) - before
    print(f"non-reading WebSocket: {sent} MiB sent, cut={cut}, resident +{grown:.0f} MiB")
    assert cut, "a client that never reads must be disconnected"
    assert grown < 150, f"resident memory grew by {grown:.0f} MiB"
    assert await _health_ok(service.url)


async def test_subscriber_that_stops_reading_is_closed_1013(service: ServiceProcess) -> None:
    """A subscriber too far behind is told so: close code 1013 (try again later)."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(service.url + "/v1/ws")
        # Each reply is small now; 5,000 of them exceed the queue's message bound.
        for _ in range(5000):
            await ws.send_str('{"type": "nope"}')
        codes = []
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "overflow":
                codes.append("overflow")
        assert codes == ["overflow"]
        assert ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER


async def test_slow_loris_headers_cannot_lock_out_clients(guarded: ServiceProcess) -> None:
    """Four times the connection cap of half-sent requests, renewed as they are dropped: the
    health probe keeps answering, descriptors stay at the cap, the log stays short, and a
    half-sent request is closed after the header timeout."""
    pid = guarded.proc.pid
    base_fds = _descriptors(pid)
    base_log = _log_lines(guarded)
    socks: list[socket.socket] = []

    def open_loris() -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", guarded.port), timeout=2)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            return s
        except OSError:
            return None

    peak_fds = 0
    for i in range(4 * MAX_CONNECTIONS):
        s = await asyncio.to_thread(open_loris)
        if s is not None:
            socks.append(s)
        if i % 16 == 15:
            # Evicted connections close on the service's next loop turn; sample after it.
            await asyncio.sleep(0.2)
            peak_fds = max(peak_fds, _descriptors(pid) - base_fds)
    health = [await _health_ok(guarded.url) for _ in range(5)]
    # Keep dribbling one byte per second on all of them.
    for _ in range(3):
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b"a")
        await asyncio.sleep(1)
    health.append(await _health_ok(guarded.url))
    # The header timeout (10 s) closes what eviction did not.
    await asyncio.sleep(11)
    open_after = 0
    for s in socks:
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                continue
        except BlockingIOError:
            open_after += 1
        except OSError:
            continue
        finally:
            s.close()
    log_lines = _log_lines(guarded) - base_log
    print(
        f"slow loris: {len(socks)} connections, service descriptors +{peak_fds}, "
        f"health {sum(health)}/{len(health)}, still open after 11 s: {open_after}, "
        f"log +{log_lines} lines"
    )
    assert all(health), health
    assert peak_fds <= MAX_CONNECTIONS + 8
    assert open_after == 0
    assert log_lines < 50


async def test_slow_body_ends_with_408(guarded: ServiceProcess) -> None:
    """A body sent a few bytes a second is refused with 408 after the grace period."""

    def slow_upload() -> bytes:
        s = socket.create_connection(("127.0.0.1", guarded.port), timeout=30)
        s.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        answer = b""
        started = time.monotonic()
        try:
            while time.monotonic() - started < 25:
                s.settimeout(1)
                try:
                    s.send(b"R")
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                    if b"\r\n\r\n" in answer:
                        break
                except TimeoutError:
                    continue
        finally:
            s.close()
        return answer

    started = time.monotonic()
    answer = await asyncio.to_thread(slow_upload)
    took = time.monotonic() - started
    print(f"slow body: answered after {took:.1f} s: {answer[:40]!r}")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"error"' in answer
    assert took < 20
    assert peak_rss_mb(guarded.proc.pid) < 1500
