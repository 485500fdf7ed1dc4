"""What every tagger shares: its input window, its output detections, its description and
the quiet check a model must pass before it serves (continuous sound event detection)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from model_service.arrays import Samples

SAMPLE_RATE = 16000


@dataclass(frozen=True, slots=True)
class Window:
    """One analysis window handed to a tagger.

    `audio` is float32 mono at 16 kHz in [-1, 1] and ends at absolute sample index `end`
    of the stream it was cut from. `stream` is a stable key for a continuous stream (a live
    source, or one uploaded clip); taggers may use (stream, end) to reuse work between
    overlapping windows. At the start of a stream a window may be shorter than the tagger's
    `window_seconds`.
    """

    audio: Samples
    stream: str | None = None
    end: int = 0


@dataclass(frozen=True, slots=True)
class Detection:
    """A tagger's score for one category in one window.

    `score` (0..1) says how sure the tagger is that the category is sounding during the
    last `hop_seconds` of the window. `label` is the most specific label behind the score.
    `onset`, when the tagger knows it, is how many seconds before the window's end the
    sound began (pattern detectors recognise an alarm only after a few pulses).
    """

    score: float
    label: str
    onset: float | None = None


@dataclass(frozen=True, slots=True)
class TaggerInfo:
    """What a loaded tagger is and what it can detect."""

    name: str
    backend: str
    categories: tuple[str, ...]
    window_seconds: float
    hop_seconds: float
    device: str = "cpu"
    labels: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "name": self.name,
            "backend": self.backend,
            "device": self.device,
            "window_seconds": self.window_seconds,
            "hop_seconds": self.hop_seconds,
            "categories": list(self.categories),
            **self.extra,
        }


class Tagger(Protocol):
    """A batched sound tagger. `predict` blocks and runs in a worker thread, never on the loop."""

    info: TaggerInfo

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """Score each window; one dict (category id -> Detection) per window, same order."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class TaggerLoadError(RuntimeError):
    """A tagger could not be loaded; the message names the problem."""


def check_quiet(tagger: Tagger, off_thresholds: Mapping[str, float], seconds: float = 3.0) -> None:
    """Refuse a tagger that hears something in silence or in quiet noise.

    A model whose scores are off (a second sigmoid, a wrong feature scale, the wrong label
    table) would switch sensors on in every home and keep them on: each category must score
    below its off threshold on a few seconds of digital silence and of quiet room noise.
    """
    samples = round(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(0)
    probes = {
        "silence": np.zeros(samples, np.float32),
        "quiet noise (-60 dBFS)": (0.001 * rng.standard_normal(samples)).astype(np.float32),
    }
    results = tagger.predict([Window(audio, stream=None) for audio in probes.values()])
    for name, result in zip(probes, results, strict=True):
        for cid, heard in result.items():
            off = off_thresholds.get(cid)
            if off is not None and heard.score >= off:
                raise TaggerLoadError(
                    f"{tagger.info.name} hears {heard.label!r} in {name} (score "
                    f"{heard.score:.2f}, the {cid} sensor stays on above {off:.2f}): its scores "
                    "are not calibrated probabilities, so it would switch sensors on in a quiet "
                    "home. Refusing to start with it."
                )
