"""Smoke and CO alarms and appliance beeps across a batch: runs of tonal frames at one
frequency become pulses, and pulse timing is matched against the alarm patterns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math

import numpy as np

from model_service.arrays import Array
from model_service.models.taggers.builtin.features import (
    BP_DB,
    BP_F,
    BP_SAL,
    HOP_SECONDS,
    LF_DB,
    LF_F,
    LF_H2,
    LF_H3,
    LF_SAL,
    LOW_F,
    LOW_SAL,
    LVL,
    PZ_DB,
    PZ_F,
    PZ_SAL,
    FrameBatch,
    run_reduce,
    run_sums,
    trailing_max,
)
from model_service.models.taggers.builtin.patterns import (
    BEEP_DOMINANCE_DB,
    BEEP_HZ,
    BEEP_SAL_DB,
    DIP_DB,
    DIP_SPAN,
    FREQ_TOL,
    LF_HARMONIC_DB,
    LF_HZ,
    MERGE_GAP,
    MIN_PULSE,
    NEIGHBOUR_DB,
    PIEZO_HZ,
    T3,
    T3_MERGE_DB,
    T3_MERGE_GAP,
    T4,
    TONAL_SAL_DB,
    Pulse,
    beep_due,
    join,
    match_pattern,
    match_t4_envelope,
)


@dataclass(slots=True)
class _Runs:
    """Runs of tonal frames across a batch: window index, first and last frame, statistics."""

    b: Array
    start: Array
    stop: Array
    mean: Mapping[int, Array]
    # Steadiness, for beeps only: frequency range and glide (Hz), level spread (dB).
    f_min: Array | None = None
    f_max: Array | None = None
    level_std: Array | None = None
    glide: Array | None = None


def find_runs(
    batch: FrameBatch,
    cols: tuple[int, int, int],
    band: tuple[float, float],
    sal_min: float,
    *,
    dip: bool,
    bridge: int,
    extra: Array | None = None,
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
            on &= db >= trailing_max(np.where(on, db, -np.inf), 0, DIP_SPAN) - DIP_DB
        close = np.zeros_like(on)
        close[:, 1:] = np.abs(f[:, 1:] - f[:, :-1]) <= FREQ_TOL * f[:, 1:]
        idx = np.broadcast_to(np.arange(t), on.shape)
        prev = np.maximum.accumulate(np.where(on, idx, -1), axis=1)
        nxt = t - 1 - np.maximum.accumulate(np.where(on, t - 1 - idx, -1)[:, ::-1], axis=1)[:, ::-1]
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
    sums = run_sums(
        np.concatenate([on[None].astype(np.float64), np.where(on, np.moveaxis(cols_x, 2, 0), 0.0)]),
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
    peak = run_reduce(np.fmax, np.where(on, db, np.nan).astype(np.float64), bs, ts, te)
    run_id = np.cumsum((filled & ~link).ravel()).reshape(on.shape) - 1
    core = on & (db >= peak[np.clip(run_id, 0, peak.size - 1)] - DIP_DB)
    tt = np.arange(t, dtype=np.float64)[None, :]
    dbw = np.where(core, db, 0.0).astype(np.float64)
    fw = np.where(core, f, 0.0).astype(np.float64)
    tw = np.where(core, tt, 0.0)
    n_, s_db, s_db2, s_t, s_f, s_tt, s_tf = run_sums(
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
    runs.f_min = run_reduce(np.fmin, f_core, bs, ts, te)
    runs.f_max = run_reduce(np.fmax, f_core, bs, ts, te)
    runs.level_std = np.sqrt(np.maximum(s_db2 / n_ - (s_db / n_) ** 2, 0.0))
    runs.glide = np.abs(slope) * (te - ts + 1)
    return runs


def find_pulses(
    runs: _Runs,
    batch: FrameBatch,
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
                join(q, p)
                break
        else:
            pulses.append(p)
    return [[p for p in ps if p.duration >= MIN_PULSE] for ps in out]


def alarms_and_beeps(
    batch: FrameBatch,
    scores: dict[str, Array],
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
    pz_runs = find_runs(batch, pz_cols, PIEZO_HZ, TONAL_SAL_DB, dip=True, bridge=2, min_frames=24)
    pz_t4 = find_pulses(pz_runs, batch, pz_cols)
    pz_t3 = find_pulses(pz_runs, batch, pz_cols, T3_MERGE_GAP, T3.duration[1], T3_MERGE_DB)
    pz_tone = find_pulses(
        find_runs(batch, pz_cols, PIEZO_HZ, TONAL_SAL_DB, dip=False, bridge=5, min_frames=40),
        batch,
        pz_cols,
    )
    lf_cols = (LF_F, LF_DB, LF_SAL)
    lf_runs = find_runs(
        batch,
        lf_cols,
        LF_HZ,
        TONAL_SAL_DB,
        dip=True,
        bridge=2,
        means=(LF_H2, LF_H3),
        min_frames=60,
    )
    lf = find_pulses(lf_runs, batch, lf_cols, T3_MERGE_GAP, T3.duration[1], T3_MERGE_DB)
    with np.errstate(invalid="ignore"):
        dominant = batch.x[:, :, BP_DB] - batch.x[:, :, LVL] >= BEEP_DOMINANCE_DB
    bp_cols = (BP_F, BP_DB, BP_SAL)
    bp_runs = find_runs(
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
    bp = find_pulses(bp_runs, batch, bp_cols)
    x = batch.x
    pz_db = np.nan_to_num(x[:, :, PZ_DB], nan=-np.inf)
    lf_db = np.nan_to_num(x[:, :, LF_DB], nan=-np.inf)
    for i in range(n):
        pz_band = (x[i, :, PZ_F], pz_db[i], x[i, :, PZ_SAL], x[i, :, LVL])
        lf_band = (x[i, :, LF_F], lf_db[i], x[i, :, LF_SAL], x[i, :, LVL])
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
            if beep_due(p, bp[i], alarm_freqs, HOP_SECONDS, float(batch.rel[i, batch.first[i]]))
        ]
        if beep_onsets:
            scores["appliance_beep"][i] = 0.8
            onsets["appliance_beep"][i] = max(beep_onsets)
