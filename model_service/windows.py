"""Cut audio into the overlapping windows a tagger scores, the same way for clips and streams.

Window ends fall on multiples of the tagger's hop counted from the stream's first sample, so a
clip sent to `/v1/classify` and the same audio arriving on a live stream are scored on the same
windows and yield the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .events import SoundEvent, dbfs, events_from_frames
from .taggers import SAMPLE_RATE, Detection, Tagger, Window

# (time, hop, level_dbfs, detections): one frame for `EventTracker.update`.
Frame = tuple[float, float, float, Mapping[str, Detection]]


def iter_windows(
    audio: np.ndarray,
    window_seconds: float,
    hop_seconds: float,
    stream: str | None,
    *,
    start: int = 0,
    rate: int = SAMPLE_RATE,
) -> Iterator[tuple[float, Window]]:
    """Yield (end_time, Window) for every hop of `audio`, oldest first.

    `start` is the absolute sample index of `audio[0]` in its stream. Windows end at multiples
    of the hop (absolute), the first ones are shorter than `window_seconds`, and a last window
    ends at the end of the audio when it does not fall on a hop (its hop is shorter). Windows
    are views into `audio`, not copies.
    """
    hop = max(1, round(hop_seconds * rate))
    size = max(hop, round(window_seconds * rate))
    stop = start + audio.size
    end = (start // hop + 1) * hop
    while True:
        last = end >= stop
        if last:
            end = stop
        if end > start:
            lo = max(start, end - size)
            yield end / rate, Window(audio=audio[lo - start : end - start], stream=stream, end=end)
        if last:
            return
        end += hop


def to_frames(
    items: Sequence[tuple[float, Window]],
    detections: Sequence[Mapping[str, Detection]],
    *,
    start: int = 0,
    rate: int = SAMPLE_RATE,
) -> list[Frame]:
    """Pair `iter_windows` output with its detections: one (time, hop, level, detections) frame each.

    `time` is seconds from the clip's start; `level` is the dBFS of the frame's new audio
    (its last hop), the value the event logic gates on.
    """
    frames: list[Frame] = []
    offset = start / rate
    previous = start
    for (end_time, window), det in zip(items, detections, strict=True):
        new = window.audio[max(0, window.audio.size - (window.end - previous)) :]
        frames.append((end_time - offset, (window.end - previous) / rate, dbfs(new), det))
        previous = window.end
    return frames


def frames_for_clip(
    tagger: Tagger,
    audio: np.ndarray,
    stream: str | None,
    *,
    batch_size: int = 64,
    start: int = 0,
    rate: int = SAMPLE_RATE,
) -> list[Frame]:
    """Score a whole clip hop by hop, in batches, calling the tagger directly (tests, benchmarks)."""
    info = tagger.info
    items = list(
        iter_windows(audio, info.window_seconds, info.hop_seconds, stream, start=start, rate=rate)
    )
    detections: list[Mapping[str, Detection]] = []
    for i in range(0, len(items), batch_size):
        detections.extend(tagger.predict([w for _, w in items[i : i + batch_size]]))
    return to_frames(items, detections, start=start, rate=rate)


def events_for_clip(
    tagger: Tagger,
    audio: np.ndarray,
    stream: str | None,
    *,
    categories: Sequence[str] | None = None,
    sensitivity: str = "medium",
    gate_dbfs: float = -70.0,
    batch_size: int = 64,
    rate: int = SAMPLE_RATE,
) -> list[SoundEvent]:
    """Finished events of a whole clip through the one event logic (what `/v1/classify` answers)."""
    frames = frames_for_clip(tagger, audio, stream, batch_size=batch_size, rate=rate)
    return events_from_frames(
        frames,
        categories if categories is not None else tagger.info.categories,
        duration=audio.size / rate,
        sensitivity=sensitivity,
        gate_dbfs=gate_dbfs,
    )
