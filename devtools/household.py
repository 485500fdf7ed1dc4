"""Days of a synthetic household, hour by hour, cheap enough to compress weeks into seconds.

Each hour of the day has its own sound: quiet nights with a fridge that cycles, mornings with
a kettle and talk, days with traffic through the window, evenings with the television and a
dishwasher that runs from 19:00 to 21:00. Sixty seconds of each ingredient are synthesised once
and reused with random shifts and gains, so an hour costs milliseconds to make; `minutes`
yields it a minute at a time.

Used by the usual-sound tests, the benchmark and the end-to-end test, which teach a source's
model from these days and then play it a night with one odd sound in it.
"""

from __future__ import annotations

from collections.abc import Iterator
import functools

import numpy as np

from devtools import synth

RATE = 16000
LOOP = 60  # seconds of each ingredient


@functools.cache
def _ingredients(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = LOOP * RATE
    talk = synth.talker(LOOP, level_dbfs=-36.0, seed=rng) + synth.talker(
        LOOP, level_dbfs=-40.0, seed=rng
    )
    tv = talk + synth.music(LOOP, level_dbfs=-40.0, seed=rng)
    swish = 1.0 + 0.6 * np.sin(2 * np.pi * 0.4 * np.arange(n) / RATE)
    dishwasher = (
        synth.brown_noise(LOOP, level_dbfs=-36.0, seed=rng)
        + synth.pink_noise(LOOP, level_dbfs=-42.0, seed=rng) * swish
    )
    return {
        "floor": synth.pink_noise(LOOP, level_dbfs=-60.0, seed=rng),
        "fridge": synth.mains_hum(LOOP, level_dbfs=-52.0, seed=rng),
        "street": synth.brown_noise(LOOP, level_dbfs=-46.0, seed=rng),
        "talk": talk,
        "tv": tv,
        "dishwasher": dishwasher.astype(np.float32),
        "kettle": _padded(synth.kettle_beep(3.0, level_dbfs=-30.0)[0], n),
    }


def _padded(clip: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[: min(n, clip.size)] = clip[:n]
    return out


def _shifted(loop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.roll(loop, int(rng.integers(0, loop.size)))


def minute(hour: int, minute_of_hour: int, *, seed: int = 0, day: int = 0) -> np.ndarray:
    """One minute of the household at `hour`:`minute_of_hour` on day `day` (float32, 16 kHz)."""
    parts = _ingredients(seed)
    rng = np.random.default_rng((seed, day, hour, minute_of_hour))
    out = _shifted(parts["floor"], rng).astype(np.float64)
    # The fridge runs about half the time, in stretches of ten minutes or so.
    if (minute_of_hour // 10 + hour + day) % 2 == 0:
        out += _shifted(parts["fridge"], rng)
    if 7 <= hour < 23:
        out += _shifted(parts["street"], rng) * rng.uniform(0.6, 1.2)
    if 7 <= hour < 9 or 12 <= hour < 14:
        out += _shifted(parts["talk"], rng) * rng.uniform(0.5, 1.0)
        if hour == 7 and minute_of_hour == 30:
            out += parts["kettle"]
    if 18 <= hour < 23:
        out += _shifted(parts["tv"], rng) * rng.uniform(0.6, 1.0)
    if 19 <= hour < 21:
        out += _shifted(parts["dishwasher"], rng)
    return out.astype(np.float32)


def minutes(hour: int, count: int = 60, *, seed: int = 0, day: int = 0) -> Iterator[np.ndarray]:
    """The first `count` minutes of an hour, one minute at a time."""
    for m in range(count):
        yield minute(hour, m, seed=seed, day=day)


def night_minute(minute_of_hour: int, *, seed: int = 0, day: int = 0) -> np.ndarray:
    """A minute of the quiet night (the 3 a.m. sound of this household)."""
    return minute(3, minute_of_hour, seed=seed, day=day)


def hops(audio: np.ndarray, start: float, hop: float = 0.5) -> list[tuple[float, np.ndarray]]:
    """Cut audio starting at epoch `start` into (end time, samples) hops for UsualModel.step."""
    size = round(hop * RATE)
    return [
        (start + (i + 1) * hop, audio[i * size : (i + 1) * size]) for i in range(audio.size // size)
    ]
