"""Activity gating: a neural tagger only hears windows that hold something new.

Most of a home's audio is unchanged background: the same fridge hum, the same quiet room,
the same running tap. A window whose newest hop sounds like the audio the model last scored
on that stream gets the model's last answer for that stream again, without running the
model. Cheap features decide: the level in eight bands over the hop (a sound starting or
stopping, the scene changing), and each band's loudest 32 ms frame (a knock or a clap inside
steady noise). The model still hears each stream at least every `refresh_seconds`, so a
slowly changing scene is re-scored, and windows without a stream key (one-off requests) are
never gated. Alarms are not at stake: the smoke and CO pattern detectors run on every window
beside the model (`combined.CombinedTagger`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading

import numpy as np

from model_service.arrays import Array, Samples
from model_service.models.taggers.base import SAMPLE_RATE, Detection, Tagger, TaggerInfo, Window

FRAME = 512  # 32 ms frames, as the embedded detectors use
_EDGES_HZ = (0, 150, 300, 600, 1200, 2400, 4000, 6000, 8001)
_BINS = np.fft.rfftfreq(FRAME, 1.0 / SAMPLE_RATE)
_BAND_OF_BIN = np.clip(np.searchsorted(_EDGES_HZ, _BINS, side="right") - 1, 0, len(_EDGES_HZ) - 2)
# (bins, bands) 0/1 matrix: a frame's band powers are one matrix product.
_BANDS = np.eye(len(_EDGES_HZ) - 1, dtype=np.float32)[_BAND_OF_BIN]
_HANN = np.hanning(FRAME).astype(np.float32)
_FLOOR = 1e-10


def hop_features(audio: Samples) -> tuple[Array, Array]:
    """Per band: the mean level over the hop and the loudest frame's level, in dB."""
    usable = (audio.size // FRAME) * FRAME
    if usable == 0:
        audio = np.pad(audio, (0, FRAME - audio.size))
        usable = FRAME
    frames = audio[-usable:].reshape(-1, FRAME) * _HANN
    spectrum = np.fft.rfft(frames, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    bands = power @ _BANDS
    level = 10.0 * np.log10(bands + _FLOOR)
    return 10.0 * np.log10(bands.mean(axis=0) + _FLOOR), level.max(axis=0)


@dataclass(slots=True)
class _Seen:
    """What the model last heard on a stream and what it said, and the stream's last hop.

    `steady`: the hop the model last scored sounded like the hop before it. Only such an
    answer is reused: a sound that has just begun (a first beep) may not be recognised yet,
    and its next hop must reach the model.
    """

    mean_db: Array
    peak_db: Array
    end: int
    result: dict[str, Detection]
    steady: bool
    last_mean: Array
    last_peak: Array


class GatedTagger:
    """`model`, run only on windows whose newest hop differs from what it last heard."""

    def __init__(
        self,
        model: Tagger,
        *,
        change_db: float = 6.0,
        onset_db: float = 9.0,
        refresh_seconds: float = 2.0,
    ) -> None:
        """Wrap `model`; the thresholds are the level changes that count as something new."""
        self.model = model
        self.change_db = change_db
        self.onset_db = onset_db
        self.refresh = round(refresh_seconds * SAMPLE_RATE)
        self.hop = round(model.info.hop_seconds * SAMPLE_RATE)
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self.windows = 0
        self.skipped = 0
        base = model.info
        self.info = TaggerInfo(
            name=base.name,
            backend=base.backend,
            categories=base.categories,
            window_seconds=base.window_seconds,
            hop_seconds=base.hop_seconds,
            device=base.device,
            labels=base.labels,
            extra={**base.extra, "activity_gate": True},
        )

    def _differs(self, mean: Array, peak: Array, ref_mean: Array, ref_peak: Array) -> bool:
        return bool(
            np.abs(mean - ref_mean).max() > self.change_db
            or (peak - ref_peak).max() > self.onset_db
        )

    def _is_new(self, seen: _Seen | None, window: Window, mean: Array, peak: Array) -> bool:
        if seen is None or not seen.steady:
            return True
        if window.end - seen.end >= self.refresh or window.end < seen.end:
            return True
        return self._differs(mean, peak, seen.mean_db, seen.peak_db) or self._differs(
            mean, peak, seen.last_mean, seen.last_peak
        )

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """The model's answers for new windows, its last answers for unchanged ones."""
        results: list[dict[str, Detection] | None] = [None] * len(windows)
        features: list[tuple[Array, Array] | None] = [None] * len(windows)
        to_run: list[int] = []
        with self._lock:
            for i, window in enumerate(windows):
                if window.stream is None:
                    to_run.append(i)
                    continue
                mean, peak = hop_features(np.asarray(window.audio, np.float32)[-self.hop :])
                features[i] = (mean, peak)
                seen = self._seen.get(window.stream)
                if self._is_new(seen, window, mean, peak):
                    to_run.append(i)
                else:
                    assert seen is not None
                    results[i] = dict(seen.result)
                    seen.last_mean, seen.last_peak = mean, peak
            self.windows += len(windows)
            self.skipped += len(windows) - len(to_run)
        answers = self.model.predict([windows[i] for i in to_run]) if to_run else []
        with self._lock:
            for i, answer in zip(to_run, answers, strict=True):
                results[i] = answer
                window, feature = windows[i], features[i]
                if window.stream is None or feature is None:
                    continue
                mean, peak = feature
                before = self._seen.get(window.stream)
                steady = before is not None and not self._differs(
                    mean, peak, before.last_mean, before.last_peak
                )
                self._seen[window.stream] = _Seen(
                    mean, peak, window.end, answer, steady, mean, peak
                )
        return [result if result is not None else {} for result in results]

    def forget(self, stream: str) -> None:
        """Drop a stream that ended."""
        with self._lock:
            self._seen.pop(stream, None)
        forget = getattr(self.model, "forget", None)
        if forget is not None:
            forget(stream)

    def close(self) -> None:
        """Release the model."""
        self.model.close()
