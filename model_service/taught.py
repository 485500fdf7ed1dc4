"""Sounds taught by example: the embedded matcher.

A user gives 3-10 examples of a sound no built-in category covers (their doorbell's chime,
the washing machine's end melody, the microwave's three beeps). Each example becomes a
template: its log-mel spectrogram (40 bands, 20 ms frames), cut to where the sound is and
made independent of its level; its quiet frames (the gaps between beeps) count a tenth. Audio is compared with a template by subsequence dynamic time
warping (the template may match anywhere in the audio, played up to twice as fast or half as
fast), frame by frame with a cosine distance after removing each frame's mean, so a sound is
recognised by the shape of its spectrum over time, not by how loud it was.

The threshold comes from the examples themselves: each example is matched against the other
templates (leave one out), and a match must be at most `THRESHOLD_MARGIN` times as far as
the farthest of those, within bounds measured on household audio. A score of 0.5 is that
threshold; closer matches score higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import functools
import math

import numpy as np

from model_service.arrays import Array, Samples

SAMPLE_RATE = 16000
N_FFT = 1024
WIN = 640  # 40 ms
HOP = 320  # 20 ms
N_MELS = 40
FMIN, FMAX = 100.0, 7600.0
ACTIVE_DB = 30.0  # a template keeps the frames within this many dB of its loudest
FLOOR_DB = -80.0
MIN_FRAMES = 4  # 80 ms: shorter examples are refused
QUIET_WEIGHT = 0.1  # what a template frame more than ACTIVE_DB / 2 under its peak counts
MAX_SECONDS = 10.0
THRESHOLD_MARGIN = 1.3
MIN_THRESHOLD, MAX_THRESHOLD = 0.13, 0.18
MIN_EXAMPLES, MAX_EXAMPLES = 3, 10


class TeachError(ValueError):
    """Examples that cannot teach a sound; the message says why."""


@functools.cache
def _mel_bank() -> Array:
    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    mels = np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    bank = np.zeros((N_MELS, bins.size))
    for m in range(N_MELS):
        lo, mid, hi = hz[m], hz[m + 1], hz[m + 2]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        bank[m] = np.maximum(0.0, np.minimum(rise, fall))
    return bank


_WINDOW = np.hanning(WIN).astype(np.float32)


def log_mel(audio: Samples) -> Array:
    """Log-mel spectrogram in dB (frames x N_MELS), 10 ms frames."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size < WIN:
        x = np.pad(x, (0, WIN - x.size))
    n = 1 + (x.size - WIN) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx] * _WINDOW
    power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2 / WIN
    mel = power @ _mel_bank().T
    db: Array = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return db


def _shape(db: Array) -> Array:
    """Frames as unit vectors of their spectral shape (mean removed): level does not count."""
    centred = db - db.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    shaped: Array = centred / np.maximum(norm, 1e-6)
    return shaped


@dataclass(frozen=True, slots=True)
class Template:
    """One example's frames (shaped) and how much each counts."""

    frames: Array
    weights: Array


def template_of(audio: Samples) -> Template:
    """An example's template: its frames from the first to the last within ACTIVE_DB of the
    loudest, shaped; frames quieter than half that count QUIET_WEIGHT."""
    db = log_mel(audio)
    energy = 10.0 * np.log10(np.maximum(np.sum(10.0 ** (db / 10.0), axis=1), 1e-10))
    if energy.max() < FLOOR_DB:
        raise TeachError("the example is silent")
    active = np.flatnonzero(energy >= energy.max() - ACTIVE_DB)
    first, last = int(active[0]), int(active[-1])
    if last - first + 1 < MIN_FRAMES:
        raise TeachError("the example is shorter than 80 ms")
    span = energy[first : last + 1]
    weights = np.where(span >= energy.max() - ACTIVE_DB / 2, 1.0, QUIET_WEIGHT)
    return Template(_shape(db[first : last + 1]), weights / weights.sum())


def match_costs(templates: Sequence[Template], query: Array, *, last: int | None = None) -> Array:
    """The best cost of each template (see `end_costs`), over matches ending anywhere, or in
    the query's last `last` frames."""
    ends = end_costs(templates, query)
    if last is not None:
        ends = ends[:, -last:]
    out: Array = ends.min(axis=1)
    return out


def end_costs(templates: Sequence[Template], query: Array) -> Array:
    """Subsequence DTW cost of each template matched anywhere in `query` (shaped frames) and
    ending at each query frame (templates x frames), weighted per template frame (each
    template's weights sum to 1).

    Steps (1,1), (1,2) and (2,1): a match may run at half to twice a template's speed. All
    templates run at once: shorter ones are padded at their start with frames that cost
    nothing, which lets them start anywhere, as the first frame does.
    """
    q = query.shape[0]
    longest = max(t.frames.shape[0] for t in templates)
    n = len(templates)
    # Cosine distance, templates x frames x query, weighted by how much each frame counts.
    cost = np.zeros((n, longest, q))
    too_long = np.zeros(n, dtype=bool)
    for k, template in enumerate(templates):
        t = template.frames.shape[0]
        too_long[k] = q < (t + 1) // 2
        cost[k, longest - t :] = (1.0 - template.frames @ query.T) * template.weights[:, None]
    prev2: Array = np.full((n, q), np.inf)
    prev: Array = cost[:, 0].copy()  # a match may start at any query frame
    for i in range(1, longest):
        best = np.full((n, q), np.inf)
        best[:, 1:] = prev[:, :-1]  # (1,1)
        best[:, 2:] = np.minimum(best[:, 2:], prev[:, :-2])  # (1,2)
        if i >= 2:
            best[:, 1:] = np.minimum(best[:, 1:], prev2[:, :-1])  # (2,1)
        # Padding rows cost nothing and may start anywhere.
        best[:, 0] = np.where(cost[:, i - 1, 0] == 0.0, 0.0, np.inf)
        prev2, prev = prev, cost[:, i] + best
    prev[too_long] = np.inf
    return prev


def _context(audio: Samples, seconds: float = 0.5) -> Array:
    """An example with some quiet around it, as it would sit in a stream."""
    pad = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, np.asarray(audio, dtype=np.float32), pad])


@dataclass(slots=True)
class Matcher:
    """A taught sound's templates and threshold."""

    templates: list[Template]
    threshold: float
    longest: float  # seconds of the longest template

    @classmethod
    def teach(cls, examples: Sequence[Samples]) -> Matcher:
        """Learn from 3-10 examples; TeachError when they cannot make a sound."""
        if not MIN_EXAMPLES <= len(examples) <= MAX_EXAMPLES:
            raise TeachError(f"give {MIN_EXAMPLES} to {MAX_EXAMPLES} examples, not {len(examples)}")
        for example in examples:
            if len(example) > MAX_SECONDS * SAMPLE_RATE:
                raise TeachError(f"an example is longer than {MAX_SECONDS:.0f} s")
        templates = [template_of(e) for e in examples]
        queries = [_shape(log_mel(_context(e))) for e in examples]
        leave_one_out = [
            float(match_costs([t for j, t in enumerate(templates) if j != i], queries[i]).min())
            for i in range(len(templates))
        ]
        spread = max(leave_one_out)
        if not math.isfinite(spread):
            raise TeachError("the examples are too different in length to be one sound")
        longest = max(t.frames.shape[0] for t in templates) * HOP / SAMPLE_RATE
        # Bounds: examples that are near copies of each other must not make a threshold no
        # other recording of the sound can meet (its room, its background), and examples
        # that differ a lot must not make one that everyday audio meets. Measured on
        # synthesized household sounds in household audio (bench/bench_taught.py): held-out
        # plays cost 0.02-0.25, everyday audio 0.2 and more.
        threshold = min(max(spread * THRESHOLD_MARGIN, MIN_THRESHOLD), MAX_THRESHOLD)
        return cls(templates, threshold, longest)

    @property
    def window_seconds(self) -> float:
        """How much recent audio a match needs to see (the longest template at half speed)."""
        return 2.0 * self.longest + 0.5

    def profile(self, audio: Samples) -> Array:
        """The score of a match ending at each 20 ms frame of `audio` (a long recording at
        once: what the live path computes hop by hop)."""
        costs = end_costs(self.templates, _shape(log_mel(audio))).min(axis=0)
        scores: Array = np.clip(1.0 - 0.5 * costs / self.threshold, 0.0, 1.0)
        return scores

    def score(self, audio: Samples, *, last_seconds: float | None = None) -> float:
        """How surely the sound is in `audio` (0..1; 0.5 at the threshold); with
        `last_seconds`, a match must end in that last part of the audio."""
        return self.match(audio, last_seconds=last_seconds)[0]

    def match(self, audio: Samples, *, last_seconds: float | None = None) -> tuple[float, float]:
        """(score, seconds before the end of `audio` the best match began)."""
        query = _shape(log_mel(audio))
        costs = end_costs(self.templates, query)
        q = query.shape[0]
        last = (
            q if last_seconds is None else min(q, max(1, round(last_seconds * SAMPLE_RATE / HOP)))
        )
        tail = costs[:, q - last :]
        k, j = np.unravel_index(int(np.argmin(tail)), tail.shape)
        best = float(tail[k, j])
        if not math.isfinite(best):
            return 0.0, 0.0
        end = q - last + int(j)  # the frame the match ends on
        began = (q - end + self.templates[int(k)].frames.shape[0]) * HOP / SAMPLE_RATE
        return float(np.clip(1.0 - 0.5 * best / self.threshold, 0.0, 1.0)), began
