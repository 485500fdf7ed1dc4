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
from dataclasses import dataclass, field
import itertools
import math
import threading
from typing import Any

import numpy as np

from model_service.categories import CATEGORY_IDS

from . import SAMPLE_RATE, Detection, TaggerInfo, Window

LABELS: dict[str, str] = {
    "smoke_alarm": "Smoke detector, smoke alarm",
    "co_alarm": "Carbon monoxide alarm (temporal-four)",
    "appliance_beep": "Beep, bleep",
    "loud_noise": "Bang",
    "speech": "Speech",
}

# One whole T3 burst with the quiet either side (0.8 + 2.5 + 0.8 s) fits, and so does a T4
# burst with the speech detector's warm-up (about 4.5 s, see VAD_WARMUP / VAD_ANCHOR).
WINDOW_SECONDS = 5.0
HOP_SECONDS = 0.5

# STFT geometry: 32 ms frames resolve 31 Hz (enough to tell 520 Hz from a 480 Hz ring-back);
# a 10 ms hop resolves the 100 ms pulses and gaps of the T4 pattern.
N_FFT = 512
FRAME_HOP = 160
_BIN_HZ = SAMPLE_RATE / N_FFT
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
# Power per rfft bin scaled so the bins of a frame sum to its mean square (Parseval, with the
# window's energy taken out): a full-scale sine reads -3 dBFS, like `events.dbfs`.
_BIN_SCALE = np.full(N_FFT // 2 + 1, 2.0, np.float32)
_BIN_SCALE[0] = _BIN_SCALE[-1] = 1.0
_BIN_SCALE /= N_FFT * float(np.sum(_HANN.astype(np.float64) ** 2))
_POWER_FLOOR = 1e-14  # -140 dB keeps logarithms finite on digital silence

# Frame feature columns.
(
    LVL,  # frame level, dBFS
    PZ_F,  # piezo band (2.55-3.9 kHz) peak frequency, Hz
    PZ_DB,  # its level (3 bins), dBFS
    PZ_SAL,  # its salience: peak bin over the band's median bin, dB
    LF_F,  # low-frequency alarm band (440-600 Hz) peak
    LF_DB,
    LF_SAL,  # over the median of 250-1250 Hz
    LF_H2,  # level at twice the LF peak over the median of 0.8-2 kHz, dB
    LF_H3,  # level at three times the LF peak, same reference
    BP_F,  # appliance-beep band (0.9-4.3 kHz) peak
    BP_DB,
    BP_SAL,
    LOW_F,  # voice-pitch and note band (100 Hz-2 kHz) peak
    LOW_SAL,
    SPEECH_DB,  # energy 250 Hz-4 kHz, dBFS
    HF_DB,  # energy above 1 kHz, dBFS
    TONAL,  # share of the frame's energy in its strongest 5 bins (0..1)
) = range(17)
N_FEATURES = 17


def _bin(hz: float) -> int:
    return round(hz / _BIN_HZ)


_PZ_BAND = (_bin(2550), _bin(3900) + 1)
_LF_BAND = (_bin(440), _bin(600) + 1)
_LF_FLOOR = (_bin(250), _bin(1250) + 1)
_HARM_FLOOR = (_bin(800), _bin(2000) + 1)
_BP_BAND = (_bin(900), _bin(4300) + 1)
_LOW_BAND = (_bin(100), _bin(2000) + 1)
_SPEECH_BAND = (_bin(250), _bin(4000) + 1)
_HF_BAND = (_bin(1000), N_FFT // 2 + 1)

# Pulse extraction.
PIEZO_HZ = (2640.0, 3800.0)  # 2.7-3.7 kHz and 2 % either side
LF_HZ = (490.0, 550.0)  # 520 Hz (510-530 Hz alarms) and drift, but not a 480 Hz ring-back
BEEP_HZ = (900.0, 4300.0)
TONAL_SAL_DB = 10.0  # a tone's peak over the band median; noise alone reaches about 7 dB
DIP_DB = 6.0  # a pulse ends where its level falls this far under the recent peak (reverb tails)
DIP_SPAN = 25  # frames back (0.25 s) for that nearby peak
FREQ_TOL = 0.02  # pulses of one alarm share their frequency within 2 %
T4_REGION = (0.55, 1.4)  # a T4 burst (0.7 s) and its tail, as one tonal region
T4_LAG = 20  # frames: the 0.2 s period of T4
T4_PERIODS = 3
T4_PERIODICITY = 0.4  # autocorrelation of the level at one period
T4_DEPTH_DB = 2.0  # level swings of at least this (standard deviation)
MERGE_GAP = 0.035  # pieces of one pulse split by a masking noise peak are joined again
T3_MERGE_GAP = 0.25  # and for T3, pieces split by a fade (its own gaps are 0.5 s), where
T3_MERGE_DB = 15.0  # direct and reflected sound cancelling can leave them 10 dB apart
MIN_PULSE = 0.03
NEIGHBOUR_DB = 10.0  # pulses this much weaker than a burst's first do not count against it
LF_HARMONIC_DB = 6.0  # a square wave's third harmonic is only 9.5 dB under its fundamental
GAP_DIP_DB = 5.0  # between pulses the band's peak falls at least this far


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """Timing of a temporal alarm pattern and the tolerances it is matched with."""

    count: int
    duration: tuple[float, float]  # accepted pulse length (s), wide enough for reverb tails
    interval: tuple[float, float]  # accepted onset-to-onset spacing within a burst (s)
    nominal: float  # nominal spacing, for the score
    gap_before: float  # quiet at the same frequency before the first pulse, when in view (s)
    gap_after: float  # quiet after the last pulse: rules out a longer train of the same rhythm
    recent: float  # the latest pulse ended at most this long before the window's end (s)
    alone: bool  # no other tone as loud in the gaps (fast patterns, which vibrato can mimic)


# T3 must see more quiet after its third pulse than its 0.5 s in-burst gap before it knows the
# burst is over. T4 needs only a little more than its 0.1 s gap, so most bursts are confirmed
# in the hop their last pulse ends in (the event logic ignores hops under its level gate).
T3 = PatternSpec(
    count=3,
    duration=(0.3, 0.85),
    interval=(0.8, 1.2),
    nominal=1.0,
    gap_before=0.8,
    gap_after=0.8,
    recent=1.5,
    alone=False,
)
T4 = PatternSpec(
    count=4,
    duration=(0.04, 0.22),
    interval=(0.14, 0.28),
    nominal=0.2,
    gap_before=0.3,
    gap_after=0.18,
    recent=1.5,
    alone=True,
)

BEEP_SAL_DB = 12.0
BEEP_DOMINANCE_DB = -6.0  # the beep holds a quarter of the frame's energy (a harmonic does not)
BEEP_DURATION = (0.08, 2.0)  # shorter tonal blips are mostly voiced speech
BEEP_GLIDE = 0.004  # an electronic beep holds its frequency; a voice glides
BEEP_SPREAD = 0.015  # reverberation makes the reading jitter, though
BEEP_LEVEL_STD_DB = 2.5  # and its level: a plucked or struck note decays
BEEP_LOOKAHEAD = 1.0  # an alarm-like pulse waits this long for neighbours before it is a beep
_EDGE = 0.03  # seconds of slack when deciding whether something fell in the last hop

LOUD_RISE_DB = 15.0
LOUD_DECAY_DB = 8.0  # an impulse has fallen this far 150-300 ms later; speech has not
LOUD_DECAY_FRAMES = (15, 30)
LOUD_DELAY = LOUD_DECAY_FRAMES[1] * FRAME_HOP  # samples: how late a bang is reported
LOUD_TONAL_MAX = 0.5
LOUD_HF_DB = -30.0

VAD_CHUNK = 512  # silero-vad at 16 kHz takes 512 new samples plus 64 of context per step
VAD_CONTEXT = 64
# silero-vad is recurrent. Started cold on a second of audio it fires on music and tones
# (measured on synthetic clips: 5 of 6 music clips reached 0.58-0.97, the 520 Hz alarm 0.86);
# with 3 s of warm-up 2 of 6 (0.52-0.66) and 0.56, close to a continuous stream. So its state restarts at anchor chunks every
# VAD_ANCHOR chunks and runs at least VAD_WARMUP chunks before its output is used; states are
# cached per stream, so a window advances it by its ~16 new chunks.
VAD_WARMUP = 80
VAD_ANCHOR = 64
VAD_SMOOTH = 8  # probabilities are averaged over 8 chunks (256 ms): music gives short spikes
STEADY_FRAMES = 5  # a pitch held within 0.5 % for 50 ms is a note or a tone, not a voice
STEADY_TOL = 0.005
STEADY_SHARE = 0.3
TONE_SHARE = 0.85
BACKGROUND_DB = 6.0  # speech peaks rise this far over a window's background level


@dataclass(slots=True)
class Pulse:
    """A run of tonal frames at one frequency; times are seconds relative to the window's end."""

    onset: float
    offset: float
    freq: float
    truncated: bool  # began before the window did: its onset and length are unknown
    ongoing: bool  # still sounding at the window's end
    level: float = 0.0  # mean peak level, dBFS
    f_min: float = 0.0
    f_max: float = 0.0
    level_std: float = 0.0
    glide: float = 0.0
    h2: float = 0.0
    h3: float = 0.0
    low_f: float = 0.0  # the 100 Hz-2 kHz peak meanwhile: a lower tone this is a harmonic of?
    low_sal: float = 0.0
    lf_f: float = 0.0  # and the low-frequency alarm band's
    lf_sal: float = 0.0
    first_frame: int = 0  # frame indices in the window, for looking into the gaps
    last_frame: int = 0

    @property
    def duration(self) -> float:
        """Length from the first to the last frame centre, plus one frame hop."""
        return self.offset - self.onset + FRAME_HOP / SAMPLE_RATE


# A band's per-frame peak frequency (Hz), level (dBFS) and salience (dB), for one window.
Band = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """A recognised alarm burst: score, seconds since its first pulse began, frequency."""

    score: float
    onset: float
    freq: float


def match_pattern(pulses: Sequence[Pulse], spec: PatternSpec, band: Band) -> PatternMatch | None:
    """Find the pattern in time-ordered pulses; None unless a burst is complete and recent.

    A burst is `spec.count` pulses at one frequency with the right lengths and spacing, with
    quiet at that frequency for `spec.gap_before` before it (when the window shows that) and
    `spec.gap_after` after it, and the latest pulse at that frequency ended less than
    `spec.recent` ago. Much weaker pulses at the same frequency (noise) do not count, and
    the band must quieten between the pulses (see `_quiet_between`). `band` holds the band's
    per-frame peak frequency, level and salience.
    """
    found: list[tuple[float, float, float]] = []
    for first in pulses:
        if first.truncated or first.ongoing:
            continue
        same = [
            p
            for p in pulses
            if abs(p.freq - first.freq) <= FREQ_TOL * first.freq
            and p.level >= first.level - NEIGHBOUR_DB
        ]
        i = next(k for k, p in enumerate(same) if p is first)
        burst = same[i : i + spec.count]
        if len(burst) < spec.count or any(p.ongoing or p.truncated for p in burst):
            continue
        if not all(spec.duration[0] <= p.duration <= spec.duration[1] for p in burst):
            continue
        spacing = [b.onset - a.onset for a, b in itertools.pairwise(burst)]
        if not all(spec.interval[0] <= s <= spec.interval[1] for s in spacing):
            continue
        if not all(
            _quiet_between(a, b, band, alone=spec.alone) for a, b in itertools.pairwise(burst)
        ):
            continue
        if i > 0 and first.onset - same[i - 1].offset < spec.gap_before:
            continue
        follow = same[i + spec.count].onset if i + spec.count < len(same) else 0.0
        if follow - burst[-1].offset < spec.gap_after:
            continue
        latest = max(0.0 if p.ongoing else p.offset for p in same)
        if -latest > spec.recent:
            continue
        width = (spec.interval[1] - spec.interval[0]) / 2.0
        err = sum(abs(s - spec.nominal) for s in spacing) / len(spacing) / width
        found.append((0.97 - 0.3 * min(1.0, err), -first.onset, first.freq))
    if not found:
        return None
    score, _, freq = max(found)
    # The event starts at the earliest burst still in view, whichever matched best.
    return PatternMatch(score=score, onset=max(f[1] for f in found), freq=freq)


def match_t4_envelope(regions: Sequence[Pulse], band: Band) -> PatternMatch | None:
    """Find a T4 burst as a tone whose level swings with a 0.2 s period for about 0.7 s.

    In a reverberant room the 0.1 s gaps of T4 fill with the tail, and where direct and
    reflected sound cancel, the tail can even ring louder than the pulse: the level dips no
    longer mark the pulses. But a room is linear and the four pulses are identical, so the
    level at the tone's frequency still repeats every 0.2 s. `regions` are runs of tonal
    frames at one frequency (gaps of a few frames bridged, no level criterion).
    """
    band_db = band[1]
    found: list[tuple[float, float, float]] = []
    for r in regions:
        if r.truncated or r.ongoing or not T4_REGION[0] <= r.duration <= T4_REGION[1]:
            continue
        if -r.offset > T4.recent:
            continue
        same = [
            q
            for q in regions
            if q is not r
            and abs(q.freq - r.freq) <= FREQ_TOL * r.freq
            and q.level >= r.level - NEIGHBOUR_DB
        ]
        if any(q.onset < r.onset and r.onset - q.offset < T4.gap_before for q in same):
            continue
        if any(q.onset > r.onset and q.onset - r.offset < T4.gap_after for q in same):
            continue
        env = band_db[r.first_frame : r.first_frame + T4_PERIODS * T4_LAG].astype(np.float64)
        if env.size < T4_PERIODS * T4_LAG or not np.all(np.isfinite(env)):
            continue
        # Without its trend (a decaying note is no swing), the level must swing with the
        # 0.2 s period more than with half of it.
        t = np.arange(env.size)
        x = env - np.polyval(np.polyfit(t, env, 1), t)
        power = float(np.mean(x * x))
        if power < T4_DEPTH_DB**2:
            continue
        full = float(np.mean(x[:-T4_LAG] * x[T4_LAG:])) / power
        half = float(np.mean(x[: -T4_LAG // 2] * x[T4_LAG // 2 :])) / power
        if full >= T4_PERIODICITY and full > half:
            found.append((0.6 + 0.3 * min(1.0, full), -r.onset, r.freq))
    if not found:
        return None
    score, onset, freq = max(found)
    return PatternMatch(score=score, onset=onset, freq=freq)


def _quiet_between(a: Pulse, b: Pulse, band: Band, *, alone: bool) -> bool:
    """Whether the band quietens between two pulses: its loudest peak falls GAP_DIP_DB under
    both and, with `alone`, no other tone nearly as loud takes over (a note's harmonics
    taking turns as the band's peak, as vibrato in a room makes them, give fast pulses
    without gaps)."""
    f, db, sal = band
    gap = slice(a.last_frame + 1, b.first_frame)
    if b.first_frame <= a.last_frame + 1:
        return False
    level = min(a.level, b.level)
    if float(np.min(db[gap])) > level - GAP_DIP_DB:
        return False
    if not alone:
        return True
    with np.errstate(invalid="ignore"):
        other = (
            (sal[gap] >= TONAL_SAL_DB)
            & (np.abs(f[gap] - a.freq) > 2 * FREQ_TOL * a.freq)
            & (db[gap] >= level - NEIGHBOUR_DB)
        )
    return int(np.count_nonzero(other)) < 3


def _median_rows(a: np.ndarray) -> np.ndarray:
    """Per-row median (the upper one of an even count): one partition, no averaging."""
    k = a.shape[1] // 2
    return np.partition(a, k, axis=1)[:, k]


def frame_features(frames: np.ndarray) -> np.ndarray:
    """Reduce (M, 512) float32 frames to (M, N_FEATURES) float32 features (see the columns)."""
    m = frames.shape[0]
    out = np.empty((m, N_FEATURES), np.float32)
    if m == 0:
        return out
    spec = np.fft.rfft(frames * _HANN, axis=1)
    power = np.maximum((spec.real**2 + spec.imag**2) * _BIN_SCALE, _POWER_FLOOR)
    power = power.astype(np.float32, copy=False)
    log_power = np.log(power)
    rows = np.arange(m)
    total = power.sum(axis=1)
    out[:, LVL] = 10.0 * np.log10(total)
    to_db = 10.0 / math.log(10.0)

    def peak(
        band: tuple[int, int], floor: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = band  # no band comes within 3 bins of either end of the spectrum
        sub = power[:, lo:hi]
        k = np.argmax(sub, axis=1) + lo
        mid = power[rows, k]
        # Parabolic interpolation on log power: a Hann main lobe is close to a parabola there.
        a, b, c = log_power[rows, k - 1], log_power[rows, k], log_power[rows, k + 1]
        denom = a - 2.0 * b + c
        safe = np.where(denom < 0.0, denom, -1.0)
        delta = np.where(denom < 0.0, 0.5 * (a - c) / safe, 0.0)
        freq = (k + np.clip(delta, -0.5, 0.5)) * _BIN_HZ
        med = _median_rows(sub if floor is None else power[:, floor[0] : floor[1]])
        # A tone is a narrow line: Hann leakage three bins away is 30 dB down, while a
        # formant or a noise hump is still within a few dB there.
        side = np.maximum(log_power[rows, k - 3], log_power[rows, k + 3]) * to_db
        salience = np.minimum(b * to_db - 10.0 * np.log10(med), b * to_db - side)
        three = power[rows, k - 1] + mid + power[rows, k + 1]
        return freq, 10.0 * np.log10(three), salience

    out[:, PZ_F], out[:, PZ_DB], out[:, PZ_SAL] = peak(_PZ_BAND)
    lf_f, out[:, LF_DB], out[:, LF_SAL] = peak(_LF_BAND, floor=_LF_FLOOR)
    out[:, LF_F] = lf_f
    harm_floor_db = 10.0 * np.log10(_median_rows(power[:, _HARM_FLOOR[0] : _HARM_FLOOR[1]]))
    for col, mult in ((LF_H2, 2.0), (LF_H3, 3.0)):
        k = np.rint(lf_f * mult / _BIN_HZ).astype(np.int64)
        level = np.maximum(
            np.maximum(log_power[rows, k - 1], log_power[rows, k]), log_power[rows, k + 1]
        )
        out[:, col] = level * to_db - harm_floor_db
    out[:, BP_F], out[:, BP_DB], out[:, BP_SAL] = peak(_BP_BAND)
    out[:, LOW_F], _, out[:, LOW_SAL] = peak(_LOW_BAND)
    for col, (lo, hi) in ((SPEECH_DB, _SPEECH_BAND), (HF_DB, _HF_BAND)):
        out[:, col] = 10.0 * np.log10(power[:, lo:hi].sum(axis=1))
    csum = np.cumsum(power, axis=1, dtype=np.float64)
    five = csum[:, 4:] - np.concatenate([np.zeros((m, 1)), csum[:, :-5]], axis=1)
    out[:, TONAL] = five.max(axis=1) / total
    return out


def _sliding_max(x: np.ndarray, radius: int) -> np.ndarray:
    """Max over [t - radius, t + radius] along the last axis (edges see a shorter span)."""
    width = 2 * radius + 1
    pad = np.full((*x.shape[:-1], radius), -np.inf, x.dtype)
    level = np.concatenate([pad, x, pad], axis=-1)
    # Doubling (a sparse table): log2(width) vectorised maxima instead of a width-long loop.
    span = 1
    while span * 2 <= width:
        level = np.maximum(level[..., :-span], level[..., span:])
        span *= 2
    n = x.shape[-1]
    return np.maximum(level[..., :n], level[..., width - span : width - span + n])


def _trailing_max(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Max over [t - stop, t - start] along the last axis (-inf where that span is empty)."""
    radius = (stop - start) // 2
    centred = _sliding_max(x, radius)
    shift = start + radius
    out = np.full_like(x, -np.inf)
    if shift < x.shape[-1]:
        out[..., shift:] = centred[..., : x.shape[-1] - shift]
    return out


def _run_reduce(
    op: np.ufunc, values: np.ndarray, b: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> np.ndarray:
    """Reduce `values` (B, T) over each run [start, stop] of row b with a NaN-aware ufunc."""
    t = values.shape[1]
    flat = np.append(values.ravel(), np.nan)
    idx = np.empty(2 * b.size, np.int64)
    idx[0::2] = b * t + start
    idx[1::2] = b * t + stop + 1
    return op.reduceat(flat, idx)[0::2]


def _run_sums(values: np.ndarray, b: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Sums of `values` (C, B, T) over each run [start, stop] of row b: (C, runs)."""
    csum = np.zeros((*values.shape[:2], values.shape[2] + 1))
    np.cumsum(values, axis=2, out=csum[:, :, 1:])
    return csum[:, b, stop + 1] - csum[:, b, start]


@dataclass(slots=True)
class _Segment:
    """Contiguous frame features of one stream, assembled during a batch."""

    k0: int
    k1: int
    parts: list[np.ndarray | tuple[int, int]] = field(default_factory=list)
    array: np.ndarray | None = None

    def materialise(self, new_rows: np.ndarray) -> np.ndarray:
        """Concatenate cached and newly computed rows (once)."""
        if self.array is None:
            blocks = [
                p if isinstance(p, np.ndarray) else new_rows[p[0] : p[0] + p[1]] for p in self.parts
            ]
            if not blocks:
                self.array = np.empty((0, N_FEATURES), np.float32)
            else:
                self.array = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        return self.array


@dataclass(slots=True)
class _VadRun:
    """silero-vad state for one anchor of one stream: where it got to and what it said."""

    j_done: int
    h: Any
    c: Any
    probs: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class _StreamState:
    """What is kept between batches for one stream."""

    k0: int
    feats: np.ndarray
    tail: np.ndarray  # the last samples seen, to notice another stream behind the same key
    tail_end: int
    enc: dict[int, Any] = field(default_factory=dict)  # VAD encoder output per chunk index
    vad: dict[int, _VadRun] = field(default_factory=dict)  # per anchor chunk


@dataclass(slots=True)
class _Batch:
    """Frame features of a batch's windows, right-aligned and padded to one length."""

    x: np.ndarray  # (B, T, N_FEATURES), NaN where a window has no frame
    rel: np.ndarray  # (B, T) frame centre in seconds relative to the window's end
    end_sample: np.ndarray  # (B, T) absolute sample index where each frame ends
    first: np.ndarray  # (B,) first valid frame index
    ends: np.ndarray  # (B,) absolute end sample of each window
    lasthop: np.ndarray  # (B, T) frames whose end falls in the window's last hop

    @property
    def frames(self) -> int:
        """Padded frame count."""
        return self.x.shape[1]


@dataclass(slots=True)
class _Runs:
    """Runs of tonal frames across a batch: window index, first and last frame, statistics."""

    b: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    mean: dict[int, np.ndarray]
    # Steadiness, for beeps only: frequency range and glide (Hz), level spread (dB).
    f_min: np.ndarray | None = None
    f_max: np.ndarray | None = None
    level_std: np.ndarray | None = None
    glide: np.ndarray | None = None


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
        self._cache: OrderedDict[str, _StreamState] = OrderedDict()
        self._vad: Any = None
        available = {"smoke_alarm", "co_alarm", "appliance_beep", "loud_noise"}
        if speech:
            self._vad = _load_vad()
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
        self._hop_samples = round(HOP_SECONDS * SAMPLE_RATE)
        self._capacity = math.ceil((WINDOW_SECONDS + 2 * HOP_SECONDS) * SAMPLE_RATE / FRAME_HOP)

    def close(self) -> None:
        """Drop cached stream state and the VAD model."""
        with self._lock:
            self._cache.clear()
            self._vad = None

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
            audio = [np.asarray(w.audio, dtype=np.float32).reshape(-1) for w in windows]
            batch = self._features(windows, audio)
            scores = {c: np.zeros(n) for c in self.info.categories}
            onsets: dict[str, list[float | None]] = {c: [None] * n for c in self.info.categories}
            self._alarms_and_beeps(batch, scores, onsets)
            self._loud(batch, scores, onsets)
            if self._vad is not None:
                scores["speech"] = self._speech(windows, audio, batch)
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

    # -- frame features and the per-stream cache --------------------------------------------

    def _features(self, windows: Sequence[Window], audio: list[np.ndarray]) -> _Batch:
        """Frame features for every window, computing only the frames no cache holds.

        Frame k covers samples [k*160 - 512, k*160) of its stream, so overlapping windows
        share frames exactly and a cached frame equals a recomputed one.
        """
        n = len(windows)
        blocks: list[np.ndarray] = []
        rows = 0
        plan: list[tuple[_Segment | None, int, int]] = [(None, 0, -1)] * n
        live: dict[str, _Segment] = {}
        tails: dict[str, tuple[np.ndarray, int]] = {}
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
            seg: _Segment | None = None
            if key is not None:
                if key not in tails:
                    state = self._cache.get(key)
                    if state is not None:
                        tails[key] = (state.tail, state.tail_end)
                        live[key] = _Segment(
                            state.k0, state.k0 + state.feats.shape[0], [state.feats]
                        )
                seg = live.get(key)
                if seg is not None:
                    if not _continues(a, start, w.end, *tails[key]):
                        seg = None  # another stream behind the same key: start over
                        reset.add(key)
                    elif not seg.k0 <= k_lo <= seg.k1:
                        seg = None
                tails[key] = (a[-N_FFT:].copy(), w.end)
            if seg is None:
                seg = _Segment(k_lo, k_lo)
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
            self._cache[key] = _StreamState(
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
        return _Batch(x=x, rel=rel, end_sample=end_sample, first=first, ends=ends, lasthop=lasthop)

    # -- tonal pulses ------------------------------------------------------------------------

    @staticmethod
    def _runs(
        batch: _Batch,
        cols: tuple[int, int, int],
        band: tuple[float, float],
        sal_min: float,
        *,
        dip: bool,
        bridge: int,
        extra: np.ndarray | None = None,
        means: tuple[int, ...] = (),
        steadiness: bool = False,
        min_frames: int = 1,
    ) -> _Runs:
        """Runs of frames whose band peak is tonal, in `band` and at one frequency.

        With `dip`, a run also ends where the level falls DIP_DB under the nearby peak (so
        reverberation does not fill the 0.1 s gaps of T4). Gaps of up to `bridge` frames
        between frames at one frequency are bridged: noise peaks masking a frame or two, and
        the fading of a slowly drifting tone through a room's response. Windows with fewer
        than `min_frames` tonal frames cannot hold what the caller looks for and get none.
        """
        fc, dbc, salc = cols
        f, db, sal = batch.x[:, :, fc], batch.x[:, :, dbc], batch.x[:, :, salc]
        t = batch.frames
        with np.errstate(invalid="ignore"):
            on = (sal >= sal_min) & (f >= band[0]) & (f <= band[1])
            if extra is not None:
                on &= extra
        on &= (on.sum(axis=1) >= min_frames)[:, None]
        if not on.any():
            # Most windows of most streams: nothing tonal enough in this band.
            empty = np.zeros(0, np.int64)
            none = np.zeros(0)
            mean = dict.fromkeys((fc, dbc, *means), none)
            return _Runs(empty, empty, empty, mean, none, none, none, none)
        with np.errstate(invalid="ignore"):
            if dip:
                # Against the loudest of the last 0.25 s only: a tail that rings louder than
                # the pulse (direct and reverberant sound cancelling while both sound) must
                # not cut away the pulse before it.
                on &= db >= _trailing_max(np.where(on, db, -np.inf), 0, DIP_SPAN) - DIP_DB
            close = np.zeros_like(on)
            close[:, 1:] = np.abs(f[:, 1:] - f[:, :-1]) <= FREQ_TOL * f[:, 1:]
            idx = np.broadcast_to(np.arange(t), on.shape)
            prev = np.maximum.accumulate(np.where(on, idx, -1), axis=1)
            nxt = (
                t
                - 1
                - np.maximum.accumulate(np.where(on, t - 1 - idx, -1)[:, ::-1], axis=1)[:, ::-1]
            )
            rows = np.arange(on.shape[0])[:, None]
            f_prev = f[rows, np.clip(prev, 0, t - 1)]
            f_next = f[rows, np.clip(nxt, 0, t - 1)]
            hole = (
                ~on
                & (prev >= 0)
                & (nxt < t)
                & (nxt - prev - 1 <= bridge)
                & (np.abs(f_next - f_prev) <= FREQ_TOL * f_next)
            )
        filled = on | hole
        link = np.zeros_like(on)
        link[:, 1:] = filled[:, 1:] & filled[:, :-1] & (hole[:, 1:] | hole[:, :-1] | close[:, 1:])
        after = np.zeros_like(link)
        after[:, :-1] = link[:, 1:]
        bs, ts = np.nonzero(filled & ~link)
        _, te = np.nonzero(filled & ~after)
        cols_x = batch.x[:, :, [fc, dbc, *means]].astype(np.float64)
        sums = _run_sums(
            np.concatenate(
                [on[None].astype(np.float64), np.where(on, np.moveaxis(cols_x, 2, 0), 0.0)]
            ),
            bs,
            ts,
            te,
        )
        count = np.maximum(sums[0], 1.0)
        mean = {col: sums[k + 1] / count for k, col in enumerate((fc, dbc, *means))}
        runs = _Runs(b=bs, start=ts, stop=te, mean=mean)
        if not steadiness or bs.size == 0:
            return runs
        # Steadiness is judged on the run's core: frames a 32 ms window only partly overlaps
        # at a sound's start and end read lower and pull the frequency estimate.
        peak = _run_reduce(np.fmax, np.where(on, db, np.nan).astype(np.float64), bs, ts, te)
        run_id = np.cumsum((filled & ~link).ravel()).reshape(on.shape) - 1
        core = on & (db >= peak[np.clip(run_id, 0, peak.size - 1)] - DIP_DB)
        tt = np.arange(t, dtype=np.float64)[None, :]
        dbw = np.where(core, db, 0.0).astype(np.float64)
        fw = np.where(core, f, 0.0).astype(np.float64)
        tw = np.where(core, tt, 0.0)
        n_, s_db, s_db2, s_t, s_f, s_tt, s_tf = _run_sums(
            np.stack([core.astype(np.float64), dbw, dbw * dbw, tw, fw, tw * tt, tw * fw]),
            bs,
            ts,
            te,
        )
        n_ = np.maximum(n_, 1.0)
        # Least-squares slope of frequency over the core: a voice glides, a beep does not
        # (reverberation only makes its frequency reading jitter).
        var = s_tt - s_t * s_t / n_
        slope = np.where(var > 0.0, (s_tf - s_t * s_f / n_) / np.where(var > 0.0, var, 1.0), 0.0)
        f_core = np.where(core, f, np.nan).astype(np.float64)
        runs.f_min = _run_reduce(np.fmin, f_core, bs, ts, te)
        runs.f_max = _run_reduce(np.fmax, f_core, bs, ts, te)
        runs.level_std = np.sqrt(np.maximum(s_db2 / n_ - (s_db / n_) ** 2, 0.0))
        runs.glide = np.abs(slope) * (te - ts + 1)
        return runs

    @staticmethod
    def _pulses(
        runs: _Runs,
        batch: _Batch,
        cols: tuple[int, int, int],
        merge_gap: float = MERGE_GAP,
        merge_max: float = math.inf,
        merge_db: float = NEIGHBOUR_DB,
    ) -> list[list[Pulse]]:
        """Per-window, time-ordered pulse lists from runs. Pieces at one frequency at most
        `merge_gap` apart and `merge_db` in level are joined again while the whole stays
        under `merge_max` seconds."""
        rel, first, t = batch.rel, batch.first, batch.frames
        out: list[list[Pulse]] = [[] for _ in range(rel.shape[0])]
        freq, level = runs.mean[cols[0]], runs.mean[cols[1]]
        h2, h3 = runs.mean.get(LF_H2), runs.mean.get(LF_H3)
        low_f, low_sal = runs.mean.get(LOW_F), runs.mean.get(LOW_SAL)
        lf_f, lf_sal = runs.mean.get(LF_F), runs.mean.get(LF_SAL)
        for n in range(runs.b.size):
            b, s, e = int(runs.b[n]), int(runs.start[n]), int(runs.stop[n])
            p = Pulse(
                onset=float(rel[b, s]),
                offset=float(rel[b, e]),
                freq=float(freq[n]),
                truncated=s <= first[b],
                ongoing=e >= t - 1,
                level=float(level[n]),
                f_min=float(runs.f_min[n]) if runs.f_min is not None else 0.0,
                f_max=float(runs.f_max[n]) if runs.f_max is not None else 0.0,
                level_std=float(runs.level_std[n]) if runs.level_std is not None else 0.0,
                glide=float(runs.glide[n]) if runs.glide is not None else 0.0,
                h2=float(h2[n]) if h2 is not None else 0.0,
                h3=float(h3[n]) if h3 is not None else 0.0,
                low_f=float(low_f[n]) if low_f is not None else 0.0,
                low_sal=float(low_sal[n]) if low_sal is not None else 0.0,
                lf_f=float(lf_f[n]) if lf_f is not None and cols[0] != LF_F else 0.0,
                lf_sal=float(lf_sal[n]) if lf_sal is not None and cols[0] != LF_F else 0.0,
                first_frame=s,
                last_frame=e,
            )
            pulses = out[b]
            for q in reversed(pulses[-4:]):
                if (
                    p.onset - q.offset <= merge_gap
                    and abs(p.freq - q.freq) <= 2 * FREQ_TOL * q.freq
                    and abs(p.level - q.level) <= merge_db
                    and p.offset - q.onset <= merge_max
                ):
                    _join(q, p)
                    break
            else:
                pulses.append(p)
        return [[p for p in ps if p.duration >= MIN_PULSE] for ps in out]

    # -- detectors ---------------------------------------------------------------------------

    def _alarms_and_beeps(
        self,
        batch: _Batch,
        scores: dict[str, np.ndarray],
        onsets: dict[str, list[float | None]],
    ) -> None:
        """Smoke alarm (T3), CO alarm (T4) and appliance beeps.

        smoke_alarm: the T3 pattern (three ~0.5 s pulses one second apart, then a pause) from
        a piezo sounder (2.64-3.8 kHz; the three pulses at one frequency within 2 %) or from a
        520 Hz low-frequency alarm (fundamental 490-550 Hz with a third harmonic and no
        stronger second one). It needs one whole burst and 0.8 s of the pause in the window,
        so it reports about a second after the third pulse; the event starts at the first
        pulse. It cannot hear an alarm masked by a louder tone in the same band, alarms
        outside these bands (some sound at 2-2.5 kHz), spoken or swept-tone alarms; a 3 kHz
        appliance beeping exactly in the T3 rhythm is reported as a smoke alarm.

        co_alarm: the T4 pattern (four ~0.1 s pulses 0.2 s apart, then quiet) in the piezo
        band. Same limits; CO alarms that speak their warning are not recognised, and an
        alarm clock beeping four times at 5 Hz in that band is taken for one.

        appliance_beep: a tonal pulse of 80 ms to 2 s at 0.9-4.3 kHz with a clear start and
        end, a steady frequency (no glide over 0.4 %) and level, holding a quarter of the
        frame's energy and not a harmonic of a lower tone (so a voice or a note is not one),
        and not part of an alarm pattern. A pulse that could belong to an alarm (frequency
        and length fit) is reported a second late, once no alarm rhythm followed, and not at
        all in a stream's first second; pulses in an alarm rhythm are never beeps, so a 3 kHz
        appliance beeping in a T3/T4-like rhythm is missed. Chimes that decay, warbles and
        melodies are not beeps here; a held high note of a flute or synthesiser is one.
        """
        n = batch.x.shape[0]
        pz_cols = (PZ_F, PZ_DB, PZ_SAL)
        # Reverberation fills gaps with a decaying tail, so pulses end at level dips. A tone
        # drifting through a room's response also fades for tens of milliseconds; T3's 0.5 s
        # gaps leave room to join such pieces again, T4's 0.1 s gaps do not.
        pz_runs = self._runs(
            batch, pz_cols, PIEZO_HZ, TONAL_SAL_DB, dip=True, bridge=2, min_frames=24
        )
        pz_t4 = self._pulses(pz_runs, batch, pz_cols)
        pz_t3 = self._pulses(pz_runs, batch, pz_cols, T3_MERGE_GAP, T3.duration[1], T3_MERGE_DB)
        pz_tone = self._pulses(
            self._runs(batch, pz_cols, PIEZO_HZ, TONAL_SAL_DB, dip=False, bridge=5, min_frames=40),
            batch,
            pz_cols,
        )
        lf_cols = (LF_F, LF_DB, LF_SAL)
        lf_runs = self._runs(
            batch,
            lf_cols,
            LF_HZ,
            TONAL_SAL_DB,
            dip=True,
            bridge=2,
            means=(LF_H2, LF_H3),
            min_frames=60,
        )
        lf = self._pulses(lf_runs, batch, lf_cols, T3_MERGE_GAP, T3.duration[1], T3_MERGE_DB)
        with np.errstate(invalid="ignore"):
            dominant = batch.x[:, :, BP_DB] - batch.x[:, :, LVL] >= BEEP_DOMINANCE_DB
        bp_cols = (BP_F, BP_DB, BP_SAL)
        bp_runs = self._runs(
            batch,
            bp_cols,
            BEEP_HZ,
            BEEP_SAL_DB,
            dip=True,
            bridge=5,
            extra=dominant,
            means=(LOW_F, LOW_SAL, LF_F, LF_SAL),
            steadiness=True,
            min_frames=6,
        )
        bp = self._pulses(bp_runs, batch, bp_cols)
        x = batch.x
        pz_db = np.nan_to_num(x[:, :, PZ_DB], nan=-np.inf)
        lf_db = np.nan_to_num(x[:, :, LF_DB], nan=-np.inf)
        for i in range(n):
            pz_band = (x[i, :, PZ_F], pz_db[i], x[i, :, PZ_SAL])
            lf_band = (x[i, :, LF_F], lf_db[i], x[i, :, LF_SAL])
            smoke = match_pattern(pz_t3[i], T3, pz_band)
            # A square wave has odd harmonics only; a sung or played note has a strong second.
            lf_ok = [p for p in lf[i] if p.h3 >= LF_HARMONIC_DB and p.h2 <= p.h3 + 6.0]
            smoke_lf = match_pattern(lf_ok, T3, lf_band)
            for m in (smoke, smoke_lf):
                if m is not None:
                    scores["smoke_alarm"][i] = max(scores["smoke_alarm"][i], m.score)
                    onsets["smoke_alarm"][i] = max(m.onset, onsets["smoke_alarm"][i] or 0.0)
            co = match_pattern(pz_t4[i], T4, pz_band) or match_t4_envelope(pz_tone[i], pz_band)
            if co is not None:
                scores["co_alarm"][i] = co.score
                onsets["co_alarm"][i] = co.onset
            alarm_freqs = [m.freq for m in (smoke, co) if m is not None]
            beep_onsets = [
                -p.onset
                for p in bp[i]
                if _beep_due(
                    p, bp[i], alarm_freqs, HOP_SECONDS, float(batch.rel[i, batch.first[i]])
                )
            ]
            if beep_onsets:
                scores["appliance_beep"][i] = 0.8
                onsets["appliance_beep"][i] = max(beep_onsets)

    def _loud(
        self,
        batch: _Batch,
        scores: dict[str, np.ndarray],
        onsets: dict[str, list[float | None]],
    ) -> None:
        """Loud noise: a frame at or above `loud_dbfs` that rose at least 15 dB over the
        loudest of the 40-250 ms before it and had fallen 8 dB 150-300 ms later, broadband
        (energy above 1 kHz) and not one tone. Reported 0.3 s late, with its onset.

        It is an energy-impulse detector: it cannot tell a slammed door from a dropped pan,
        a clap or a drum hit; a loud sound that swells in or lasts (a passing truck, a
        vacuum cleaner starting, a shout) is not reported, and in a room already louder
        than `loud_dbfs` - 15 dB nothing rises enough to count.
        """
        x = batch.x
        lvl = np.nan_to_num(x[:, :, LVL], nan=-np.inf)
        past = _trailing_max(lvl, 4, 25)
        lo, hi = LOUD_DECAY_FRAMES
        later = np.full_like(lvl, np.inf)
        later[:, :-hi] = _trailing_max(lvl, 0, hi - lo)[:, hi:]
        t_idx = np.arange(batch.frames)[None, :]
        due = (batch.end_sample > batch.ends[:, None] - self._hop_samples - LOUD_DELAY) & (
            batch.end_sample <= batch.ends[:, None] - LOUD_DELAY
        )
        with np.errstate(invalid="ignore"):
            cond = (
                (lvl >= self.loud_dbfs)
                & (lvl - past >= LOUD_RISE_DB)
                & (lvl - later >= LOUD_DECAY_DB)
                & (x[:, :, TONAL] < LOUD_TONAL_MAX)
                & (x[:, :, HF_DB] - lvl >= LOUD_HF_DB)
                & (t_idx >= batch.first[:, None] + 9)
                & due
            )
        for i in np.flatnonzero(cond.any(axis=1)):
            ts = np.flatnonzero(cond[i])
            rise = float(np.max((lvl[i] - past[i])[ts]))
            margin = float(np.max(lvl[i, ts])) - self.loud_dbfs
            scores["loud_noise"][i] = min(0.99, 0.6 + 0.01 * (rise - LOUD_RISE_DB) + 0.02 * margin)
            onsets["loud_noise"][i] = float(-batch.rel[i, ts[0]])

    def _vad_needed(self, batch: _Batch) -> np.ndarray:
        """Which windows' last hop could hold speech (see `_speech`)."""
        n = batch.x.shape[0]
        if not self.vad_gate:
            return np.ones(n, bool)
        x, hop = batch.x, batch.lasthop
        with np.errstate(invalid="ignore"):
            loudest = np.where(hop, x[:, :, SPEECH_DB], -np.inf).max(axis=1)
            share = np.where(hop, x[:, :, SPEECH_DB] - x[:, :, LVL], -np.inf).max(axis=1)
            frames = np.maximum(hop.sum(axis=1), 1)
            tone = np.where(hop, x[:, :, TONAL] >= TONE_SHARE, False).sum(axis=1) / frames
            # Held pitch: the strongest 100 Hz-2 kHz peak stays put for 50 ms, over the frames
            # within 10 dB of the hop's loudest (so pauses showing a steady hum do not count).
            f, sal, lvl = x[:, :, LOW_F], x[:, :, LOW_SAL], x[:, :, LVL]
            held = np.zeros_like(hop)
            k = STEADY_FRAMES
            held[:, k:] = (
                (sal[:, k:] >= TONAL_SAL_DB)
                & (sal[:, :-k] >= TONAL_SAL_DB)
                & (np.abs(f[:, k:] - f[:, :-k]) <= STEADY_TOL * f[:, k:])
            )
            top = np.where(hop, lvl, -np.inf).max(axis=1)
            loud = hop & (lvl >= top[:, None] - 10.0)
            steady = (held & loud).sum(axis=1) / np.maximum(loud.sum(axis=1), 1)
            # The background: the 20th percentile of the window's speech-band level (padding
            # sorts last as NaN). Nothing rising above it in the last hop is steady noise.
            valid = batch.frames - batch.first
            ordered = np.sort(x[:, :, SPEECH_DB], axis=1)
            background = ordered[np.arange(n), (valid * 0.2).astype(np.int64)]
        return (
            (loudest >= self.vad_min_dbfs)
            & (loudest >= background + BACKGROUND_DB)
            & (share >= -20.0)
            & (tone < 0.8)
            & (steady < STEADY_SHARE)
        )

    def _speech(
        self, windows: Sequence[Window], audio: list[np.ndarray], batch: _Batch
    ) -> np.ndarray:
        """Speech: silero-vad probabilities over the chunks of the last hop, averaged over
        256 ms, highest wins. The recurrent state starts at an anchor 2.5-4.5 s back.

        VAD is skipped (score 0) where the last hop cannot hold speech: its 250 Hz-4 kHz energy
        is under `vad_min_dbfs`, under 1 % of the total (rumble, hum) or never 6 dB over the
        window's background (steady noise), most of it is one pure tone, or a held pitch
        dominates (tones, ring-back, musical notes). So speech over music or under a loud
        alarm, and whispers below the level, are not reported; silero-vad
        itself takes speech-like babble (a TV, a crowd) for speech and scores some synthetic
        voices low (espeak's female variants: 0.3-0.9).
        """
        n = len(windows)
        out = np.zeros(n)
        need = self._vad_needed(batch)
        targets = [int(i) for i in np.flatnonzero(need)]
        self.stats["vad_windows"] += len(targets)
        self.stats["vad_skipped"] += n - len(targets)
        # Windows of one stream with one anchor share one recurrent run: the run that reaches
        # the latest of them passes through every earlier one's chunks on the way.
        rows: dict[tuple[Any, int], _VadRow] = {}
        wants: list[tuple[int, tuple[Any, int], int, int]] = []
        for i in targets:
            w, a = windows[i], audio[i]
            start = w.end - a.size
            j_last = w.end // VAD_CHUNK - 1
            j_first = -(-(start + VAD_CONTEXT) // VAD_CHUNK)
            if j_last < j_first:
                continue
            anchor = max(j_first, (j_last - VAD_WARMUP) // VAD_ANCHOR * VAD_ANCHOR)
            hop_first = max(anchor, (w.end - self._hop_samples) // VAD_CHUNK)
            state = self._cache.get(w.stream) if w.stream is not None else None
            key: tuple[Any, int] = (
                (w.stream, anchor) if state is not None else (("window", i), anchor)
            )
            row = rows.get(key)
            if row is None:
                run = state.vad.get(anchor) if state is not None else None
                begin = anchor if run is None else run.j_done + 1
                row = rows[key] = _VadRow(
                    w.stream if state is not None else None, anchor, begin, j_last, i, run
                )
            elif j_last > row.j_last:
                row.j_last, row.source = j_last, i
            wants.append((i, key, hop_first, j_last))
        if rows:
            self._run_vad(list(rows.values()), windows, audio)
        for i, key, hop_first, j_last in wants:
            out[i] = _smoothed_max(rows[key].probs, hop_first, j_last)
        return out

    def _run_vad(
        self, rows: list[_VadRow], windows: Sequence[Window], audio: list[np.ndarray]
    ) -> None:
        """Advance each row's silero-vad run to its last chunk, batched across rows."""
        import torch

        im = self._vad._model
        chunks: list[np.ndarray] = []
        new_index: dict[tuple[Any, int], int] = {}
        cached: list[Any] = []
        cached_index: dict[tuple[Any, int], int] = {}
        active: list[tuple[_VadRow, list[int]]] = []
        for r, row in enumerate(rows):
            row.probs = dict(row.run.probs) if row.run is not None else {}
            if row.begin > row.j_last:
                continue
            state = self._cache.get(row.stream) if row.stream is not None else None
            owner: Any = row.stream if state is not None else ("row", r)
            w, a = windows[row.source], audio[row.source]
            start = w.end - a.size
            table_rows: list[int] = []
            for j in range(row.begin, row.j_last + 1):
                key = (owner, j)
                if state is not None and j in state.enc:
                    if key not in cached_index:
                        cached_index[key] = len(cached)
                        cached.append(state.enc[j])
                    table_rows.append(-1 - cached_index[key])
                else:
                    if key not in new_index:
                        lo = j * VAD_CHUNK - VAD_CONTEXT - start
                        new_index[key] = len(chunks)
                        chunks.append(a[lo : lo + VAD_CHUNK + VAD_CONTEXT])
                    table_rows.append(new_index[key])
            active.append((row, table_rows))
        self.stats["vad_chunks"] += len(chunks)
        if not active:
            return
        with torch.inference_mode():
            new_enc = (
                im.encoder(im.stft(torch.from_numpy(np.stack(chunks)))).squeeze(-1)
                if chunks
                else torch.zeros((0, 128))
            )
            for (owner, j), k in new_index.items():
                state = self._cache.get(owner) if isinstance(owner, str) else None
                if state is not None:
                    # A copy, so the cache does not keep the whole batch's tensor alive.
                    state.enc[j] = new_enc[k].clone()
            parts = [new_enc]
            if cached:
                parts.append(torch.stack(cached))
            parts.append(torch.zeros((1, 128)))
            table = torch.cat(parts)
            blank = table.shape[0] - 1
            steps = max(len(t) for _, t in active)
            index = torch.full((len(active), steps), blank, dtype=torch.long)
            mask = torch.zeros((len(active), steps, 1), dtype=torch.bool)
            h = torch.zeros((len(active), 128))
            c = torch.zeros((len(active), 128))
            for r, (row, table_rows) in enumerate(active):
                pad = steps - len(table_rows)
                # Negative entries point into the cached encodings, after the new ones.
                index[r, pad:] = torch.tensor(
                    [k if k >= 0 else len(chunks) - 1 - k for k in table_rows], dtype=torch.long
                )
                mask[r, pad:] = True
                if row.run is not None:
                    h[r], c[r] = row.run.h, row.run.c
            feats = table[index]
            hs = []
            for s in range(steps):
                h2, c2 = im.decoder.rnn(feats[:, s], (h, c))
                h = torch.where(mask[:, s], h2, h)
                c = torch.where(mask[:, s], c2, c)
                hs.append(h)
            probs = im.decoder.decoder(torch.stack(hs, 1).reshape(-1, 128, 1))
            probs_np = probs.reshape(len(active), steps).numpy()
            for r, (row, table_rows) in enumerate(active):
                got = probs_np[r, steps - len(table_rows) :].tolist()
                row.probs.update(zip(range(row.begin, row.j_last + 1), got, strict=True))
                self._store_vad(row, h[r].clone(), c[r].clone())

    def _store_vad(self, row: _VadRow, h: Any, c: Any) -> None:
        """Keep a stream's VAD run for its anchor, dropping older anchors and chunks."""
        state = self._cache.get(row.stream) if row.stream is not None else None
        if state is None:
            return
        keep = {j: p for j, p in row.probs.items() if j > row.j_last - 2 * VAD_ANCHOR}
        state.vad[row.anchor] = _VadRun(row.j_last, h, c, keep)
        for anchor in [a for a in state.vad if a < row.anchor - VAD_ANCHOR]:
            del state.vad[anchor]
        oldest = min(state.vad)
        for j in [j for j in state.enc if j < oldest]:
            del state.enc[j]


@dataclass(slots=True)
class _VadRow:
    """One recurrent silero-vad run in a batch: a stream's anchor, from `begin` to `j_last`."""

    stream: str | None
    anchor: int
    begin: int
    j_last: int
    source: int  # the window whose audio holds the run's chunks
    run: _VadRun | None
    probs: dict[int, float] = field(default_factory=dict)


def _smoothed_max(probs: dict[int, float], first: int, last: int) -> float:
    """Highest VAD_SMOOTH-chunk average of the probabilities of chunks first..last."""
    best = 0.0
    for j in range(first, last + 1):
        vals = [probs[k] for k in range(j - VAD_SMOOTH + 1, j + 1) if k in probs]
        if vals:
            best = max(best, sum(vals) / len(vals))
    return best


def _continues(audio: np.ndarray, start: int, end: int, tail: np.ndarray, tail_end: int) -> bool:
    """True when `audio` (spanning [start, end)) holds the cached tail at the same positions."""
    lo = tail_end - tail.size
    if lo < start or tail_end > end:
        return False
    return bool(np.array_equal(audio[lo - start : tail_end - start], tail))


def _join(head: Pulse, tail: Pulse) -> None:
    """Extend `head` by `tail` (two pieces of one pulse), weighting values by length."""
    a, b = head.duration, tail.duration
    head.freq = (head.freq * a + tail.freq * b) / (a + b)
    head.level = (head.level * a + tail.level * b) / (a + b)
    head.h2 = (head.h2 * a + tail.h2 * b) / (a + b)
    head.h3 = (head.h3 * a + tail.h3 * b) / (a + b)
    head.low_f = (head.low_f * a + tail.low_f * b) / (a + b)
    head.low_sal = (head.low_sal * a + tail.low_sal * b) / (a + b)
    head.lf_f = (head.lf_f * a + tail.lf_f * b) / (a + b)
    head.lf_sal = (head.lf_sal * a + tail.lf_sal * b) / (a + b)
    head.f_min = min(head.f_min, tail.f_min)
    head.f_max = max(head.f_max, tail.f_max)
    head.level_std = max(head.level_std, tail.level_std)
    head.glide = max(head.glide, tail.glide)
    head.offset = tail.offset
    head.ongoing = tail.ongoing
    head.last_frame = tail.last_frame


def _beep_due(
    p: Pulse, pulses: Sequence[Pulse], alarm_freqs: Sequence[float], hop: float, view: float
) -> bool:
    """Whether pulse `p` is an appliance beep to report in this window's last hop.

    `view` is where the window's audio starts (seconds relative to its end).
    """
    if p.truncated or p.ongoing or not BEEP_DURATION[0] <= p.duration <= BEEP_DURATION[1]:
        return False
    if p.glide > BEEP_GLIDE * p.freq or p.f_max - p.f_min > BEEP_SPREAD * p.freq:
        return False
    if p.level_std > BEEP_LEVEL_STD_DB:
        return False
    if any(abs(p.freq - f) <= 2 * FREQ_TOL * f for f in alarm_freqs):
        return False
    if _harmonic_of(p.freq, p.low_f, p.low_sal) or _harmonic_of(p.freq, p.lf_f, p.lf_sal):
        return False
    since = -p.offset
    if _alarm_like(p):
        # It could be one pulse of an alarm: only a beep with no alarm rhythm around it,
        # seen for a second either side.
        if _in_alarm_rhythm(p, pulses) or p.onset - view < BEEP_LOOKAHEAD:
            return False
        since -= BEEP_LOOKAHEAD
    return 0.0 <= since < hop + _EDGE


def _harmonic_of(freq: float, base: float, salience: float) -> bool:
    """Whether `freq` is the 2nd-8th harmonic of a salient lower tone `base` (a note, the
    520 Hz alarm's square wave) rather than a tone of its own."""
    if salience < TONAL_SAL_DB or base <= 0.0:
        return False
    ratio = freq / base
    k = round(ratio)
    return 2 <= k <= 8 and abs(ratio - k) <= 0.03


def _alarm_like(p: Pulse) -> bool:
    """A pulse whose frequency and length could make it part of a T3 or T4 alarm."""
    return PIEZO_HZ[0] <= p.freq <= PIEZO_HZ[1] and p.duration <= T3.duration[1]


def _in_alarm_rhythm(p: Pulse, pulses: Sequence[Pulse]) -> bool:
    """True when another pulse at the same frequency starts within a T3 spacing of `p`.

    Looser than the patterns themselves on purpose: in a reverberant room an alarm's pulses
    can break into pieces that no longer keep the rhythm, and each is no beep.
    """
    return any(
        q is not p
        and abs(q.freq - p.freq) <= 2 * FREQ_TOL * p.freq
        and abs(q.onset - p.onset) <= T3.interval[1]
        for q in pulses
    )


def _load_vad() -> Any:
    """Load silero-vad's bundled TorchScript model, keeping the caller's torch thread count."""
    import torch

    threads = torch.get_num_threads()
    # Importing silero_vad sets torch's intra-op threads to 1; that is the service's call.
    from silero_vad import load_silero_vad

    torch.set_num_threads(threads)
    model = load_silero_vad(onnx=False)
    model.eval()
    return model
