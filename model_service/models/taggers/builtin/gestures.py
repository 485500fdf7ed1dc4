"""Sound gestures: a double clap, a triple clap, a double finger snap.

A gesture is a short run of sharp, broadband transients with the timing of a deliberate
pattern, alone in a quiet moment:

- each hit rises at least `RISE_DB` over the loudest of the 30-100 ms before it, is
  broadband (most energy above 1 kHz, not one tone), and has fallen `DECAY_DB` 100 ms later
  (a clap or a snap rings only in the room; speech, music and a knock on a door do not fall
  that fast or are not that bright);
- hits follow each other `GAP` apart (0.12-0.6 s), each gap within `GAP_RATIO` of the
  previous one (claps in a rhythm, not a stumble);
- the run is alone: nothing comparable in the `QUIET_BEFORE` before its first hit or the
  `QUIET_AFTER` after its last, and the room under the hits by `BACKGROUND_DB` (percussion in
  music has a bed of sound under it; footsteps and typing go on);
- two hits are a double, three a triple; four or more (knocking, hammering, footsteps) are
  none.

Claps and snaps differ in where their spectrum is centred: a clap (the cupped hands'
resonance) around 1.5 kHz, a snap's click around 2.4 kHz. A run of a clear clap and a clear
snap is none. The gesture is
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
HF_SHARE_DB = -6.0  # energy above 1 kHz at least a quarter of the frame's (a knock's is far less)
TONAL_MAX = 0.4
PEAK_RADIUS = 5  # frames: one hit is the loudest frame within 50 ms
ONSET_FRAMES = 6  # a hit's onset comes at most 60 ms before its loudest frame
GAP = (0.12, 0.6)
GAP_RATIO = 1.8
QUIET_BEFORE = 0.5
QUIET_AFTER = (
    0.7  # longer than the longest gap: a double is not reported before a third hit could come
)
BACKGROUND_DB = 15.0
TAIL_FRAMES = 20  # the room's ring after a hit (200 ms), left out of the quiet after it
LEVEL_SPREAD_DB = 12.0
# Where a hit's spectrum is centred: recorded hand claps (two drum kits' acoustic claps) at
# 1.5-1.9 kHz, a recorded finger snap at 2.4 kHz. A hit at or under CLAP_MAX_HZ is a clap,
# at or over SNAP_MIN_HZ a snap; a run with both is none; hits in between go by their mean.
CLAP_MAX_HZ = 2100.0
SNAP_MIN_HZ = 2300.0
SPLIT_HZ = 2200.0
# Recorded maracas (4.8 kHz) and a tambourine (6 kHz) are brighter than any hand.
HIT_MAX_HZ = 3800.0
SCORE = 0.9

_HANN = np.hanning(N_FFT).astype(np.float32)
_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
_QUIET_AFTER_FRAMES = round(QUIET_AFTER * SAMPLE_RATE / FRAME_HOP)


def _centroid(audio: Samples, end: int) -> float:
    """Spectral centroid (Hz) of the frame ending at sample `end` of `audio` (the window's
    samples)."""
    frame = audio[max(0, end - N_FFT) : end]
    if frame.size < N_FFT:
        frame = np.pad(frame, (N_FFT - frame.size, 0))
    power = np.abs(np.fft.rfft(frame * _HANN)) ** 2
    return float((power * _FREQS).sum() / max(float(power.sum()), 1e-20))


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
    # A hit's rise: over the loudest of the 30-100 ms before (a hit 0.12 s after another
    # rises out of that one's decay), taken at its onset, which may come up to 60 ms before
    # its loudest frame (a real clap is a burst of several impulses over 30-50 ms).
    with np.errstate(invalid="ignore"):
        onset_rise = np.nan_to_num(lvl - trailing_max(lvl, 3, 10), nan=-np.inf, posinf=np.inf)
    rise = trailing_max(onset_rise, 0, ONSET_FRAMES)
    later = np.full_like(lvl, np.inf)
    later[:, :-DECAY_FRAMES] = lvl[:, DECAY_FRAMES:]
    with np.errstate(invalid="ignore"):
        hit = (
            (lvl >= MIN_DBFS)
            & (rise >= RISE_DB)
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
        before_lvl = lvl[lo : t0 - ONSET_FRAMES]  # up to its onset
        after_lvl = lvl[t1 + TAIL_FRAMES : t1 + _QUIET_AFTER_FRAMES]
        if before_lvl.size and float(before_lvl.max()) > quiet:
            continue
        if after_lvl.size and float(np.percentile(after_lvl, 90)) > quiet:
            continue
        between = np.concatenate(
            [lvl[a + TAIL_FRAMES : b - ONSET_FRAMES] for a, b in itertools.pairwise(run)]
        )
        if between.size and float(np.median(between)) > quiet:
            continue
        if t1 + _QUIET_AFTER_FRAMES > frames:
            continue
        centroids = [_centroid(audio, int(batch.end_sample[i, t]) - start) for t in run]
        if max(centroids) > HIT_MAX_HZ:
            continue  # brighter than hands: a shaker, a tambourine, a jingle
        claps = sum(c <= CLAP_MAX_HZ for c in centroids)
        snaps = sum(c >= SNAP_MIN_HZ for c in centroids)
        if claps and snaps:
            continue  # a clap and a snap: no gesture
        if snaps or (not claps and float(np.mean(centroids)) >= SPLIT_HZ):
            name = "double_snap" if len(run) == 2 else None
        else:
            name = "double_clap" if len(run) == 2 else "triple_clap"
        if name is None or name not in scores:
            continue
        scores[name][i] = max(scores[name][i], SCORE)
        onsets[name][i] = float(-rel[t0])
