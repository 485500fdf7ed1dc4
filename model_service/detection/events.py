"""The one event logic: per-category hysteresis, minimum duration, hold time and a level gate.

Both `/v1/classify` (a whole clip) and live streams feed frames through `EventTracker`, so a
clip and a stream of the same audio yield the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
import math
from typing import Literal

import numpy as np

from model_service.arrays import Samples
from model_service.models.taggers import Detection
from model_service.modes import Mode, mode_shift
from model_service.sensitivity import THRESHOLD_SHIFT, Sensitivity

SILENCE_DBFS = -120.0


@dataclass(frozen=True, slots=True)
class CategoryParams:
    """Thresholds for one category.

    An event starts when the score reaches `on` and continues while it stays at or above
    `off` (hysteresis). It is reported only once it lasted `min_duration` seconds, and it
    ends when the category has not been heard for `hold` seconds (alarms pause between
    bursts, so their hold is longer than one pause). `gated` categories are ignored in
    frames whose level is under the gate.
    """

    on: float = 0.5
    off: float = 0.35
    min_duration: float = 0.0
    hold: float = 1.0
    gated: bool = True


DEFAULT_PARAMS: Mapping[str, CategoryParams] = {
    # Alarm patterns are often confirmed in the silent pause after a burst, so the level of
    # that last hop says nothing about them: alarms are not gated.
    "smoke_alarm": CategoryParams(on=0.5, off=0.4, hold=6.0, gated=False),
    "co_alarm": CategoryParams(on=0.5, off=0.4, hold=7.0, gated=False),
    "fire_alarm": CategoryParams(on=0.5, off=0.4, hold=6.0, gated=False),
    "siren": CategoryParams(hold=3.0),
    "speech": CategoryParams(on=0.5, off=0.35, min_duration=0.3, hold=1.5),
    "water_running": CategoryParams(min_duration=2.0, hold=3.0),
    "dog_bark": CategoryParams(hold=2.0),
    "baby_cry": CategoryParams(min_duration=0.5, hold=3.0),
    "appliance_beep": CategoryParams(on=0.5, off=0.4, hold=1.5),
    "loud_noise": CategoryParams(on=0.5, off=0.4, hold=0.5),
    # Reported in the quiet after the pattern, so not gated; one event per gesture, and the
    # hold keeps one from repeating within 2 s.
    "double_clap": CategoryParams(on=0.5, off=0.4, hold=2.0, gated=False),
    "triple_clap": CategoryParams(on=0.5, off=0.4, hold=2.0, gated=False),
    "double_snap": CategoryParams(on=0.5, off=0.4, hold=2.0, gated=False),
    # Scored against what the source usually hears at this hour (live sources only).
    "unusual_sound": CategoryParams(on=0.5, off=0.4, hold=2.0),
}


def params_for(
    category: str,
    sensitivity: Sensitivity = Sensitivity.MEDIUM,
    overrides: Mapping[str, CategoryParams] | None = None,
    mode: Mode = Mode.HOME,
) -> CategoryParams:
    """Parameters for a category at a sensitivity and mode, with optional overrides."""
    base = (overrides or {}).get(category) or DEFAULT_PARAMS.get(category) or CategoryParams()
    shift = THRESHOLD_SHIFT[Sensitivity(sensitivity)] + mode_shift(Mode(mode), category)
    if not shift:
        return base
    on = min(0.95, max(0.05, base.on + shift))
    off = min(on, max(0.02, base.off + shift))
    return replace(base, on=on, off=off)


def dbfs(samples: Samples) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dBFS; digital silence is -120)."""
    if samples.size == 0:
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 1e-6:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms))


@dataclass(slots=True)
class SoundEvent:
    """A detected sound event; `end` is None while it is ongoing."""

    category: str
    label: str
    score: float
    start: float
    end: float | None
    level_dbfs: float

    def as_dict(self) -> dict[str, object]:
        """Wire form (times rounded to milliseconds)."""
        return {
            "category": self.category,
            "label": self.label,
            "score": round(self.score, 4),
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "level_dbfs": round(self.level_dbfs, 1),
        }


@dataclass(frozen=True, slots=True)
class EventUpdate:
    """A change to an event: it started, or it ended. `event` is a snapshot."""

    kind: Literal["start", "end"]
    event: SoundEvent


@dataclass(slots=True)
class _Track:
    start: float
    last_heard: float
    peak: float
    label: str
    level: float
    active: bool = False


@dataclass(slots=True)
class EventTracker:
    """Turns a time-ordered sequence of frames into event starts and ends for one stream."""

    categories: Iterable[str]
    sensitivity: Sensitivity = Sensitivity.MEDIUM
    gate_dbfs: float = -70.0
    overrides: Mapping[str, CategoryParams] | None = None
    mode: Mode = Mode.HOME
    _params: dict[str, CategoryParams] = field(init=False)
    _tracks: dict[str, _Track] = field(init=False, default_factory=dict)
    _last_time: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._params = {c: self._params_for(c) for c in self.categories}

    def _params_for(self, category: str) -> CategoryParams:
        return params_for(category, self.sensitivity, self.overrides, self.mode)

    def set_sensitivity(self, sensitivity: Sensitivity, mode: Mode | None = None) -> None:
        """Change thresholds (and the mode) from the next frame on; ongoing events continue."""
        self.sensitivity = sensitivity
        if mode is not None:
            self.mode = mode
        self._params = {c: self._params_for(c) for c in self._params}

    def set_categories(self, categories: Iterable[str]) -> list[EventUpdate]:
        """Follow a changed category list (taught sounds come and go): new categories start
        from the next frame; events of removed ones end now (their end updates)."""
        wanted = list(categories)
        updates = [
            EventUpdate("end", self._snapshot(c, t, end=t.last_heard))
            for c, t in self._tracks.items()
            if c not in wanted and t.active
        ]
        self._tracks = {c: t for c, t in self._tracks.items() if c in wanted}
        self._params = {c: self._params.get(c) or self._params_for(c) for c in wanted}
        return updates

    @property
    def ongoing(self) -> list[SoundEvent]:
        """Events that have started and not yet ended."""
        return [self._snapshot(c, t) for c, t in self._tracks.items() if t.active]

    def update(
        self,
        time: float,
        hop: float,
        level_dbfs: float,
        detections: Mapping[str, Detection],
    ) -> list[EventUpdate]:
        """Feed one frame: `detections` scored the audio ending at `time` (seconds).

        `hop` is the span of new audio the frame covers. Frames under the level gate count
        as silence for every category.
        """
        updates: list[EventUpdate] = []
        gated = level_dbfs < self.gate_dbfs
        for category, params in self._params.items():
            det = None if gated and params.gated else detections.get(category)
            track = self._tracks.get(category)
            if track is None:
                if det is not None and det.score >= params.on:
                    start = time - hop
                    if det.onset is not None:
                        start = min(start, time - det.onset)
                    track = _Track(
                        start=max(0.0, start),
                        last_heard=time,
                        peak=det.score,
                        label=det.label,
                        level=level_dbfs,
                    )
                    self._tracks[category] = track
            elif det is not None and det.score >= params.off:
                track.last_heard = time
                track.level = max(track.level, level_dbfs)
                if det.score > track.peak:
                    track.peak = det.score
                    track.label = det.label
            if track is None:
                continue
            if (
                not track.active
                and track.last_heard - track.start >= params.min_duration
                and time - track.last_heard < params.hold
            ):
                track.active = True
                updates.append(EventUpdate("start", self._snapshot(category, track)))
            if time - track.last_heard >= params.hold:
                del self._tracks[category]
                if track.active:
                    updates.append(
                        EventUpdate("end", self._snapshot(category, track, end=track.last_heard))
                    )
        self._last_time = time
        return updates

    def flush(self, time: float | None = None) -> list[EventUpdate]:
        """End every ongoing event (end of a clip, or a stream that stopped)."""
        end_time = self._last_time if time is None else time
        updates = [
            EventUpdate("end", self._snapshot(c, t, end=min(max(t.last_heard, t.start), end_time)))
            for c, t in self._tracks.items()
            if t.active
        ]
        self._tracks.clear()
        return updates

    def _snapshot(self, category: str, track: _Track, end: float | None = None) -> SoundEvent:
        return SoundEvent(
            category=category,
            label=track.label,
            score=track.peak,
            start=track.start,
            end=end,
            level_dbfs=track.level,
        )


def events_from_frames(
    frames: Iterable[tuple[float, float, float, Mapping[str, Detection]]],
    categories: Iterable[str],
    *,
    duration: float,
    sensitivity: Sensitivity = Sensitivity.MEDIUM,
    gate_dbfs: float = -70.0,
    mode: Mode = Mode.HOME,
) -> list[SoundEvent]:
    """Run a whole clip's frames (time, hop, level, detections) and return finished events."""
    tracker = EventTracker(categories, sensitivity=sensitivity, gate_dbfs=gate_dbfs, mode=mode)
    finished: list[SoundEvent] = []
    for time, hop, level, detections in frames:
        finished.extend(
            u.event for u in tracker.update(time, hop, level, detections) if u.kind == "end"
        )
    finished.extend(u.event for u in tracker.flush(duration))
    finished.sort(key=lambda e: (e.start, e.category))
    return finished
