"""Bangs: a sudden broadband rise in level that decays within 150-300 ms (speech does not)."""

from __future__ import annotations

import numpy as np

from model_service.arrays import Array
from model_service.models.taggers.builtin.features import (
    FRAME_HOP,
    HF_DB,
    LVL,
    TONAL,
    FrameBatch,
    trailing_max,
)

LOUD_RISE_DB = 15.0
LOUD_DECAY_DB = 8.0  # an impulse has fallen this far 150-300 ms later; speech has not
LOUD_DECAY_FRAMES = (15, 30)
LOUD_DELAY = LOUD_DECAY_FRAMES[1] * FRAME_HOP  # samples: how late a bang is reported
LOUD_TONAL_MAX = 0.5
LOUD_HF_DB = -30.0


def bangs(
    batch: FrameBatch,
    scores: dict[str, Array],
    onsets: dict[str, list[float | None]],
    *,
    hop_samples: int,
    loud_dbfs: float,
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
    past = trailing_max(lvl, 4, 25)
    lo, hi = LOUD_DECAY_FRAMES
    later = np.full_like(lvl, np.inf)
    later[:, :-hi] = trailing_max(lvl, 0, hi - lo)[:, hi:]
    t_idx = np.arange(batch.frames)[None, :]
    due = (batch.end_sample > batch.ends[:, None] - hop_samples - LOUD_DELAY) & (
        batch.end_sample <= batch.ends[:, None] - LOUD_DELAY
    )
    with np.errstate(invalid="ignore"):
        cond = (
            (lvl >= loud_dbfs)
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
        margin = float(np.max(lvl[i, ts])) - loud_dbfs
        scores["loud_noise"][i] = min(0.99, 0.6 + 0.01 * (rise - LOUD_RISE_DB) + 0.02 * margin)
        onsets["loud_noise"][i] = float(-batch.rel[i, ts[0]])
