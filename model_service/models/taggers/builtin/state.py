"""What the embedded tagger keeps per stream between batches: frame features, the audio tail
that identifies the stream, and silero-vad's recurrent states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_service.arrays import Array


@dataclass(slots=True)
class VadRun:
    """silero-vad state for one anchor of one stream: where it got to and what it said."""

    j_done: int
    h: Any
    c: Any
    probs: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class StreamState:
    """What is kept between batches for one stream."""

    k0: int
    feats: Array
    tail: Array  # the last samples seen, to notice another stream behind the same key
    tail_end: int
    enc: dict[int, Any] = field(default_factory=dict)  # VAD encoder output per chunk index
    vad: dict[int, VadRun] = field(default_factory=dict)  # per anchor chunk
