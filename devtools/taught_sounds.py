"""Sounds a household has that no built-in category covers, for teaching by example.

Each kind is one device's sound (a fixed melody, chime or beep pattern); every `play` of it
varies as real recordings of it would: level, a little speed and pitch, the room's echo and
the background. Used by the taught-sound tests, the benchmark and the end-to-end test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from devtools import synth

RATE = 16000


def _note(freq: float, seconds: float, *, decay: float, harmonics: tuple[float, ...]) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    out = np.sin(2 * np.pi * freq * t)
    for k, amp in enumerate(harmonics, start=2):
        if k * freq < 0.45 * RATE:
            out += amp * np.sin(2 * np.pi * k * freq * t)
    envelope = np.exp(-t / decay) * np.minimum(1.0, t / 0.005)
    return out * envelope


def _sequence(
    notes: list[tuple[float, float, float]], build: Callable[..., np.ndarray]
) -> np.ndarray:
    """(start s, frequency Hz, length s) notes laid out on one track."""
    end = max(start + length for start, _, length in notes)
    out = np.zeros(round((end + 0.3) * RATE))
    for start, freq, length in notes:
        note = build(freq, length)
        a = round(start * RATE)
        out[a : a + note.size] += note[: out.size - a]
    return out


def washer_melody(speed: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """A washing machine's end-of-cycle tune: eight square-ish notes."""
    tune = [523, 659, 784, 659, 698, 880, 784, 1047]
    notes = [(i * 0.3 / speed, f * pitch, 0.26 / speed) for i, f in enumerate(tune)]
    return _sequence(notes, lambda f, n: _note(f, n, decay=0.5, harmonics=(0.0, 0.33, 0.0, 0.2)))


def microwave_beeps(speed: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """A microwave's three long beeps at 2.7 kHz."""
    notes = [(i * 0.9 / speed, 2700 * pitch, 0.5 / speed) for i in range(3)]
    return _sequence(notes, lambda f, n: _note(f, n, decay=10.0, harmonics=(0.05,)))


def chime_ding_dong(speed: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """A two-tone doorbell: ding (G5), dong (D#5), long bell-like decays."""
    notes = [(0.0, 784 * pitch, 1.2 / speed), (0.6 / speed, 622 * pitch, 1.6 / speed)]
    return _sequence(notes, lambda f, n: _note(f, n, decay=0.5, harmonics=(0.4, 0.25, 0.1)))


def chime_westminster(speed: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """A four-note doorbell (the Westminster quarters' first phrase)."""
    tune = [659, 523, 587, 392]
    notes = [(i * 0.55 / speed, f * pitch, 1.0 / speed) for i, f in enumerate(tune)]
    return _sequence(notes, lambda f, n: _note(f, n, decay=0.45, harmonics=(0.5, 0.2, 0.1)))


def kettle_click(speed: float = 1.0, pitch: float = 1.0, seed: int = 0) -> np.ndarray:
    """A kettle switching itself off: a sharp plastic click and a short spring rattle."""
    rng = np.random.default_rng(seed)
    n = round(0.25 * RATE)
    t = np.arange(n) / RATE
    click = rng.standard_normal(n) * np.exp(-t / 0.004)
    ring = np.sin(2 * np.pi * 3100 * pitch * t) * np.exp(-t / (0.03 / speed))
    rattle = np.sin(2 * np.pi * 1400 * pitch * t) * np.exp(-t / (0.05 / speed)) * 0.5
    return click + 0.6 * ring + rattle


KINDS: dict[str, Callable[..., np.ndarray]] = {
    "washing machine": washer_melody,
    "microwave": microwave_beeps,
    "doorbell ding-dong": chime_ding_dong,
    "doorbell westminster": chime_westminster,
    "kettle click": kettle_click,
}


def varied(recording: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real recording as another device of the same model would play it: speed and pitch
    together within 2 % (resampled)."""
    rate = float(rng.uniform(0.98, 1.02))
    n = round(recording.size / rate)
    return np.interp(np.arange(n) * rate, np.arange(recording.size), recording).astype(np.float32)


def play(
    kind: str | np.ndarray,
    rng: np.random.Generator,
    *,
    seconds: float | None = None,
    snr_db: float = 25.0,
) -> tuple[np.ndarray, float]:
    """One recording of `kind` (a synthesized kind's name, or a real recording) in a room
    with background noise; (audio, onset seconds).

    Level -30 to -10 dBFS peak, speed and pitch within 3 % and 1 % (a real recording: 2 %),
    RT60 0.1-0.5 s, pink room noise `snr_db` under the sound's level.
    """
    if isinstance(kind, np.ndarray):
        sound = varied(kind, rng)
    else:
        sound = KINDS[kind](
            speed=float(rng.uniform(0.97, 1.03)), pitch=float(rng.uniform(0.99, 1.01))
        )
    sound = (
        sound
        / max(float(np.max(np.abs(sound))), 1e-9)
        * synth.db_to_amp(float(rng.uniform(-30.0, -10.0)))
    )
    sound = synth.reverb(
        sound.astype(np.float32), float(rng.uniform(0.1, 0.5)), drr_db=6.0, seed=rng
    )
    length = seconds if seconds is not None else sound.size / RATE + 1.0
    onset = float(rng.uniform(0.3, max(0.3, length - sound.size / RATE - 0.2)))
    out = np.zeros(round(length * RATE), np.float32)
    a = round(onset * RATE)
    out[a : a + sound.size] += sound[: out.size - a]
    level = synth.active_rms(sound)
    noise = synth.pink_noise(length, level_dbfs=20 * np.log10(max(level, 1e-9)) - snr_db, seed=rng)
    return (out + noise).astype(np.float32), onset
