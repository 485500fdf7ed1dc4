"""Synthetic household audio for tests, benchmarks and the demo (numpy only, seeded).

Everything here is generated, never recorded: noises, mains hum, speech-like babble (formant
filtered pulse trains, not real speech), room reverberation, smoke alarm T3 and CO alarm T4
patterns, telephone ring-back, appliance beeps, simple music, bangs, and a household scene
with its ground truth. All functions return float32 mono audio at 16 kHz unless `rate` says
otherwise, and the same seed always gives the same samples.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import math
from pathlib import Path
import sys

import numpy as np

RATE = 16000

# Temporal patterns as alternating on/off durations in seconds, starting with "on".
# T3 (ISO 8201, NFPA 72 smoke/fire evacuation): three 0.5 s pulses with 0.5 s gaps, 1.5 s pause.
T3_PATTERN: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5, 0.5, 1.5)
# T4 (NFPA 720 carbon monoxide): four 0.1 s pulses with 0.1 s gaps, then about 5 s of quiet.
T4_PATTERN: tuple[float, ...] = (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 5.0)
# Telephone ring-back tones: US 440+480 Hz 2 s on 4 s off; UK 400+450 Hz 0.4/0.2/0.4 on, 2 s off.
RINGBACK_US: tuple[float, ...] = (2.0, 4.0)
RINGBACK_UK: tuple[float, ...] = (0.4, 0.2, 0.4, 2.0)

Interval = tuple[float, float]
Truth = tuple[str, float, float]


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _samples(seconds: float, rate: int) -> int:
    return max(0, round(seconds * rate))


def db_to_amp(db: float) -> float:
    """Convert decibels to an amplitude ratio."""
    return float(10.0 ** (db / 20.0))


def rms(audio: np.ndarray) -> float:
    """Root mean square of the samples (0 for empty audio)."""
    if audio.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def active_rms(audio: np.ndarray, rate: int = RATE, *, range_db: float = 30.0) -> float:
    """RMS over the active part only: 20 ms frames within `range_db` of the loudest frame.

    Intermittent signals (alarms, beeps, speech) are measured while they sound, so an SNR
    quoted against this level is what a listener hears during a pulse, not a duty-cycle average.
    """
    frame = max(1, rate // 50)
    n = audio.size // frame
    if n == 0:
        return rms(audio)
    power = np.mean(np.square(audio[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    peak = float(power.max())
    if peak <= 0.0:
        return 0.0
    active = power >= peak * 10.0 ** (-range_db / 10.0)
    return float(np.sqrt(np.mean(power[active])))


def set_level(audio: np.ndarray, level_dbfs: float, *, active: bool = False) -> np.ndarray:
    """Scale audio so its RMS (or active RMS) is `level_dbfs` (a full-scale sine is -3 dBFS)."""
    current = active_rms(audio) if active else rms(audio)
    if current <= 0.0:
        return audio.astype(np.float32)
    return (audio * (db_to_amp(level_dbfs) / current)).astype(np.float32)


def colored_noise(
    seconds: float,
    exponent: float,
    *,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    n = _samples(seconds, rate)
    if n == 0:
        return np.zeros(0, np.float32)
    white = _rng(seed).standard_normal(n)
    if exponent == 0.0:
        return set_level(white, level_dbfs)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    # Below 20 Hz the shaping is flattened so brown noise does not become a slow DC wander.
    shaped = spectrum / np.maximum(freqs, 20.0) ** (exponent / 2.0)
    shaped[0] = 0.0
    return set_level(np.fft.irfft(shaped, n), level_dbfs)


def white_noise(
    seconds: float,
    *,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """White Gaussian noise: hiss, fans, a radio between stations."""
    return colored_noise(seconds, 0.0, level_dbfs=level_dbfs, seed=seed, rate=rate)


def pink_noise(
    seconds: float,
    *,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Pink (1/f) noise, equal energy per octave, like many ventilation and room noises."""
    return colored_noise(seconds, 1.0, level_dbfs=level_dbfs, seed=seed, rate=rate)


def brown_noise(
    seconds: float,
    *,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Brown (1/f²) noise: rumble, traffic, wind-like low-frequency noise."""
    return colored_noise(seconds, 2.0, level_dbfs=level_dbfs, seed=seed, rate=rate)


def mains_hum(
    seconds: float,
    *,
    freq: float = 50.0,
    harmonics: int = 12,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Mains hum and transformer buzz: `freq` (50 or 60 Hz) and its harmonics, slowly wavering."""
    rng = _rng(seed)
    n = _samples(seconds, rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * freq >= 0.45 * rate:
            break
        # Odd harmonics dominate magnetostriction buzz; even ones come from rectifiers.
        amp = (1.0 if k % 2 else 0.5) / k
        wobble = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        out += amp * wobble * np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi))
    out += 0.01 * rng.standard_normal(n)
    return set_level(out, level_dbfs)


# Formant frequencies and bandwidths (Hz) of a few vowels, averaged adult values.
_VOWELS: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = (
    ((730, 1090, 2440), (90, 110, 160)),  # a
    ((530, 1840, 2480), (60, 100, 120)),  # e
    ((270, 2290, 3010), (60, 90, 150)),  # i
    ((570, 840, 2410), (70, 80, 120)),  # o
    ((300, 870, 2240), (60, 80, 120)),  # u
    ((660, 1720, 2410), (80, 100, 140)),  # ae
    ((490, 1350, 1690), (70, 90, 110)),  # schwa-ish
)

_STFT_N = 512
_STFT_HOP = 128


def _ola_filter(source: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Filter `source` with a time-varying magnitude response, one row of `gains` per frame."""
    n = source.size
    window = np.sqrt(np.hanning(_STFT_N + 1)[:-1])
    frames = gains.shape[0]
    padded = np.zeros((frames - 1) * _STFT_HOP + _STFT_N)
    padded[: min(n, padded.size)] = source[: padded.size]
    idx = np.arange(frames)[:, None] * _STFT_HOP + np.arange(_STFT_N)[None, :]
    spec = np.fft.rfft(padded[idx] * window, axis=1) * gains
    blocks = np.fft.irfft(spec, _STFT_N, axis=1) * window
    out = np.zeros(padded.size)
    np.add.at(out, idx, blocks)
    # sqrt-Hann analysis and synthesis at 75 % overlap sum to a constant 2.
    return out[:n] / 2.0


def talker(
    seconds: float,
    *,
    female: bool | None = None,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """One speech-like voice: a glottal pulse train with wandering f0, syllable-rate amplitude
    modulation, per-syllable vowel formants and short fricative bursts. Not real speech."""
    rng = _rng(seed)
    n = _samples(seconds, rate)
    if n == 0:
        return np.zeros(0, np.float32)
    if female is None:
        female = bool(rng.integers(0, 2))
    base_f0 = rng.uniform(170, 240) if female else rng.uniform(90, 140)
    t = np.arange(n) / rate
    # Intonation: slow random wander plus declination within each phrase.
    knots = np.linspace(0, seconds, max(2, int(seconds * 3)))
    contour = np.interp(t, knots, rng.normal(0.0, 0.12, knots.size))
    f0 = base_f0 * np.exp(contour) * (1.0 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = np.cumsum(f0 / rate)
    source = np.zeros(n)
    source[1:][np.diff(np.floor(phase)) > 0] = 1.0
    # Syllables and phrase pauses.
    envelope = np.zeros(n)
    vowel_at = np.zeros(n, dtype=np.int64)
    fricative = np.zeros(n)
    pos = rng.uniform(0.0, 0.3)
    while pos < seconds:
        for _ in range(int(rng.integers(3, 9))):
            dur = rng.uniform(0.12, 0.3)
            a, b = _samples(pos, rate), min(n, _samples(pos + dur, rate))
            if a >= n:
                break
            if b > a:
                envelope[a:b] = np.maximum(
                    envelope[a:b], rng.uniform(0.5, 1.0) * np.hanning(b - a + 2)[1:-1] ** 0.5
                )
                vowel_at[a:b] = rng.integers(0, len(_VOWELS))
                if rng.random() < 0.35:
                    fb = min(n, a + _samples(rng.uniform(0.04, 0.1), rate))
                    # Fricatives swell and fade over tens of milliseconds, never click on.
                    fricative[a:fb] = rng.uniform(0.1, 0.3) * np.hanning(fb - a + 2)[1:-1]
            pos += dur + rng.uniform(0.0, 0.06)
        pos += rng.uniform(0.2, 0.7)
    voiced = source * envelope
    frames = (n + _STFT_N) // _STFT_HOP + 1
    centers = np.clip(np.arange(frames) * _STFT_HOP + _STFT_N // 2, 0, n - 1)
    freqs = np.fft.rfftfreq(_STFT_N, 1.0 / rate)
    tables = np.empty((len(_VOWELS), freqs.size))
    for i, (formants, bands) in enumerate(_VOWELS):
        resp = np.zeros(freqs.size)
        for k, (fc, bw) in enumerate(zip(formants, bands, strict=True)):
            resp += (0.5**k) / (1.0 + ((freqs - fc) / (bw / 2.0)) ** 2)
        # Glottal roll-off and lip radiation: about -6 dB per octave above 200 Hz.
        tables[i] = (resp + 0.01) * 200.0 / np.maximum(freqs, 200.0)
    gains = tables[vowel_at[centers]]
    out = _ola_filter(voiced, gains)
    hiss_gain = np.clip((freqs - 2500.0) / 2000.0, 0.0, 1.0)[None, :].repeat(frames, 0)
    hiss = _ola_filter(rng.standard_normal(n) * fricative, hiss_gain)
    # Fricatives sit 10-20 dB under the vowels around them.
    if active_rms(hiss) > 0.0:
        hiss *= active_rms(out) / active_rms(hiss) * db_to_amp(-rng.uniform(10.0, 18.0))
    return set_level(out + hiss, level_dbfs)


def babble(
    seconds: float,
    *,
    talkers: int = 4,
    level_dbfs: float = -30.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Several speech-like voices talking at once (cafeteria / TV-in-the-next-room noise)."""
    rng = _rng(seed)
    out = np.zeros(_samples(seconds, rate))
    for _ in range(talkers):
        out += talker(seconds, level_dbfs=-30.0 + rng.uniform(-4, 4), seed=rng, rate=rate)
    return set_level(out, level_dbfs)


def reverb(
    audio: np.ndarray,
    rt60: float,
    *,
    drr_db: float = 0.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Room reverberation: convolve with a direct path plus an exponentially decaying noise tail.

    `rt60` is the time for the tail to fall by 60 dB; `drr_db` the direct-to-reverberant energy
    ratio (0 dB is a source a couple of metres away in a living room). Output keeps the input's
    length (the tail past the end is cut).
    """
    if rt60 <= 0.0 or audio.size == 0:
        return audio.astype(np.float32)
    rng = _rng(seed)
    length = _samples(rt60 * 1.2, rate)
    t = np.arange(length) / rate
    # 60 dB of amplitude decay over rt60: exp(-ln(1000) * t / rt60).
    tail = rng.standard_normal(length) * np.exp(-math.log(1000.0) * t / rt60)
    predelay = _samples(0.004, rate)
    tail[:predelay] = 0.0
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / max(float(np.sum(tail**2)), 1e-12))
    ir = tail
    ir[0] = 1.0
    size = 1 << math.ceil(math.log2(audio.size + length))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(ir, size), size)[: audio.size]
    return wet.astype(np.float32)


def pattern_intervals(
    pattern: Sequence[float], seconds: float, *, offset: float = 0.0
) -> list[Interval]:
    """On-intervals (start, end) of a repeating on/off `pattern`, clipped to [0, seconds].

    `offset` is how far into the pattern's cycle the clip starts (a clip that starts mid-pattern).
    """
    cycle = float(sum(pattern))
    out: list[Interval] = []
    first = -(offset % cycle)
    cycles = 0
    while first + cycles * cycle < seconds:
        pos = first + cycles * cycle
        for i, dur in enumerate(pattern):
            if i % 2 == 0:
                # Rounded to microseconds so cycles do not accumulate float error.
                a, b = round(max(0.0, pos), 6), round(min(seconds, pos + dur), 6)
                if b > a:
                    out.append((a, b))
            pos += dur
        cycles += 1
    return out


def _gate(
    audio: np.ndarray, intervals: Sequence[Interval], rate: int, ramp: float = 0.005
) -> np.ndarray:
    """Keep `audio` only inside `intervals`, with short raised-cosine ramps against clicks."""
    gain = np.zeros(audio.size)
    r = max(1, _samples(ramp, rate))
    for start, end in intervals:
        a, b = _samples(start, rate), min(audio.size, _samples(end, rate))
        if b <= a:
            continue
        seg = np.ones(b - a)
        k = min(r, (b - a) // 2)
        if k > 0:
            rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            # A segment cut by the clip's edge starts (or ends) at full level, like a recording.
            if start > 0.0:
                seg[:k] = rise
            if end < audio.size / rate:
                seg[-k:] = rise[::-1]
        gain[a:b] = seg
    return audio * gain


def tone(
    seconds: float,
    freq: float,
    *,
    harmonics: Sequence[float] = (),
    drift: float = 0.0,
    level_dbfs: float = -20.0,
    phase: float = 0.0,
    rate: int = RATE,
) -> np.ndarray:
    """A continuous tone. `harmonics` are amplitudes of partials 2, 3, ... relative to the first;
    `drift` is the relative frequency change across the clip (0.02 rises by 2 %)."""
    n = _samples(seconds, rate)
    t = np.arange(n) / rate
    inst = freq * (1.0 + drift * t / max(seconds, 1e-9))
    ph = 2 * np.pi * np.cumsum(inst) / rate + phase
    out = np.sin(ph)
    for k, amp in enumerate(harmonics, start=2):
        if k * freq * (1.0 + max(drift, 0.0)) < 0.45 * rate and amp:
            out += amp * np.sin(k * ph)
    return set_level(out, level_dbfs)


def square_wave(
    seconds: float, freq: float, *, drift: float = 0.0, level_dbfs: float = -20.0, rate: int = RATE
) -> np.ndarray:
    """A band-limited square wave (odd harmonics at 1/k) below 0.45 of the sample rate."""
    top = int(0.45 * rate / (freq * (1.0 + abs(drift))))
    partials = [(1.0 / k if k % 2 else 0.0) for k in range(2, top + 1)]
    return tone(seconds, freq, harmonics=partials, drift=drift, level_dbfs=level_dbfs, rate=rate)


def smoke_alarm_intervals(seconds: float, *, offset: float = 0.0) -> list[Interval]:
    """Pulse intervals of a T3 smoke alarm clip (see `smoke_alarm`)."""
    return pattern_intervals(T3_PATTERN, seconds, offset=offset)


def co_alarm_intervals(
    seconds: float, *, offset: float = 0.0, pause: float = 5.0
) -> list[Interval]:
    """Pulse intervals of a T4 CO alarm clip (see `co_alarm`)."""
    return pattern_intervals((*T4_PATTERN[:-1], pause), seconds, offset=offset)


def smoke_alarm(
    seconds: float,
    *,
    kind: str = "piezo",
    freq: float | None = None,
    drift: float = 0.0,
    offset: float = 0.0,
    level_dbfs: float = -20.0,
    rate: int = RATE,
) -> np.ndarray:
    """A smoke alarm sounding the T3 pattern.

    `kind="piezo"`: a piezo sounder near 3.1 kHz with a second and third harmonic;
    `kind="lf"`: the 520 Hz square-wave low-frequency alarm (bedrooms, hearing loss).
    `level_dbfs` is the RMS while a pulse sounds.
    """
    if kind == "piezo":
        src = tone(seconds, freq or 3100.0, harmonics=(0.25, 0.12), drift=drift, rate=rate)
    elif kind == "lf":
        src = square_wave(seconds, freq or 520.0, drift=drift, rate=rate)
    else:
        raise ValueError(f"unknown smoke alarm kind {kind!r}: use 'piezo' or 'lf'")
    src = set_level(src, level_dbfs)
    return _gate(src, smoke_alarm_intervals(seconds, offset=offset), rate).astype(np.float32)


def co_alarm(
    seconds: float,
    *,
    freq: float = 3000.0,
    drift: float = 0.0,
    offset: float = 0.0,
    pause: float = 5.0,
    level_dbfs: float = -20.0,
    rate: int = RATE,
) -> np.ndarray:
    """A carbon monoxide alarm sounding the T4 pattern (four 0.1 s pulses, then `pause`)."""
    src = set_level(tone(seconds, freq, harmonics=(0.2,), drift=drift, rate=rate), level_dbfs)
    intervals = co_alarm_intervals(seconds, offset=offset, pause=pause)
    return _gate(src, intervals, rate).astype(np.float32)


def steady_tone(
    seconds: float, freq: float = 3100.0, *, level_dbfs: float = -20.0, rate: int = RATE
) -> np.ndarray:
    """A steady tone with a faint second harmonic (a test tone, a whine, a held beep)."""
    return tone(seconds, freq, harmonics=(0.1,), level_dbfs=level_dbfs, rate=rate)


def ringback(
    seconds: float,
    *,
    country: str = "us",
    offset: float = 0.0,
    level_dbfs: float = -20.0,
    rate: int = RATE,
) -> np.ndarray:
    """Telephone ring-back tone: US 440+480 Hz 2 s on / 4 s off, UK 400+450 Hz 0.4/0.2/0.4, 2 s off."""
    if country == "us":
        freqs, pattern = (440.0, 480.0), RINGBACK_US
    elif country == "uk":
        freqs, pattern = (400.0, 450.0), RINGBACK_UK
    else:
        raise ValueError(f"unknown ring-back country {country!r}: use 'us' or 'uk'")
    src = tone(seconds, freqs[0], rate=rate) + tone(seconds, freqs[1], rate=rate)
    src = set_level(src, level_dbfs)
    return _gate(src, pattern_intervals(pattern, seconds, offset=offset), rate).astype(np.float32)


def appliance_beeps(
    seconds: float,
    *,
    level_dbfs: float = -20.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> tuple[np.ndarray, list[Interval]]:
    """Irregular appliance beeps: random frequencies (1-4 kHz), durations and gaps.

    Returns the audio and the beep intervals.
    """
    rng = _rng(seed)
    n = _samples(seconds, rate)
    out = np.zeros(n)
    intervals: list[Interval] = []
    pos = rng.uniform(0.2, 1.0)
    while pos < seconds - 0.1:
        dur = float(rng.uniform(0.08, 0.8))
        end = min(seconds, pos + dur)
        beep = tone(end - pos + 0.02, float(rng.uniform(1000, 4000)), harmonics=(0.15,), rate=rate)
        a = _samples(pos, rate)
        seg = _gate(beep, [(0.001, end - pos)], rate)[: n - a]
        out[a : a + seg.size] += seg * db_to_amp(rng.uniform(-4, 0))
        intervals.append((pos, end))
        pos = end + float(rng.uniform(0.25, 2.0))
    return set_level(out, level_dbfs, active=True), intervals


def kettle_beep(
    seconds: float,
    *,
    start: float = 0.5,
    freq: float = 2200.0,
    count: int = 3,
    on: float = 0.2,
    off: float = 0.2,
    level_dbfs: float = -20.0,
    rate: int = RATE,
) -> tuple[np.ndarray, list[Interval]]:
    """A kettle / microwave "done" signal: `count` regular beeps. Returns audio and intervals."""
    src = set_level(tone(seconds, freq, harmonics=(0.2,), rate=rate), level_dbfs)
    intervals = [
        (start + i * (on + off), min(seconds, start + i * (on + off) + on))
        for i in range(count)
        if start + i * (on + off) < seconds
    ]
    return _gate(src, intervals, rate).astype(np.float32), intervals


def music(
    seconds: float,
    *,
    level_dbfs: float = -22.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """Simple synthetic music: random notes and chords of a major scale with harmonics and
    plucked or bowed envelopes."""
    rng = _rng(seed)
    n = _samples(seconds, rate)
    out = np.zeros(n)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = int(rng.integers(45, 57))
    beat = 60.0 / rng.uniform(80, 140)
    pos = 0.0
    while pos < seconds:
        dur = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        chord = int(rng.integers(1, 4))
        degree = int(rng.integers(0, 14))
        for voice in range(chord):
            d = degree + 2 * voice
            midi = root + 12 * (d // 7) + int(scale[d % 7])
            f = 440.0 * 2 ** ((midi - 69) / 12)
            length = min(n - _samples(pos, rate), _samples(dur * rng.uniform(0.8, 1.3), rate))
            if length <= 0:
                continue
            t = np.arange(length) / rate
            plucked = rng.random() < 0.5
            attack = np.minimum(1.0, t / rng.uniform(0.005, 0.06))
            decay = np.exp(-t / rng.uniform(0.15, 0.5)) if plucked else np.ones(length)
            release = np.minimum(1.0, (length - np.arange(length)) / (0.03 * rate))
            env = attack * decay * release
            vib = 1.0 + (0.0 if plucked else 0.004) * np.sin(2 * np.pi * 5.5 * t)
            ph = 2 * np.pi * f * np.cumsum(vib) / rate
            note = np.zeros(length)
            brightness = rng.uniform(0.8, 1.6)
            for k in range(1, 13):
                if k * f >= 0.45 * rate:
                    break
                note += np.sin(k * ph + rng.uniform(0, 6.3)) / k**brightness
            a = _samples(pos, rate)
            out[a : a + length] += note * env * rng.uniform(0.4, 1.0)
        pos += dur
    return set_level(out, level_dbfs)


def bang(
    seconds: float,
    *,
    at: float = 0.5,
    peak_dbfs: float = -3.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """A loud impulse at `at` seconds: a door slam's thump plus a broadband crack and panel modes."""
    rng = _rng(seed)
    n = _samples(seconds, rate)
    out = np.zeros(n)
    a = _samples(at, rate)
    length = min(n - a, _samples(0.6, rate))
    if length <= 0:
        return out.astype(np.float32)
    t = np.arange(length) / rate
    crack = rng.standard_normal(length) * np.exp(-t / 0.015)
    thump_src = rng.standard_normal(length) * np.exp(-t / 0.08)
    # A crude low-pass for the thump: a moving average over 2 ms.
    k = _samples(0.002, rate)
    thump = np.convolve(thump_src, np.ones(k) / k, mode="same") * 4.0
    modes = sum(
        np.sin(2 * np.pi * rng.uniform(120, 450) * t) * np.exp(-t / rng.uniform(0.05, 0.2))
        for _ in range(3)
    )
    burst = crack + thump + 0.5 * modes
    burst *= db_to_amp(peak_dbfs) / max(float(np.max(np.abs(burst))), 1e-9)
    out[a : a + length] = burst
    return out.astype(np.float32)


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, rate: int) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz (FFT mask with 1/3-octave soft edges)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    gain = np.clip(np.minimum(freqs / lo, hi / np.maximum(freqs, 1.0)), 0.0, 1.0) ** 3
    return np.fft.irfft(spec * gain, n)


def clap(
    *,
    peak_dbfs: float = -12.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """One hand clap, 0.15 s, shaped like recorded ones: a burst of 2-4 impulses over 10-40 ms
    (the palms meeting and the air pocket bursting), each a 5-9 ms decay of noise shaped
    by the cupped hands' resonance (spectrum centroid 1.2-2.0 kHz; recorded claps: 1.5-1.9)."""
    rng = _rng(seed)
    n = _samples(0.15, rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(int(rng.integers(2, 5))):
        at = 0.0 if k == 0 else rng.uniform(0.008, 0.04)
        tau = rng.uniform(0.005, 0.009)
        env = np.where(t >= at, np.exp(-(t - at) / tau), 0.0)
        out += (
            rng.uniform(0.5, 1.0)
            * _band_noise(rng, n, rng.uniform(400, 700), rng.uniform(1800, 2500), rate)
            * env
        )
    out *= db_to_amp(peak_dbfs) / max(float(np.max(np.abs(out))), 1e-9)
    return out.astype(np.float32)


def snap(
    *,
    peak_dbfs: float = -14.0,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """One finger snap, 0.1 s, shaped like a recorded one: a single sharp click whose energy
    sits higher than a clap's (a resonance near 2.1-2.7 kHz over 1.2-4.6 kHz noise; spectrum
    centroid 2.4-3.4 kHz; the recorded snap: 2.4), decaying in 5-8 ms."""
    rng = _rng(seed)
    n = _samples(0.1, rate)
    t = np.arange(n) / rate
    tau = rng.uniform(0.005, 0.008)
    env = np.exp(-t / tau)
    click = _band_noise(rng, n, rng.uniform(1200, 1600), rng.uniform(3600, 4200), rate)
    ring = np.sin(2 * np.pi * rng.uniform(2100, 2700) * t) * float(np.std(click)) * 0.7
    out = (click + ring) * env
    out *= db_to_amp(peak_dbfs) / max(float(np.max(np.abs(out))), 1e-9)
    return out.astype(np.float32)


def gesture(
    kind: str,
    count: int,
    *,
    seconds: float = 4.0,
    at: float = 1.5,
    interval: float = 0.3,
    jitter: float = 0.15,
    peak_dbfs: float = -12.0,
    rt60: float = 0.4,
    seed: int | np.random.Generator | None = None,
    rate: int = RATE,
) -> np.ndarray:
    """`count` claps or snaps (`kind`) from `at` seconds, `interval` apart (each gap varied
    by up to `jitter` of it, as people do), in a room with reverberation `rt60`."""
    rng = _rng(seed)
    out = np.zeros(_samples(seconds, rate))
    make = clap if kind == "clap" else snap
    when = at
    for _ in range(count):
        hit = make(peak_dbfs=peak_dbfs + rng.uniform(-2, 2), seed=rng, rate=rate)
        _place(out, hit, when, rate)
        when += interval * (1.0 + rng.uniform(-jitter, jitter))
    return (
        reverb(out, rt60, drr_db=3.0, seed=rng, rate=rate) if rt60 > 0 else out.astype(np.float32)
    )


def mix_at_snr(
    signal: np.ndarray, noise: np.ndarray, snr_db: float, *, active: bool = True
) -> np.ndarray:
    """Add `noise` to `signal` scaled to `snr_db` (RMS based); the signal's level is kept.

    With `active` the signal's RMS is measured only where it sounds (see `active_rms`), the
    honest choice for alarms whose pulses fill a small part of the clip. The noise is cut or
    repeated to the signal's length.
    """
    if noise.size < signal.size:
        noise = np.resize(noise, signal.size)
    noise = noise[: signal.size]
    s = active_rms(signal) if active else rms(signal)
    nr = rms(noise)
    if s <= 0.0 or nr <= 0.0:
        return (signal + noise).astype(np.float32)
    gain = s / nr * db_to_amp(-snr_db)
    return (signal + gain * noise).astype(np.float32)


def _place(out: np.ndarray, clip: np.ndarray, at: float, rate: int) -> None:
    a = _samples(at, rate)
    b = min(out.size, a + clip.size)
    if b > a:
        out[a:b] += clip[: b - a]


def household_scene(
    *,
    seed: int = 0,
    speech: np.ndarray | None = None,
    rate: int = RATE,
) -> tuple[np.ndarray, list[Truth]]:
    """About a minute of a home: room noise, talk, a kettle, a smoke alarm, a CO alarm, quiet.

    `speech` (16 kHz float audio) replaces the synthetic talker when given. Returns the audio
    and the ground truth as (category, start, end) in seconds; the demo plays it on a loop.
    """
    rng = _rng(seed)
    total = 64.0
    out = pink_noise(total, level_dbfs=-52.0, seed=rng, rate=rate)
    truth: list[Truth] = []

    talk = (
        set_level(speech, -26.0)
        if speech is not None
        else talker(7.0, level_dbfs=-26.0, seed=rng, rate=rate)
    )
    talk = reverb(talk, 0.35, drr_db=3.0, seed=rng, rate=rate)
    _place(out, talk, 1.0, rate)
    truth.append(("speech", 1.0, 1.0 + talk.size / rate))

    kettle, beeps = kettle_beep(2.0, start=0.2, level_dbfs=-24.0, rate=rate)
    _place(out, kettle, 12.0, rate)
    truth.extend(("appliance_beep", 12.0 + a, 12.0 + b) for a, b in beeps)

    _place(out, bang(1.0, at=0.0, peak_dbfs=-4.0, seed=rng, rate=rate), 16.0, rate)
    truth.append(("loud_noise", 16.0, 16.1))

    smoke_len = 12.0
    smoke = reverb(smoke_alarm(smoke_len, level_dbfs=-18.0, rate=rate), 0.4, seed=rng, rate=rate)
    _place(out, smoke, 20.0, rate)
    pulses = smoke_alarm_intervals(smoke_len)
    truth.append(("smoke_alarm", 20.0 + pulses[0][0], 20.0 + pulses[-1][1]))

    co_len = 11.0
    co = reverb(co_alarm(co_len, level_dbfs=-18.0, rate=rate), 0.4, seed=rng, rate=rate)
    _place(out, co, 40.0, rate)
    pulses = co_alarm_intervals(co_len)
    truth.append(("co_alarm", 40.0 + pulses[0][0], 40.0 + pulses[-1][1]))

    truth.sort(key=lambda x: x[1])
    return np.clip(out, -1.0, 1.0).astype(np.float32), truth


def write_wav(path: str | Path, audio: np.ndarray, rate: int = RATE) -> None:
    """Write mono float audio as 16-bit PCM WAV."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a synthetic clip (`scene`, `smoke`, `co`, `babble`, `music`) to WAV."""
    parser = argparse.ArgumentParser(prog="python -m devtools.synth", description=__doc__)
    parser.add_argument("kind", choices=["scene", "smoke", "smoke-lf", "co", "babble", "music"])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speech", type=Path, help="a speech recording for the scene's talk")
    args = parser.parse_args(argv)
    truth: list[Truth] = []
    if args.kind == "scene":
        speech = None
        if args.speech is not None:
            import soundfile as sf

            data, sr = sf.read(str(args.speech), dtype="float32", always_2d=True)
            if sr != RATE:
                parser.error(f"--speech must be {RATE} Hz mono, got {sr} Hz")
            speech = data.mean(axis=1)
        audio, truth = household_scene(seed=args.seed, speech=speech)
    elif args.kind == "smoke":
        audio = smoke_alarm(args.seconds)
    elif args.kind == "smoke-lf":
        audio = smoke_alarm(args.seconds, kind="lf")
    elif args.kind == "co":
        audio = co_alarm(args.seconds)
    elif args.kind == "babble":
        audio = babble(args.seconds, seed=args.seed)
    else:
        audio = music(args.seconds, seed=args.seed)
    write_wav(args.output, audio)
    sys.stdout.write(json.dumps({"path": str(args.output), "truth": truth}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
