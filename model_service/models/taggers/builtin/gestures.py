"""Sound gestures: a double clap, a triple clap, a double finger snap.

A gesture is a short run of sharp, broadband transients with the timing of a deliberate
pattern, alone in a quiet moment:

- each hit rises at least `RISE_DB` over the loudest of the 30-100 ms before it, is
  broadband (most energy above 1 kHz, not one tone), and has fallen `DECAY_DB` 100 ms later
  (a clap or a snap rings only in the room; speech, music and a knock on a door do not fall
  that fast or are not that bright);
- hits follow each other `GAP` apart (0.12-0.8 s), each gap within `GAP_RATIO` of the
  previous one (claps in a rhythm, not a stumble);
- the run is alone: nothing comparable in the `QUIET_BEFORE` before its first hit or the
  `QUIET_AFTER` after its last, and the room under the hits by `BACKGROUND_DB` (percussion in
  music has a bed of sound under it; footsteps and typing go on);
- two hits are a double, three a triple; four or more (knocking, hammering, footsteps) are
  none.

Claps and snaps differ in brightness: a snap's click has about as much energy above 4 kHz
as below, a clap's (the cupped hands' resonance) lies mostly below. A run of hits that
differ too much in brightness (a clap and a snap) is none. The gesture is
reported once, in the window whose last hop holds the end of its quiet, so each one fires
once; the event logic's hold and the quiet before a run keep a gesture from repeating.
"""

from __future__ import annotations

from collections.abc import Sequence
import itertools

import numpy as np

from model_service.arrays import Array, Samples
from model_service.models.taggers.base import SAMPLE_RATE
from model_service.models.taggers.builtin.features import (
    FRAME_HOP,
    HF_DB,
    LVL,
    N_FFT,
    TONAL,
    FrameBatch,
    trailing_max,
)

GESTURES = ("double_clap", "triple_clap", "double_snap")

RISE_DB = 12.0
MIN_DBFS = -55.0
DECAY_DB = 9.0
DECAY_FRAMES = 10  # 100 ms: a reverberant room (RT60 0.7 s) still rings 9-12 dB under the hit
HF_SHARE_DB = -3.0  # energy above 1 kHz within 3 dB of the whole frame's
TONAL_MAX = 0.4
PEAK_RADIUS = 5  # frames: one hit is the loudest frame within 50 ms
GAP = (0.12, 0.9)
GAP_RATIO = 1.8
QUIET_BEFORE = 0.5
QUIET_AFTER = 0.6
BACKGROUND_DB = 15.0
TAIL_FRAMES = 20  # the room's ring after a hit (200 ms), left out of the quiet after it
LEVEL_SPREAD_DB = 12.0
# Brightness: energy over 4 kHz against 0.5-4 kHz (synthesized claps: -17 to -2.6 dB, median
# -9.5; snaps: -5.4 to +8.9, median +1.3). A hit at or under CLAP_MAX_DB is a clap, at or over
# SNAP_MIN_DB a snap; a run with both is none; a run of hits in between goes by its mean.
CLAP_MAX_DB = -6.0
SNAP_MIN_DB = -1.5
BRIGHT_DB = -3.5
SCORE = 0.9

_HANN = np.hanning(N_FFT).astype(np.float32)
_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
_MID = (_FREQS >= 500) & (_FREQS < 4000)
_HIGH = _FREQS >= 4000
_QUIET_AFTER_FRAMES = round(QUIET_AFTER * SAMPLE_RATE / FRAME_HOP)


def _brightness(audio: Samples, end: int) -> float:
    """Energy over 4 kHz against 0.5-4 kHz, dB, of the frame ending at sample `end` of
    `audio` (the window's samples)."""
    frame = audio[max(0, end - N_FFT) : end]
    if frame.size < N_FFT:
        frame = np.pad(frame, (N_FFT - frame.size, 0))
    power = np.abs(np.fft.rfft(frame * _HANN)) ** 2
    return float(10.0 * np.log10((power[_HIGH].sum() + 1e-20) / (power[_MID].sum() + 1e-20)))


def gestures(
    batch: FrameBatch,
    audio: Sequence[Samples],
    scores: dict[str, Array],
    onsets: dict[str, list[float | None]],
    *,
    hop_samples: int,
) -> None:
    """Score the gestures of each window (see the module's description)."""
    x = batch.x
    lvl = np.nan_to_num(x[:, :, LVL], nan=-np.inf)
    # 30-100 ms before: a hit 0.12 s after another rises out of that one's decay.
    past = trailing_max(lvl, 3, 10)
    later = np.full_like(lvl, np.inf)
    later[:, :-DECAY_FRAMES] = lvl[:, DECAY_FRAMES:]
    with np.errstate(invalid="ignore"):
        hit = (
            (lvl >= MIN_DBFS)
            & (lvl - past >= RISE_DB)
            & (lvl - later >= DECAY_DB)
            & (x[:, :, HF_DB] - lvl >= HF_SHARE_DB)
            & (x[:, :, TONAL] < TONAL_MAX)
        )
    # Whatever reaches the level of a hit counts against quiet (a loud sound that is no hit).
    for i in np.flatnonzero(hit.any(axis=1)):
        _window(i, batch, audio[i], lvl[i], hit[i], scores, onsets, hop_samples)


def _window(
    i: int,
    batch: FrameBatch,
    audio: Samples,
    lvl: Array,
    hit: Array,
    scores: dict[str, Array],
    onsets: dict[str, list[float | None]],
    hop_samples: int,
) -> None:
    frames = lvl.size
    first = int(batch.first[i])
    # One hit per 50 ms: the loudest frame among the candidates around it.
    peaks = [
        t
        for t in np.flatnonzero(hit)
        if lvl[t] >= lvl[max(first, t - PEAK_RADIUS) : t + PEAK_RADIUS + 1].max()
    ]
    if not peaks:
        return
    rel = batch.rel[i]
    start = int(batch.ends[i]) - audio.size
    due_lo, due_hi = int(batch.ends[i]) - hop_samples, int(batch.ends[i])
    # Runs of hits with pattern gaps; the others break runs.
    runs: list[list[int]] = [[peaks[0]]]
    for t in peaks[1:]:
        gap = rel[t] - rel[runs[-1][-1]]
        if gap < GAP[0]:
            continue  # the same hit's ringing or a flam: not a new hit
        if gap <= GAP[1]:
            runs[-1].append(t)
        else:
            runs.append([t])
    for run in runs:
        if len(run) not in (2, 3):
            continue
        t0, t1 = run[0], run[-1]
        # The quiet after it ends inside this window's last hop: reported once.
        quiet_end = int(batch.end_sample[i, t1]) + _QUIET_AFTER_FRAMES * FRAME_HOP
        if not due_lo < quiet_end <= due_hi:
            continue
        gaps = np.diff(rel[run])
        if len(gaps) == 2 and max(gaps) / min(gaps) > GAP_RATIO:
            continue
        hits = lvl[run]
        if hits.max() - hits.min() > LEVEL_SPREAD_DB:
            continue
        before = int(QUIET_BEFORE * SAMPLE_RATE / FRAME_HOP)
        lo = t0 - before
        if lo < first:
            continue  # the window does not reach back far enough to know it was quiet
        softest = float(hits.min())
        quiet = softest - BACKGROUND_DB
        before_lvl = lvl[lo : t0 - 1]
        after_lvl = lvl[t1 + TAIL_FRAMES : t1 + _QUIET_AFTER_FRAMES]
        if before_lvl.size and float(before_lvl.max()) > quiet:
            continue
        if after_lvl.size and float(np.percentile(after_lvl, 90)) > quiet:
            continue
        between = np.concatenate([lvl[a + TAIL_FRAMES : b - 2] for a, b in itertools.pairwise(run)])
        if between.size and float(np.median(between)) > quiet:
            continue
        if t1 + _QUIET_AFTER_FRAMES > frames:
            continue
        brightness = [_brightness(audio, int(batch.end_sample[i, t]) - start) for t in run]
        claps = sum(b <= CLAP_MAX_DB for b in brightness)
        snaps = sum(b >= SNAP_MIN_DB for b in brightness)
        if claps and snaps:
            continue  # a clap and a snap: no gesture
        if snaps or (not claps and float(np.mean(brightness)) >= BRIGHT_DB):
            name = "double_snap" if len(run) == 2 else None
        else:
            name = "double_clap" if len(run) == 2 else "triple_clap"
        if name is None or name not in scores:
            continue
        scores[name][i] = max(scores[name][i], SCORE)
        onsets[name][i] = float(-rel[t0])
