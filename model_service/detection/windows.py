"""Cut audio into the overlapping windows a tagger scores, the same way for clips and streams.

Window ends fall on multiples of the tagger's hop counted from the stream's first sample, so a
clip sent to `/v1/classify` and the same audio arriving on a live stream are scored on the same
windows and yield the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from model_service.arrays import Samples
from model_service.detection.events import dbfs
from model_service.models.taggers import SAMPLE_RATE, Detection, Window

# (time, hop, level_dbfs, detections): one frame for `EventTracker.update`.
Frame = tuple[float, float, float, Mapping[str, Detection]]


def iter_windows(
    audio: Samples,
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
