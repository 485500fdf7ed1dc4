"""What a source usually hears, by hour of the day, and how unusual a moment is against it.

Per source and per hour of the (service's local) day the model keeps a histogram of eight
levels: the loudest 64 ms of each hop in seven frequency bands, and overall. Every hop is
learned, weighted by its length, and old seconds fade with a half-life of two weeks, so the
model follows a household that changes. A hop is unusual when, in at least two of the eight
levels, this source has rarely heard anything within `MARGIN_DB` of it at this time of day: a
door slammed at 3 a.m. in a quiet house, not the dishwasher that runs every evening.

Scores are surprisal: `-log10` of the share of this hour's learned time that was at least as
loud (less the margin). An hour says nothing until it has `MIN_LEARNED` seconds behind it
(neighbouring hours count half), so a new source learns for a day before it reports.

The model is small (2 x 24 x 8 x 56 numbers, under 90 KB as saved) and numpy-only. `step` runs in a
worker thread; a lock guards it against a concurrent save.
"""

from __future__ import annotations

from collections.abc import Sequence
import io
import itertools
import logging
from pathlib import Path
import threading
import time

import numpy as np

from model_service.arrays import Array, Samples

SAMPLE_RATE = 16000
FRAME = 1024  # 64 ms sub-frames: a short bang is not averaged away by a quiet hop
BAND_EDGES_HZ = (50, 150, 300, 600, 1200, 2400, 4800, 8000)
N_FEATURES = len(BAND_EDGES_HZ)  # seven bands and the overall level
LOW_DB = -100.0
BIN_DB = 2.0
N_BINS = 56  # -100 .. +12 dB
MARGIN_DB = 6.0  # louder than this much above everything usual is unusual
FLOOR_DB = -60.0  # quieter than this is never unusual, whatever the hour says
HALF_LIFE = 14 * 3600.0  # seconds learned at one hour of the day: two weeks of days
MIN_LEARNED = 1800.0  # seconds learned at an hour (neighbours count half) before it reports
AGREE = 2  # levels that must be unusual at once
FULL_SCORE_SURPRISE = 5.0  # surprisal (log10) scoring 1.0: 2.5 (one in 300) scores 0.5
FORMAT_VERSION = 1

_LOGGER = logging.getLogger(__name__)

_WINDOW = np.hanning(FRAME).astype(np.float32)
_FREQS = np.fft.rfftfreq(FRAME, 1.0 / SAMPLE_RATE)
_BANDS = [
    (int(np.searchsorted(_FREQS, lo)), int(np.searchsorted(_FREQS, hi)))
    for lo, hi in itertools.pairwise(BAND_EDGES_HZ)
]
# Parseval with the window: the bins of a frame sum to its mean square.
_SCALE = 2.0 / (FRAME * float(np.sum(_WINDOW**2)))


def levels(audio: Samples) -> Array:
    """The eight levels (dB) of one hop: the loudest sub-frame per band, and overall."""
    one: Array = levels_batch(np.asarray(audio, dtype=np.float32)[None, :])[0]
    return one


def levels_batch(hops: Array) -> Array:
    """`levels` of equally long hops at once (hops x samples -> hops x N_FEATURES)."""
    x = np.asarray(hops, dtype=np.float32)
    if x.shape[1] < FRAME:
        x = np.pad(x, ((0, 0), (0, FRAME - x.shape[1])))
    n = x.shape[1] // FRAME
    frames = x[:, : n * FRAME].reshape(x.shape[0], n, FRAME)
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=2)) ** 2 * _SCALE
    out = np.empty((x.shape[0], N_FEATURES), dtype=np.float64)
    for i, (lo, hi) in enumerate(_BANDS):
        out[:, i] = np.max(np.sum(power[:, :, lo:hi], axis=2), axis=1)
    out[:, -1] = np.max(np.mean(np.square(frames, dtype=np.float64), axis=2), axis=1)
    db: Array = 10.0 * np.log10(np.maximum(out, 1e-12))
    return db


def _bin(db: Array) -> Array:
    return np.clip(((db - LOW_DB) / BIN_DB).astype(np.int64), 0, N_BINS - 1)


class UsualModel:
    """The learned levels of one source by hour of day; see the module docstring.

    `counts` is what earlier days taught; the hour going on now learns into `pending`, which
    joins `counts` when the hour is over. So a sound is judged against the days before, and
    a smoke-free kitchen that starts to sound like a running tap at 3 a.m. stays unusual for
    the rest of that hour instead of becoming "usual" after a few seconds.
    """

    def __init__(
        self, counts: Array | None = None, pending: Array | None = None, hour: int = -1
    ) -> None:
        """An empty model, or a saved one (24 x N_FEATURES x N_BINS seconds each)."""
        shape = (24, N_FEATURES, N_BINS)
        counts = np.zeros(shape) if counts is None else np.asarray(counts, dtype=np.float64)
        pending = np.zeros(shape) if pending is None else np.asarray(pending, dtype=np.float64)
        if counts.shape != shape or pending.shape != shape:
            raise ValueError(f"a usual-sound model has shape {shape}, not {counts.shape}")
        self.counts = counts
        self.pending = pending
        self.hour = hour  # the hour `pending` is learning (-1: none yet)
        self._lock = threading.Lock()
        # Tail sums per hour (seconds at or above each bin), rebuilt after a merge.
        self._tails: dict[int, Array] = {}

    # -- learning and scoring ------------------------------------------------------------

    def learned_seconds(self, hour: int) -> float:
        """Seconds behind an hour's statistics, neighbours counted half."""
        c = self.counts
        return float(
            c[hour, 0].sum() + 0.5 * (c[(hour - 1) % 24, 0].sum() + c[(hour + 1) % 24, 0].sum())
        )

    def learned_hours(self) -> int:
        """How many hours of the day can already report unusual sounds."""
        return sum(1 for h in range(24) if self.learned_seconds(h) >= MIN_LEARNED)

    def _tail(self, hour: int) -> Array:
        tail = self._tails.get(hour)
        if tail is None:
            c = self.counts
            mixed = c[hour] + 0.5 * (c[(hour - 1) % 24] + c[(hour + 1) % 24])
            # tail[f, b]: seconds with level f in bin b or above.
            tail = np.cumsum(mixed[:, ::-1], axis=1)[:, ::-1]
            self._tails[hour] = tail
        return tail

    def surprise(self, hour: int, db: Array) -> Array:
        """How unusual levels (hops x N_FEATURES) are at this hour: log10 surprisal per hop.

        0 while the hour is still learning.
        """
        db = np.atleast_2d(np.asarray(db, dtype=np.float64))
        total = self.learned_seconds(hour)
        if total < MIN_LEARNED:
            return np.zeros(db.shape[0])
        tail = self._tail(hour)
        # Seconds this hour was at least as loud, less the margin, per level.
        seen = tail[np.arange(N_FEATURES)[None, :], _bin(db - MARGIN_DB)]
        surprisal = -np.log10((seen + 1.0) / (total + 1.0))
        surprisal[db < FLOOR_DB] = 0.0
        return np.sort(surprisal, axis=1)[:, -AGREE]

    def _merge(self) -> None:
        """The hour that was learning is over: it joins what earlier days taught."""
        if self.hour < 0:
            return
        done = self.pending[self.hour]
        seconds = float(done[0].sum())
        if seconds > 0:
            row = self.counts[self.hour]
            row *= 0.5 ** (seconds / HALF_LIFE)
            row += done
            done[...] = 0.0
            for h in (self.hour - 1, self.hour, self.hour + 1):
                self._tails.pop(h % 24, None)

    def _start_hour(self, hour: int) -> None:
        if hour != self.hour:
            self._merge()
            self.hour = hour

    def learn(self, hour: int, db: Array, seconds: float) -> None:
        """Add hops (levels, `seconds` long each) heard at `hour`."""
        self._start_hour(hour)
        db = np.atleast_2d(np.asarray(db, dtype=np.float64))
        np.add.at(
            self.pending[hour],
            (np.broadcast_to(np.arange(N_FEATURES), db.shape), _bin(db)),
            seconds,
        )

    def step(self, hops: Sequence[tuple[float, Samples]]) -> list[float]:
        """Score, then learn, hops of audio (epoch time of the hop's end, its samples).

        Returns one score in 0..1 per hop (a surprisal of FULL_SCORE_SURPRISE scores 1).
        """
        if not hops:
            return []
        scores = np.zeros(len(hops))
        with self._lock:
            # Runs of equally long hops in the same hour are scored and learned together.
            i = 0
            while i < len(hops):
                hour = time.localtime(hops[i][0]).tm_hour
                size = len(hops[i][1])
                j = i + 1
                while (
                    j < len(hops)
                    and len(hops[j][1]) == size
                    and time.localtime(hops[j][0]).tm_hour == hour
                ):
                    j += 1
                db = levels_batch(np.stack([np.asarray(h[1]) for h in hops[i:j]]))
                self._start_hour(hour)  # the hour before, if over, joins what is learned
                scores[i:j] = self.surprise(hour, db) / FULL_SCORE_SURPRISE
                self.learn(hour, db, size / SAMPLE_RATE)
                i = j
        return [float(x) for x in np.clip(scores, 0.0, 1.0)]

    # -- persistence ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as saved (numpy's npz)."""
        with self._lock:
            counts = self.counts.astype(np.float32)
            pending = self.pending.astype(np.float32)
            hour = self.hour
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            version=np.int64(FORMAT_VERSION),
            counts=counts,
            pending=pending,
            hour=np.int64(hour),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> UsualModel:
        """Load a saved model; ValueError when it is not one this version reads."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as saved:
                version = int(saved["version"])
                counts = np.array(saved["counts"], dtype=np.float64)
                pending = np.array(saved["pending"], dtype=np.float64)
                hour = int(saved["hour"])
        except (OSError, KeyError, ValueError, EOFError) as err:
            raise ValueError(f"not a usual-sound model: {err}") from err
        if version != FORMAT_VERSION:
            raise ValueError(f"usual-sound model version {version} is not {FORMAT_VERSION}")
        for array in (counts, pending):
            if not np.all(np.isfinite(array)) or np.any(array < 0):
                raise ValueError("a usual-sound model holds negative or invalid counts")
        if not -1 <= hour < 24:
            raise ValueError(f"a usual-sound model's hour is {hour}")
        return cls(counts, pending, hour)


def model_path(data_dir: Path, source_id: str) -> Path:
    """Where a source's model is kept (source ids are slugs: safe as file names)."""
    return Path(data_dir) / "usual" / f"{source_id}.npz"


def load(path: Path) -> UsualModel:
    """The model saved at `path`; an empty one when there is none or it cannot be read."""
    try:
        return UsualModel.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return UsualModel()
    except (OSError, ValueError) as err:
        _LOGGER.warning("What %s usually hears is learned again from now: %s", path.stem, err)
        return UsualModel()


def save(path: Path, model: UsualModel) -> None:
    """Write atomically (a crash leaves the old model, never half a new one)."""
    data = model.to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
