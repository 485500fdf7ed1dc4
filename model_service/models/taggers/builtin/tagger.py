"""The embedded default tagger: alarm, beep and bang detectors from signal processing, plus
silero-vad for speech. No downloaded weights (silero-vad's model ships inside its package).

How it works. Each stream is cut into STFT frames (32 ms Hann, 10 ms hop) aligned to absolute
sample positions, and each frame is reduced to a few numbers: the strongest peak (frequency,
level, salience over the band's median) in the piezo band, the low-frequency alarm band, the
appliance-beep band and the voice-pitch band, the harmonics of the low-frequency peak, and a
few band energies. Frame features are cached per stream, so a window that overlaps the
previous one by 90 % only computes its new frames. The detectors then work on the frame
features of whole windows, vectorised across a batch: runs of tonal frames at one frequency
become pulses, and pulse timing is matched against the alarm patterns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
import math
import threading

import numpy as np

from model_service.arrays import Array, Samples
from model_service.categories import CATEGORY_IDS
from model_service.models.taggers.base import SAMPLE_RATE, Detection, TaggerInfo, Window
from model_service.models.taggers.builtin.alarms import alarms_and_beeps
from model_service.models.taggers.builtin.bang import bangs
from model_service.models.taggers.builtin.features import (
    FRAME_HOP,
    HOP_SECONDS,
    N_FEATURES,
    N_FFT,
    WINDOW_SECONDS,
    FrameBatch,
    Segment,
    continues,
    frame_features,
)
from model_service.models.taggers.builtin.gestures import GESTURES, gestures
from model_service.models.taggers.builtin.speech import VadSpeech, load_vad
from model_service.models.taggers.builtin.state import StreamState

LABELS: dict[str, str] = {
    "smoke_alarm": "Smoke detector, smoke alarm",
    "co_alarm": "Carbon monoxide alarm (temporal-four)",
    "appliance_beep": "Beep, bleep",
    "loud_noise": "Bang",
    "speech": "Speech",
    "double_clap": "Clapping (two claps)",
    "triple_clap": "Clapping (three claps)",
    "double_snap": "Finger snapping (two snaps)",
}


class BuiltinTagger:
    """Signal-processing tagger (smoke/CO alarms, appliance beeps, bangs) plus silero-vad speech.

    Keyword options: `loud_dbfs` (frame level a bang must reach), `speech` (load silero-vad),
    `cache_streams` (streams whose frame features and VAD state are kept between calls, least
    recently used dropped first; 0 disables caching), `vad_gate` (skip VAD where the audio
    cannot be speech), `vad_min_dbfs` (speech-band level under which VAD is skipped).
    `predict` holds a lock, so batches run one at a time.
    """

    def __init__(
        self,
        *,
        loud_dbfs: float = -20.0,
        speech: bool = True,
        cache_streams: int = 512,
        vad_gate: bool = True,
        vad_min_dbfs: float = -60.0,
    ) -> None:
        """Set up the detectors and load silero-vad (bundled with its package) when `speech`."""
        self.loud_dbfs = float(loud_dbfs)
        self.cache_streams = max(0, int(cache_streams))
        self.vad_gate = bool(vad_gate)
        self.vad_min_dbfs = float(vad_min_dbfs)
        self.stats = {"frames": 0, "vad_windows": 0, "vad_skipped": 0, "vad_chunks": 0}
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, StreamState] = OrderedDict()
        self._hop_samples = round(HOP_SECONDS * SAMPLE_RATE)
        self._speech: VadSpeech | None = None
        available = {"smoke_alarm", "co_alarm", "appliance_beep", "loud_noise", *GESTURES}
        if speech:
            self._speech = VadSpeech(
                load_vad(),
                cache=self._cache,
                stats=self.stats,
                hop_samples=self._hop_samples,
                vad_gate=self.vad_gate,
                vad_min_dbfs=self.vad_min_dbfs,
            )
            available.add("speech")
        categories = tuple(c for c in CATEGORY_IDS if c in available)
        self.info = TaggerInfo(
            name="builtin",
            backend="builtin",
            categories=categories,
            window_seconds=WINDOW_SECONDS,
            hop_seconds=HOP_SECONDS,
            device="cpu",
            labels={c: [LABELS[c]] for c in categories},
            extra={"speech_model": "silero-vad" if speech else None},
        )
        self._capacity = math.ceil((WINDOW_SECONDS + 2 * HOP_SECONDS) * SAMPLE_RATE / FRAME_HOP)

    def close(self) -> None:
        """Drop cached stream state and the VAD model."""
        with self._lock:
            self._cache.clear()
            self._speech = None

    def forget(self, stream: str) -> None:
        """Drop one stream's cached state (a source that stopped, a finished clip)."""
        with self._lock:
            self._cache.pop(stream, None)

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """Score each window; one dict (category id -> Detection) per window, same order."""
        if not windows:
            return []
        n = len(windows)
        with self._lock:
            audio: list[Samples] = [np.asarray(w.audio, np.float32).reshape(-1) for w in windows]
            batch = self._features(windows, audio)
            scores: dict[str, Array] = {c: np.zeros(n) for c in self.info.categories}
            onsets: dict[str, list[float | None]] = {c: [None] * n for c in self.info.categories}
            alarms_and_beeps(batch, scores, onsets)
            bangs(batch, scores, onsets, hop_samples=self._hop_samples, loud_dbfs=self.loud_dbfs)
            gestures(batch, audio, scores, onsets, hop_samples=self._hop_samples)
            if self._speech is not None:
                scores["speech"] = self._speech.score(windows, audio, batch)
        return [
            {
                c: Detection(
                    score=round(float(scores[c][i]), 4),
                    label=LABELS[c],
                    onset=None if onsets[c][i] is None else round(float(onsets[c][i] or 0.0), 3),
                )
                for c in self.info.categories
            }
            for i in range(n)
        ]

    def _features(self, windows: Sequence[Window], audio: Sequence[Samples]) -> FrameBatch:
        """Frame features for every window, computing only the frames no cache holds.

        Frame k covers samples [k*160 - 512, k*160) of its stream, so overlapping windows
        share frames exactly and a cached frame equals a recomputed one.
        """
        n = len(windows)
        blocks: list[Array] = []
        rows = 0
        plan: list[tuple[Segment | None, int, int]] = [(None, 0, -1)] * n
        live: dict[str, Segment] = {}
        tails: dict[str, tuple[Array, int]] = {}
        reset: set[str] = set()
        order = sorted(
            range(n),
            key=lambda i: (windows[i].stream is None, windows[i].stream or "", windows[i].end),
        )
        for i in order:
            w, a = windows[i], audio[i]
            start = w.end - a.size
            k_lo = -(-(start + N_FFT) // FRAME_HOP)
            k_hi = w.end // FRAME_HOP
            key = w.stream if self.cache_streams else None
            seg: Segment | None = None
            if key is not None:
                if key not in tails:
                    state = self._cache.get(key)
                    if state is not None:
                        tails[key] = (state.tail, state.tail_end)
                        live[key] = Segment(
                            state.k0, state.k0 + state.feats.shape[0], [state.feats]
                        )
                seg = live.get(key)
                if seg is not None:
                    if not continues(a, start, w.end, *tails[key]):
                        seg = None  # another stream behind the same key: start over
                        reset.add(key)
                    elif not seg.k0 <= k_lo <= seg.k1:
                        seg = None
                tails[key] = (a[-N_FFT:].copy(), w.end)
            if seg is None:
                seg = Segment(k_lo, k_lo)
                if key is not None:
                    live[key] = seg
            if k_hi >= max(seg.k1, k_lo):
                k_new = max(seg.k1, k_lo)
                offset = k_new * FRAME_HOP - N_FFT - start
                count = k_hi - k_new + 1
                span = a[offset : offset + (count - 1) * FRAME_HOP + N_FFT]
                blocks.append(np.lib.stride_tricks.sliding_window_view(span, N_FFT)[::FRAME_HOP])
                seg.parts.append((rows, count))
                rows += count
                seg.k1 = k_hi + 1
            plan[i] = (seg, k_lo, k_hi)
        new_rows = (
            frame_features(np.concatenate(blocks))
            if blocks
            else np.empty((0, N_FEATURES), np.float32)
        )
        self.stats["frames"] += rows

        lengths = [max(0, k_hi - k_lo + 1) for _, k_lo, k_hi in plan]
        t = max(1, *lengths)
        x = np.full((n, t, N_FEATURES), np.nan, np.float32)
        ends = np.array([w.end for w in windows], np.int64)
        k_idx = np.array([k_hi for _, _, k_hi in plan], np.int64)[:, None] - np.arange(
            t - 1, -1, -1
        )
        for i, (seg, k_lo, k_hi) in enumerate(plan):
            if lengths[i] and seg is not None:
                arr = seg.materialise(new_rows)
                x[i, t - lengths[i] :] = arr[k_lo - seg.k0 : k_hi - seg.k0 + 1]
        end_sample = k_idx * FRAME_HOP
        rel = (end_sample - N_FFT / 2 - ends[:, None]) / SAMPLE_RATE
        first = np.array([t - m for m in lengths], np.int64)

        for key, seg in live.items():
            keep = seg.materialise(new_rows)[-self._capacity :]
            old = None if key in reset else self._cache.get(key)
            tail, tail_end = tails[key]
            self._cache[key] = StreamState(
                k0=seg.k1 - keep.shape[0],
                feats=keep.copy(),
                tail=tail,
                tail_end=tail_end,
                enc=old.enc if old is not None else {},
                vad=old.vad if old is not None else {},
            )
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_streams:
            self._cache.popitem(last=False)
        lasthop = (end_sample > ends[:, None] - self._hop_samples) & (
            np.arange(t)[None, :] >= first[:, None]
        )
        return FrameBatch(
            x=x, rel=rel, end_sample=end_sample, first=first, ends=ends, lasthop=lasthop
        )
