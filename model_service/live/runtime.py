"""One live source at run time: its audio in (ffmpeg or pushed), its windows through the
batcher, its events through the tracker into the store and out to subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import logging
import time
from typing import Any, Protocol, get_args
import uuid

import numpy as np

from model_service import metrics
from model_service.arrays import Array
from model_service.audio import to_wav_bytes
from model_service.detection.events import EventTracker, EventUpdate, dbfs
from model_service.detection.service import Service
from model_service.live import usual
from model_service.live.hub import RING_SECONDS, Hub, RingBuffer
from model_service.live.sounds import SoundBook
from model_service.live.sources import (
    Backoff,
    FfmpegRunner,
    SourceSpec,
    State,
)
from model_service.live.store import EventStore, StoreError
from model_service.models.batcher import BatcherClosedError, QueueFullError
from model_service.models.taggers import SAMPLE_RATE, Detection, Window
from model_service.modes import Mode
from model_service.sensitivity import Sensitivity

_LOGGER = logging.getLogger(__name__)
MAX_BACKLOG_SECONDS = 8.0  # audio waiting for analysis before a producer has to wait
MAX_SUBMIT = 8  # windows one source hands the batcher at a time (fairness between sources)
LEVEL_INTERVAL = 0.5  # wall-clock seconds between level messages of one source
CLIP_BEFORE = 2.0
CLIP_AFTER = 1.0
CLIP_MAX = 30.0
MAX_HOP = 0.5
STATES: tuple[State, ...] = get_args(State)
# Categories only a live source reports (against what it usually hears: live/usual.py).
LIVE_CATEGORIES: tuple[str, ...] = ("unusual_sound",)
UNUSUAL_LABEL = "Unusual sound"


def _usual_step(
    model: usual.UsualModel, hops: list[tuple[float, Array]]
) -> tuple[list[float], int]:
    """Score and learn hops, and say how many hours are learned (in a worker thread)."""
    return model.step(hops), model.learned_hours()


class RuntimeContext(Protocol):
    """What a source's runtime needs from the manager that owns it."""

    service: Service
    hub: Hub
    store: EventStore
    sounds: SoundBook
    read_timeout: float
    backoff_max: float


@dataclass(slots=True)
class _OpenEvent:
    seq: int | None  # None when the store refused the start (logged there)
    clip_start: int
    clip_done: bool


class SourceRuntime:
    """A running source: ring buffer, window scheduling, event tracking and its state.

    It is the `AudioSink` of its ffmpeg runner, and of the WebSocket connection pushing to it.
    One worker task analyses the audio in order; producers wait (`feed`) when it falls more
    than MAX_BACKLOG_SECONDS behind, so audio faster than real time is analysed in full.
    """

    def __init__(self, spec: SourceSpec, manager: RuntimeContext) -> None:
        """Wire a source to the manager's service, store and hub (not started)."""
        self.spec = spec
        self.manager = manager
        service = manager.service
        info = service.tagger.info
        self.hop = max(1, round(min(info.hop_seconds, MAX_HOP) * SAMPLE_RATE))
        self.window = max(self.hop, round(info.window_seconds * SAMPLE_RATE))
        self.ring = RingBuffer(round(RING_SECONDS * SAMPLE_RATE))
        self.backlog_limit = round(MAX_BACKLOG_SECONDS * SAMPLE_RATE)
        self.state: State = "idle" if spec.kind == "push" else "connecting"
        self.error: str | None = None
        self.level: float | None = None
        self.tracker = self._new_tracker()
        self.stream_key = ""
        self.t0 = 0.0
        self.processed = 0
        self.runner: FfmpegRunner | None = None
        self.pusher: object | None = None
        self.last_audio = time.monotonic()
        self._open: dict[str, _OpenEvent] = {}
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self._ending = False
        self._run_done = asyncio.Event()
        self._run_done.set()
        self._in_run = False
        self._run_gen = 0
        self._closed = False
        self._last_level_pub = 0.0
        self._worker: asyncio.Task[None] | None = None
        self._push_lock = asyncio.Lock()
        self.usual: usual.UsualModel | None = None  # loaded by the worker
        self._learned_hours = 0
        self._usual_path = usual.model_path(manager.store.data_dir, spec.id)
        self._publish_metrics()

    # -- identity and wire form ----------------------------------------------------------

    @property
    def id(self) -> str:
        """The source id."""
        return self.spec.id

    @property
    def sensitivity(self) -> Sensitivity:
        """Effective sensitivity (the source's own, or the service default)."""
        return self.spec.sensitivity or self.manager.service.config.sensitivity

    @property
    def mode(self) -> Mode:
        """Effective mode (the source's own, or the service default)."""
        return self.spec.mode or self.manager.service.config.mode

    def as_dict(self) -> dict[str, Any]:
        """Wire form (docs/api.md, Sources)."""
        data: dict[str, Any] = {
            "id": self.spec.id,
            "name": self.spec.name,
            "kind": self.spec.kind,
            "url": self.spec.wire_url(),
            "state": self.state,
            "error": self.error,
            "level_dbfs": None if self.level is None else round(self.level, 1),
            "sensitivity": self.sensitivity,
            "mode": self.mode,
            "persistent": self.spec.persistent,
            "learned_hours": self._learned_hours,
        }
        if self.spec.kind == "device":
            data["device"] = f"{self.spec.device_format}:{self.spec.device}"
        return data

    def _new_tracker(self) -> EventTracker:
        return EventTracker(
            self.categories(),
            sensitivity=self.sensitivity,
            gate_dbfs=self.manager.service.config.gate_dbfs,
            mode=self.mode,
        )

    def categories(self) -> list[str]:
        """What this source detects: the tagger's categories, unusual sounds, taught sounds."""
        return [
            *self.manager.service.tagger.info.categories,
            *LIVE_CATEGORIES,
            *(s.id for s in self.manager.sounds.ready()),
        ]

    async def refresh_categories(self) -> None:
        """Taught sounds changed: detect the ready ones from the next hop on."""
        for update in self.tracker.set_categories(self.categories()):
            await self._handle(update)

    def _publish_metrics(self) -> None:
        for state in STATES:
            metrics.SOURCE_STATE.labels(source=self.id, state=state).set(
                1 if state == self.state else 0
            )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the analysis worker and, for ffmpeg/device sources, the runner."""
        loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._work(), name=f"analyse-{self.id}")
        metrics.SOURCE_BACKLOG.labels(source=self.id).set_function(self.backlog_seconds)
        if self.spec.kind in ("ffmpeg", "device"):
            self.runner = FfmpegRunner(
                self.spec,
                self,
                ffmpeg=self.manager.service.config.ffmpeg,
                read_timeout=self.manager.read_timeout,
                backoff=Backoff(maximum=self.manager.backoff_max),
            )
            self.runner.start()

    async def stop(self) -> None:
        """Stop the source: the current run is analysed to its end, ongoing events end."""
        if self.runner is not None:
            await self.runner.stop()
        elif self._in_run:
            await self.end_run()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self.pusher = None
        self.set_state("stopped" if self.spec.kind != "push" else "idle")
        await self.save_usual()

    async def save_usual(self) -> None:
        """Keep what the source usually hears in the data dir (in a thread)."""
        model = self.usual
        if model is None:
            return
        try:
            await asyncio.to_thread(usual.save, self._usual_path, model)
        except OSError as err:
            _LOGGER.warning("What %s usually hears could not be saved: %s", self.id, err)

    async def forget_usual(self) -> None:
        """The source was deleted: what it learned goes too."""
        self.usual = None
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._usual_path.unlink, missing_ok=True)

    def forget_metrics(self) -> None:
        """Drop this source's labelled metrics (it was deleted)."""
        for gauge in (metrics.SOURCE_LEVEL, metrics.SOURCE_BACKLOG):
            with contextlib.suppress(KeyError):
                gauge.remove(self.id)
        for state in STATES:
            with contextlib.suppress(KeyError):
                metrics.SOURCE_STATE.remove(self.id, state)

    def backlog_seconds(self) -> float:
        """Audio received and not yet analysed."""
        return (self.ring.written - self.processed) / SAMPLE_RATE

    # -- AudioSink -----------------------------------------------------------------------

    def set_state(self, state: State, error: str | None = None) -> None:
        """Change state; subscribers hear of every change."""
        if state == self.state and error == self.error:
            return
        self.state = state
        self.error = error
        self._publish_metrics()
        self.manager.hub.publish({"type": "source", "source": self.as_dict()})

    def begin_run(self, first_chunk_seconds: float = 0.0) -> None:
        """A new continuous run: new stream key (taggers' caches), new clock, empty ring."""
        self.stream_key = f"{self.id}#{uuid.uuid4().hex[:12]}"
        self.t0 = time.time() - first_chunk_seconds
        self.ring.reset()
        self.processed = 0
        self.tracker = self._new_tracker()
        self._open.clear()
        self._ending = False
        self._in_run = True
        self._run_gen += 1
        self._run_done.clear()

    async def feed(self, pcm: bytes) -> None:
        """Take s16le bytes; waits while the analysis is more than the backlog limit behind."""
        samples = np.frombuffer(pcm, dtype="<i2")
        run = self._run_gen
        self.last_audio = time.monotonic()
        if self.state == "stalled" and self.pusher is not None:
            self.set_state("streaming")
        step = SAMPLE_RATE  # pieces of 1 s: a huge frame must not overrun the ring
        for i in range(0, samples.size, step):
            while self.ring.written - self.processed >= self.backlog_limit and not self._closed:
                self._space.clear()
                await self._space.wait()
            if run != self._run_gen or not self._in_run:
                return  # the run ended while we waited (a takeover): the rest is not its audio
            self.ring.append(samples[i : i + step])
            self._data.set()

    async def end_run(self) -> None:
        """Analyse what is left of the run and end ongoing events."""
        if not self._in_run:
            return
        self._ending = True
        self._data.set()
        await self._run_done.wait()

    # -- analysis ------------------------------------------------------------------------

    def _ready_ends(self) -> list[int]:
        ends: list[int] = []
        end = (self.processed // self.hop + 1) * self.hop
        while end <= self.ring.written and len(ends) < MAX_SUBMIT:
            ends.append(end)
            end += self.hop
        if not ends and self._ending and self.ring.written > self.processed:
            # The tail of a run: a last, shorter hop (as windows.iter_windows does for clips).
            ends.append(self.ring.written)
        return ends

    async def _work(self) -> None:
        try:
            if self.usual is None:
                self.usual = await asyncio.to_thread(usual.load, self._usual_path)
                self._learned_hours = self.usual.learned_hours()
            while True:
                await self._data.wait()
                self._data.clear()
                while ends := self._ready_ends():
                    if not await self._analyse(ends):
                        return
                if self._ending and self.processed >= self.ring.written:
                    await self._finish_run()
        finally:
            # Shutting down: nobody may wait for analysis that will not happen any more.
            self._closed = True
            self._space.set()
            self._run_done.set()

    async def _analyse(self, ends: list[int]) -> bool:
        """Score windows ending at `ends` and run the event logic; False when shutting down."""
        key = self.stream_key
        windows = [
            Window(audio=self.ring.read_float(end - self.window, end), stream=key, end=end)
            for end in ends
        ]
        batcher = self.manager.service.tagger_batcher
        while True:
            try:
                results: list[dict[str, Detection]] = await batcher.submit_many(windows)
                break
            except QueueFullError as err:
                # Every source waits its turn; the producer side is held by the backlog limit.
                await asyncio.sleep(min(1.0, err.retry_after / 4))
            except BatcherClosedError:
                return False
            except Exception:
                _LOGGER.exception("Tagger failed on %s windows of %s", len(windows), self.id)
                results = [{} for _ in windows]
                break
        previous = self.processed
        hops: list[tuple[float, Array]] = []
        for end, window in zip(ends, windows, strict=True):
            hops.append(
                (
                    self.t0 + end / SAMPLE_RATE,
                    window.audio[max(0, window.audio.size - (end - previous)) :],
                )
            )
            previous = end
        unusual = await self._unusual(hops)
        taught = await self._taught(ends)
        previous = self.processed
        for end, (_, new), found, score, heard in zip(
            ends, hops, results, unusual, taught, strict=True
        ):
            detections = found
            if score > 0 or heard:
                detections = {**found, **heard}
                if score > 0:
                    detections["unusual_sound"] = Detection(score, UNUSUAL_LABEL)
            level = dbfs(new)
            updates = self.tracker.update(
                end / SAMPLE_RATE, (end - previous) / SAMPLE_RATE, level, detections
            )
            previous = end
            self.processed = end
            self.level = level
            for update in updates:
                await self._handle(update)
        self._space.set()
        await self._long_clips()
        self._publish_level()
        return True

    async def _unusual(self, hops: list[tuple[float, Array]]) -> list[float]:
        """How unusual each hop is for this source at this time of day (and learn it)."""
        model = self.usual
        if model is None or not hops:
            return [0.0] * len(hops)
        try:
            scores, hours = await asyncio.to_thread(_usual_step, model, hops)
        except Exception:
            _LOGGER.exception("The usual-sound model of %s failed", self.id)
            return [0.0] * len(hops)
        if hours != self._learned_hours:
            # An hour of the day was learned: clients show how far learning has come.
            self._learned_hours = hours
            self.manager.hub.publish({"type": "source", "source": self.as_dict()})
        return scores

    async def _taught(self, ends: list[int]) -> list[dict[str, Detection]]:
        """Scores of the taught sounds for matches ending in each hop (in a thread)."""
        book = self.manager.sounds
        window = book.window_seconds()
        if not window:
            return [{} for _ in ends]
        need = round(window * SAMPLE_RATE)
        pieces = [
            (self.ring.read_float(max(self.ring.oldest, end - need), end), end - start)
            for end, start in zip(ends, [self.processed, *ends[:-1]], strict=True)
        ]

        def score_all() -> list[dict[str, Detection]]:
            out = []
            for audio, new in pieces:
                scores = book.score(audio, new / SAMPLE_RATE)
                out.append(
                    {
                        cid: Detection(score, name, onset=began)
                        for cid, (score, name, began) in scores.items()
                        if score > 0
                    }
                )
            return out

        try:
            return await asyncio.to_thread(score_all)
        except Exception:
            _LOGGER.exception("Matching taught sounds on %s failed", self.id)
            return [{} for _ in ends]

    def _publish_level(self) -> None:
        if self.level is None:
            return
        now = time.monotonic()
        if now - self._last_level_pub < LEVEL_INTERVAL:
            return
        self._last_level_pub = now
        value = round(self.level, 1)
        metrics.SOURCE_LEVEL.labels(source=self.id).set(value)
        self.manager.hub.publish({"type": "level", "source": self.id, "dbfs": value})

    async def _finish_run(self) -> None:
        for update in self.tracker.flush(self.processed / SAMPLE_RATE):
            await self._handle(update)
        forget = getattr(self.manager.service.tagger, "forget", None)
        if forget is not None and self.stream_key:
            # The run's key is never used again; its cached features can go. In a thread:
            # the tagger's lock may be held by a running batch.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(forget, self.stream_key)
        self._open.clear()
        self._ending = False
        self._in_run = False
        self._space.set()
        self._run_done.set()

    def _clip(self, start: int, end: int) -> bytes | None:
        pcm = self.ring.read(start, end)
        return to_wav_bytes(pcm) if pcm.size else None

    async def _handle(self, update: EventUpdate) -> None:
        event = update.event
        store = self.manager.store
        if update.kind == "start":
            clip_start = max(self.ring.oldest, round((event.start - CLIP_BEFORE) * SAMPLE_RATE))
            clip_cap = clip_start + round(CLIP_MAX * SAMPLE_RATE)
            # A provisional clip (up to what has arrived) so "what was that?" works at once;
            # it is replaced when the event ends or the clip reaches its full length.
            clip = self._clip(clip_start, min(self.ring.written, clip_cap))
            seq: int | None = None
            try:
                stored = await store.add_event(
                    source=self.id,
                    category=event.category,
                    label=event.label,
                    score=event.score,
                    start=self.t0 + event.start,
                    level_dbfs=event.level_dbfs,
                    clip=clip,
                    mode=self.tracker.mode,
                )
                seq = stored.seq
            except StoreError:
                _LOGGER.error(
                    "Event %s on %s at %.1f s was detected but could not be stored",
                    event.category,
                    self.id,
                    event.start,
                )
            metrics.EVENTS.labels(category=event.category, source=self.id).inc()
            self._open[event.category] = _OpenEvent(
                seq=seq, clip_start=clip_start, clip_done=self.ring.written >= clip_cap
            )
            return
        opened = self._open.pop(event.category, None)
        if opened is None or opened.seq is None or event.end is None:
            return
        clip = None
        if not opened.clip_done:
            clip_end = min(
                self.ring.written,
                round((event.end + CLIP_AFTER) * SAMPLE_RATE),
                opened.clip_start + round(CLIP_MAX * SAMPLE_RATE),
            )
            if opened.clip_start >= self.ring.oldest:
                clip = self._clip(opened.clip_start, clip_end)
        try:
            await store.update_event(
                opened.seq,
                end=self.t0 + event.end,
                score=event.score,
                label=event.label,
                level_dbfs=event.level_dbfs,
                clip=clip,
            )
        except (StoreError, KeyError):
            _LOGGER.error("The end of event %s on %s could not be stored", opened.seq, self.id)

    async def _long_clips(self) -> None:
        """Write the full-length clip of events still going on once it is complete."""
        cap = round(CLIP_MAX * SAMPLE_RATE)
        for opened in self._open.values():
            if opened.clip_done or opened.seq is None:
                continue
            if self.ring.written >= opened.clip_start + cap:
                opened.clip_done = True
                clip = self._clip(opened.clip_start, opened.clip_start + cap)
                if clip is not None:
                    with contextlib.suppress(StoreError):
                        await self.manager.store.set_clip(opened.seq, clip)

    # -- push ----------------------------------------------------------------------------

    async def push_start(self, owner: object) -> None:
        """A connection starts pushing audio; a previous pusher's run ends first."""
        async with self._push_lock:
            if self._in_run:
                await self.end_run()
            self.pusher = owner
            self.last_audio = time.monotonic()
            self.begin_run(0.0)
            self.set_state("streaming")

    async def push_stop(self, owner: object, *, lost: str | None = None) -> None:
        """The pushing connection stops: analyse the rest, end events.

        With `lost` (why), it went away without push_stop: the source is `lost`, not `idle`,
        until a client pushes again.
        """
        async with self._push_lock:
            if self.pusher is not owner:
                return
            self.pusher = None
            if lost is not None:
                # Said at once: the connection's handler may be cancelled while the rest of
                # the run is analysed (the worker finishes that on its own).
                self.set_state("lost", lost)
            await self.end_run()
            if lost is None:
                self.set_state("idle")

    def check_stalled(self, now: float) -> None:
        """A pusher that keeps its stream open but sends no audio for the read timeout."""
        if self.pusher is None or self.state != "streaming":
            return
        silent = now - self.last_audio
        if silent >= self.manager.read_timeout:
            self.set_state("stalled", f"the pushing client sent no audio for {silent:.0f} s")

    def recent(self, seconds: float) -> Array:
        """The last `seconds` of audio received, float32."""
        n = max(0, round(seconds * SAMPLE_RATE))
        return self.ring.read_float(self.ring.written - n, self.ring.written)
