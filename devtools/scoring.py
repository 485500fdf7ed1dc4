"""Score a whole clip with a tagger directly, hop by hop as the service does (tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from model_service.detection.windows import Frame, iter_windows, to_frames
from model_service.models.taggers import SAMPLE_RATE, Detection, Tagger


def frames_for_clip(
    tagger: Tagger,
    audio: np.ndarray,
    stream: str | None,
    *,
    batch_size: int = 64,
    start: int = 0,
    rate: int = SAMPLE_RATE,
) -> list[Frame]:
    """Score a whole clip hop by hop, in batches, calling the tagger directly (tests, benchmarks)."""
    info = tagger.info
    items = list(
        iter_windows(audio, info.window_seconds, info.hop_seconds, stream, start=start, rate=rate)
    )
    detections: list[Mapping[str, Detection]] = []
    for i in range(0, len(items), batch_size):
        detections.extend(tagger.predict([w for _, w in items[i : i + batch_size]]))
    return to_frames(items, detections, start=start, rate=rate)
