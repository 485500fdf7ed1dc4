"""Frame features of the embedded tagger: each 32 ms STFT frame (10 ms hop, aligned to
absolute sample positions) reduced to the peaks and band energies the detectors use."""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from model_service.arrays import Array, Samples
from model_service.models.taggers.base import SAMPLE_RATE

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


def _median_rows(a: Array) -> Array:
    """Per-row median (the upper one of an even count): one partition, no averaging."""
    k = a.shape[1] // 2
    return np.partition(a, k, axis=1)[:, k]


def frame_features(frames: Array) -> Array:
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
    ) -> tuple[Array, Array, Array]:
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


def _sliding_max(x: Array, radius: int) -> Array:
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
    result: Array = np.maximum(level[..., :n], level[..., width - span : width - span + n])
    return result


def trailing_max(x: Array, start: int, stop: int) -> Array:
    """Max over [t - stop, t - start] along the last axis (-inf where that span is empty)."""
    radius = (stop - start) // 2
    centred = _sliding_max(x, radius)
    shift = start + radius
    out = np.full_like(x, -np.inf)
    if shift < x.shape[-1]:
        out[..., shift:] = centred[..., : x.shape[-1] - shift]
    return out


def run_reduce(op: np.ufunc, values: Array, b: Array, start: Array, stop: Array) -> Array:
    """Reduce `values` (B, T) over each run [start, stop] of row b with a NaN-aware ufunc."""
    t = values.shape[1]
    flat = np.append(values.ravel(), np.nan)
    idx = np.empty(2 * b.size, np.int64)
    idx[0::2] = b * t + start
    idx[1::2] = b * t + stop + 1
    return op.reduceat(flat, idx)[0::2]


def run_sums(values: Array, b: Array, start: Array, stop: Array) -> Array:
    """Sums of `values` (C, B, T) over each run [start, stop] of row b: (C, runs)."""
    csum = np.zeros((*values.shape[:2], values.shape[2] + 1))
    np.cumsum(values, axis=2, out=csum[:, :, 1:])
    return csum[:, b, stop + 1] - csum[:, b, start]


@dataclass(slots=True)
class Segment:
    """Contiguous frame features of one stream, assembled during a batch."""

    k0: int
    k1: int
    parts: list[Array | tuple[int, int]] = field(default_factory=list)
    array: Array | None = None

    def materialise(self, new_rows: Array) -> Array:
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
class FrameBatch:
    """Frame features of a batch's windows, right-aligned and padded to one length."""

    x: Array  # (B, T, N_FEATURES), NaN where a window has no frame
    rel: Array  # (B, T) frame centre in seconds relative to the window's end
    end_sample: Array  # (B, T) absolute sample index where each frame ends
    first: Array  # (B,) first valid frame index
    ends: Array  # (B,) absolute end sample of each window
    lasthop: Array  # (B, T) frames whose end falls in the window's last hop

    @property
    def frames(self) -> int:
        """Padded frame count."""
        return self.x.shape[1]


def continues(audio: Samples, start: int, end: int, tail: Array, tail_end: int) -> bool:
    """True when `audio` (spanning [start, end)) holds the cached tail at the same positions."""
    lo = tail_end - tail.size
    if lo < start or tail_end > end:
        return False
    return bool(np.array_equal(audio[lo - start : tail_end - start], tail))
