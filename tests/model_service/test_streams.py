"""Streaming detection without HTTP: ring buffer, shared batches, events, clips, recent audio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from devtools import synth
from model_service.live.hub import RingBuffer
from model_service.live.manager import StreamManager
from model_service.models.taggers import Detection, TaggerInfo, Window, load_tagger
from tests.model_service.live_helpers import RATE, alarm_scene, make_service, pcm16, quiet


@pytest.fixture(scope="module")
def builtin():
    """One builtin tagger for the module."""
    t = load_tagger("builtin")
    yield t
    t.close()


class Recording:
    """Wraps a tagger and records every batch it runs (stream keys and window ends)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.info = inner.info
        self.batches: list[list[tuple[str | None, int, int]]] = []
        self.forgotten: list[str] = []

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        self.batches.append([(w.stream, w.end, w.audio.size) for w in windows])
        return self.inner.predict(windows)

    def forget(self, stream: str) -> None:
        self.forgotten.append(stream)

    def close(self) -> None:
        return None


class ToneTagger:
    """A tiny deterministic tagger: `appliance_beep` while a 1 kHz tone is in the last hop."""

    info = TaggerInfo(
        name="tone",
        backend="test",
        categories=("appliance_beep",),
        window_seconds=1.0,
        hop_seconds=0.25,
    )

    def __init__(self) -> None:
        self.fail = False

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        if self.fail:
            raise RuntimeError("model exploded")
        out = []
        for w in windows:
            tail = w.audio[-4000:]
            spectrum = np.abs(np.fft.rfft(tail)) if tail.size else np.zeros(1)
            k = round(1000 * tail.size / RATE)
            share = (
                float(spectrum[k - 2 : k + 3].sum() / (spectrum.sum() + 1e-9)) if tail.size else 0.0
            )
            out.append({"appliance_beep": Detection(min(1.0, 2 * share), "Beep, bleep")})
        return out

    def close(self) -> None:
        return None


def tone_scene(before: float, tone: float, after: float) -> np.ndarray:
    """Quiet noise with a 1 kHz tone in the middle."""
    audio = quiet(before + tone + after)
    a = round(before * RATE)
    t = np.arange(round(tone * RATE)) / RATE
    audio[a : a + t.size] += 0.2 * np.sin(2 * np.pi * 1000 * t)
    return audio


async def _manager(tmp_path: Path, tagger: Any, **values: Any) -> AsyncIterator[StreamManager]:
    service = make_service(tmp_path / "data", tagger, **values)
    service.tagger = tagger  # no shared wrapper: these taggers are the tests' own
    await service.start()
    manager = StreamManager(service)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.stop()
        await manager.close()
        await service.stop()


@pytest.fixture
async def tone_manager(tmp_path: Path) -> AsyncIterator[StreamManager]:
    """A manager on the deterministic tone tagger."""
    async for m in _manager(tmp_path, ToneTagger()):
        yield m


@pytest.fixture
async def builtin_manager(tmp_path: Path, builtin) -> AsyncIterator[StreamManager]:
    """A manager on the builtin tagger, wrapped to record its batches."""
    async for m in _manager(tmp_path, Recording(builtin)):
        yield m


async def push(manager: StreamManager, source: str, audio: np.ndarray, owner: object = "t") -> None:
    """Push a whole clip through a push source, as fast as it is taken."""
    runtime = manager.get(source)
    await runtime.push_start(owner)
    data = pcm16(audio)
    for i in range(0, len(data), 16000):
        await runtime.feed(data[i : i + 16000])
    await runtime.push_stop(owner)


def test_ring_buffer_wraps_and_clips() -> None:
    """Absolute indexes survive wrap-around; reads outside what is held are clipped."""
    ring = RingBuffer(10)
    ring.append(np.arange(7, dtype=np.int16))
    ring.append(np.arange(7, 14, dtype=np.int16))
    assert ring.written == 14
    assert ring.oldest == 4
    assert ring.read(0, 14).tolist() == list(range(4, 14))
    assert ring.read(8, 12).tolist() == [8, 9, 10, 11]
    assert ring.read(12, 100).tolist() == [12, 13]
    ring.append(np.arange(100, 125, dtype=np.int16))  # bigger than the ring
    assert ring.written == 39
    assert ring.read(0, 39).tolist() == list(range(115, 125))
    ring.reset()
    assert ring.read(0, 10).size == 0


async def test_stream_matches_classify(builtin_manager: StreamManager) -> None:
    """A stream and /v1/classify of the same audio give the same events (one event logic)."""
    manager = builtin_manager
    await manager.create({"name": "Hall", "kind": "push"})
    audio, onset = alarm_scene(before=3.0, alarm=8.0, after=9.0)
    await push(manager, "hall", audio)
    events, _ = await manager.store.events_after(0)
    clip_events, _ = await manager.service.classify(audio)
    runtime = manager.get("hall")
    assert [(e.category) for e in events] == [e.category for e in clip_events] == ["smoke_alarm"]
    stream_start = events[0].start - runtime.t0
    stream_end = events[0].end - runtime.t0
    assert stream_start == pytest.approx(clip_events[0].start, abs=0.51)
    assert stream_end == pytest.approx(clip_events[0].end, abs=0.51)
    assert onset - 0.5 <= stream_start <= onset + 1.0
    # Every sample analysed, in windows of the tagger's size and hop, keyed by the run.
    tagger = manager.service.tagger
    stream_windows = [w for b in tagger.batches for w in b if w[0] and w[0].startswith("hall#")]
    ends = [end for _, end, _ in stream_windows]
    assert ends == sorted(ends)
    assert ends[-1] == audio.size
    assert all(b - a == 8000 for a, b in itertools.pairwise(ends[:-1]))
    assert max(size for _, _, size in stream_windows) == round(tagger.info.window_seconds * RATE)
    assert runtime.stream_key in tagger.forgotten  # cached features dropped after the run


async def test_windows_of_all_sources_share_batches(builtin_manager: StreamManager) -> None:
    """Windows of several sources run in the same batches (one GPU serves many streams)."""
    import asyncio

    manager = builtin_manager
    for i in range(4):
        await manager.create({"name": f"Room {i}", "kind": "push"})
    audio = quiet(6.0)
    await asyncio.gather(*(push(manager, f"room_{i}", audio, owner=i) for i in range(4)))
    mixed = [b for b in manager.service.tagger.batches if len({w[0] for w in b}) > 1]
    assert mixed, "no batch held windows of more than one source"
    # A new run (reconnect, new push) gets a new stream key.
    keys = {w[0] for b in manager.service.tagger.batches for w in b if w[0].startswith("room_0#")}
    await push(manager, "room_0", audio, owner="again")
    keys2 = {w[0] for b in manager.service.tagger.batches for w in b if w[0].startswith("room_0#")}
    assert len(keys) == 1
    assert len(keys2) == 2


async def test_event_clip_and_times(tone_manager: StreamManager) -> None:
    """The clip runs from ~2 s before the start to ~1 s after the end; times are audio time."""
    manager = tone_manager
    await manager.create({"name": "Kitchen", "kind": "push"})
    await push(manager, "kitchen", tone_scene(4.0, 3.0, 5.0))
    events, _ = await manager.store.events_after(0)
    assert len(events) == 1
    event = events[0]
    t0 = manager.get("kitchen").t0
    assert event.start - t0 == pytest.approx(4.0, abs=0.3)
    assert event.end - t0 == pytest.approx(7.0, abs=0.3)
    clip, rate = sf.read(io.BytesIO(await manager.store.get_clip(event.seq)))
    assert rate == RATE
    assert clip.size / RATE == pytest.approx((event.end - event.start) + 3.0, abs=0.3)
    # The tone starts ~2 s into the clip.
    loud = np.flatnonzero(np.abs(clip) > 0.1)
    assert loud[0] / RATE == pytest.approx(2.0, abs=0.3)


async def test_long_event_clip_is_capped(tone_manager: StreamManager) -> None:
    """A long event keeps a 30 s clip from its start (the onset matters most)."""
    manager = tone_manager
    await manager.create({"name": "Kitchen", "kind": "push"})
    await push(manager, "kitchen", tone_scene(2.0, 36.0, 3.0))
    events, _ = await manager.store.events_after(0)
    assert len(events) == 1
    clip, _ = sf.read(io.BytesIO(await manager.store.get_clip(events[0].seq)))
    assert clip.size / RATE == pytest.approx(30.0, abs=0.01)
    assert np.flatnonzero(np.abs(clip) > 0.1)[0] / RATE == pytest.approx(2.0, abs=0.3)


async def test_recent_audio(tone_manager: StreamManager) -> None:
    """recent_audio gives the last seconds as float32 16 kHz; KeyError for unknown sources."""
    manager = tone_manager
    await manager.create({"name": "Kitchen", "kind": "push"})
    assert manager.recent_audio("kitchen", 5.0).size == 0
    audio = tone_scene(1.0, 1.0, 40.0)
    audio[-RATE:] = 0.25
    await push(manager, "kitchen", audio)
    recent = manager.recent_audio("kitchen", 2.0)
    assert recent.dtype == np.float32
    assert recent.size == 2 * RATE
    assert recent[-RATE:] == pytest.approx(0.25, abs=1e-3)
    assert manager.recent_audio("kitchen", 100.0).size == 30 * RATE  # capped at 30 s
    with pytest.raises(KeyError):
        manager.recent_audio("nope", 1.0)


async def test_sensitivity_changes_thresholds(tone_manager: StreamManager) -> None:
    """PATCH sensitivity reaches the event logic and is kept."""
    manager = tone_manager
    await manager.create({"name": "Kitchen", "kind": "push", "sensitivity": "low"})
    runtime = manager.get("kitchen")
    assert runtime.tracker.sensitivity == "low"
    await manager.update("kitchen", {"sensitivity": "high"})
    assert runtime.tracker.sensitivity == "high"
    assert runtime.as_dict()["sensitivity"] == "high"
    saved = {i: d for i, _, d in await manager.store.load_sources()}
    assert saved["kitchen"]["sensitivity"] == "high"


async def test_tagger_failure_does_not_stall(tone_manager: StreamManager, caplog) -> None:
    """A tagger error is logged and the stream moves on."""
    manager = tone_manager
    await manager.create({"name": "Kitchen", "kind": "push"})
    manager.service.tagger.fail = True
    await push(manager, "kitchen", quiet(3.0))
    runtime = manager.get("kitchen")
    assert runtime.processed == runtime.ring.written == 3 * RATE
    assert any("Tagger failed" in r.getMessage() for r in caplog.records)
    manager.service.tagger.fail = False
    await push(manager, "kitchen", tone_scene(1.0, 2.0, 3.0))
    events, _ = await manager.store.events_after(0)
    assert [e.category for e in events] == ["appliance_beep"]


async def test_sources_come_back(tmp_path: Path) -> None:
    """API sources and their settings are saved in the data dir and restored."""
    tagger = ToneTagger()
    async for manager in _manager(tmp_path, tagger):
        await manager.create({"name": "Kitchen", "kind": "push", "sensitivity": "high"})
        await manager.create({"name": "Gone", "kind": "push"})
        await manager.delete("gone")
    async for manager in _manager(tmp_path, tagger):
        assert [(s["id"], s["sensitivity"]) for s in manager.list()] == [("kitchen", "high")]


async def test_noise_makes_no_events(builtin_manager: StreamManager) -> None:
    """Room noise and speech-free quiet produce no alarm."""
    manager = builtin_manager
    await manager.create({"name": "Hall", "kind": "push"})
    noise = synth.pink_noise(12.0, level_dbfs=-40.0, seed=7)
    await push(manager, "hall", noise)
    events, _ = await manager.store.events_after(0)
    assert not [e for e in events if e.category in ("smoke_alarm", "co_alarm")]
