"""Shared helpers for the live-detection tests: audio, a real service app, a WAV server, WS reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import io
import json
from pathlib import Path
import time
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType, web
import numpy as np
import soundfile as sf

from devtools import synth
from model_service.config import build_config
from model_service.detection.service import Service

RATE = 16000
REPO = Path(__file__).resolve().parents[2]


class SharedTagger:
    """Wraps one loaded tagger so that many test apps can use it; closing is the fixture's job."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.info = inner.info

    def predict(self, windows):
        return self._inner.predict(windows)

    def forget(self, stream: str) -> None:
        forget = getattr(self._inner, "forget", None)
        if forget is not None:
            forget(stream)

    def close(self) -> None:
        return None


def make_service(data_dir: Path, tagger: Any, **values: Any) -> Service:
    """A Service on `data_dir` with the shared tagger and test-friendly settings."""
    values.setdefault("zeroconf", False)
    values.setdefault("asr", None)
    values["data_dir"] = data_dir
    config = build_config(None, values, environ={})
    return Service.create(config, SharedTagger(tagger))


def alarm_scene(
    before: float = 3.0, alarm: float = 8.0, after: float = 10.0, *, seed: int = 1
) -> tuple[np.ndarray, float]:
    """Room noise with a T3 smoke alarm starting at `before` seconds; (audio, alarm onset)."""
    total = before + alarm + after
    noise = synth.pink_noise(total, level_dbfs=-50.0, seed=seed)
    sound = synth.smoke_alarm(alarm, level_dbfs=-20.0)
    out = noise.copy()
    a = round(before * RATE)
    out[a : a + sound.size] += sound
    return np.clip(out, -1.0, 1.0).astype(np.float32), before


def quiet(seconds: float, *, seed: int = 3) -> np.ndarray:
    """Quiet room noise with nothing in it."""
    return synth.pink_noise(seconds, level_dbfs=-55.0, seed=seed)


def pcm16(audio: np.ndarray) -> bytes:
    """float audio as s16le bytes."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def wav_bytes(audio: np.ndarray, rate: int = RATE) -> bytes:
    """float audio as a 16-bit WAV file in memory."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class AudioServer:
    """A local HTTP server for ffmpeg sources.

    `/full.wav` serves the whole file; `/drop.wav` sends part of it, then drops the connection
    (and with `gone` set, later connections are refused by closing at once); `/stall.wav`
    sends the header and then nothing.
    """

    def __init__(self, wav: bytes) -> None:
        self.wav = wav
        self.gone = False
        self.requests: dict[str, int] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> AudioServer:
        app = web.Application()
        app.router.add_get("/full.wav", self._full)
        app.router.add_get("/drop.wav", self._drop)
        app.router.add_get("/stall.wav", self._stall)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _count(self, request: web.Request) -> None:
        self.requests[request.path] = self.requests.get(request.path, 0) + 1

    async def _full(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        return web.Response(body=self.wav, content_type="audio/wav")

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        if self.gone:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        resp = web.StreamResponse()
        resp.content_type = "audio/wav"
        resp.content_length = len(self.wav)
        await resp.prepare(request)
        part = (len(self.wav) // 2) & ~1
        await resp.write(self.wav[:part])
        await asyncio.sleep(0.3)
        self.gone = True
        assert request.transport is not None
        request.transport.close()
        return resp

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        self._count(request)
        resp = web.StreamResponse()
        resp.content_type = "audio/wav"
        resp.content_length = len(self.wav)
        await resp.prepare(request)
        await resp.write(self.wav[:4000])
        await asyncio.sleep(60)
        return resp


async def receive_until(
    ws: ClientWebSocketResponse,
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 20.0,
    into: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Read JSON messages until `done(message)` is true; return all read (TimeoutError if not)."""
    seen: list[dict[str, Any]] = [] if into is None else into
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no matching message; got {[m.get('type') for m in seen]}")
        msg = await ws.receive(timeout=left)
        if msg.type != WSMsgType.TEXT:
            raise AssertionError(f"connection ended: {msg.type} {msg.data!r} after {seen[-5:]}")
        data = json.loads(msg.data)
        seen.append(data)
        if done(data):
            return seen


async def push_audio(
    ws: ClientWebSocketResponse, source: str, audio: np.ndarray, *, frame_seconds: float = 0.5
) -> None:
    """push_start, the audio as binary frames (as fast as the server takes them), push_stop."""
    await ws.send_json({"type": "push_start", "source": source, "rate": RATE})
    data = pcm16(audio)
    step = round(frame_seconds * RATE) * 2
    for i in range(0, len(data), step):
        await ws.send_bytes(data[i : i + step])
    await ws.send_json({"type": "push_stop", "source": source})


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)


# One torch thread for service processes: on a small, busy machine torch's thread barriers
# stall batches.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
