"""Alarm patterns: the pulses tonal frames make, the T3 (smoke) and T4 (CO) timings they are
matched against, and what tells an appliance beep from one pulse of an alarm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import itertools

import numpy as np

from model_service.arrays import Array
from model_service.models.taggers.base import SAMPLE_RATE
from model_service.models.taggers.builtin.features import FRAME_HOP

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
# An alarm's tone is the loudest thing in the room while it sounds: on real recordings its
# pulses hold most of each frame's energy (about -2 dB, -5 dB at 5 dB SNR), while the
# notes of music that fall into the T3/T4 rhythm in the piezo band hold a few percent of
# it (-11 to -50 dB). An alarm this much quieter than the rest of the frame is missed.
ALARM_DOMINANCE_DB = -10.0


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


# A band's per-frame peak frequency (Hz), level (dBFS) and salience (dB), and the frame's
# whole level (dBFS), for one window.
Band = tuple[Array, Array, Array, Array]


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
        if not all(dominates(p, band) for p in burst):
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
        if -r.offset > T4.recent or not dominates(r, band):
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


def dominates(p: Pulse, band: Band) -> bool:
    """Whether the pulse's tone holds a good part of its frames' energy (ALARM_DOMINANCE_DB)."""
    frames = slice(p.first_frame, p.last_frame + 1)
    with np.errstate(invalid="ignore"):
        share = band[1][frames].astype(np.float64) - band[3][frames]
    share = share[np.isfinite(share)]
    return share.size > 0 and float(np.median(share)) >= ALARM_DOMINANCE_DB


def _quiet_between(a: Pulse, b: Pulse, band: Band, *, alone: bool) -> bool:
    """Whether the band quietens between two pulses: its loudest peak falls GAP_DIP_DB under
    both and, with `alone`, no other tone nearly as loud takes over (a note's harmonics
    taking turns as the band's peak, as vibrato in a room makes them, give fast pulses
    without gaps)."""
    f, db, sal, _ = band
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


def join(head: Pulse, tail: Pulse) -> None:
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


def beep_due(
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
