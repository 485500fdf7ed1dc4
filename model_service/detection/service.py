"""The running service's state: loaded models, batchers and the stable service id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Any
import uuid

from model_service.arrays import Samples
from model_service.config import Config
from model_service.detection.events import SoundEvent, dbfs, events_from_frames
from model_service.detection.windows import iter_windows, to_frames
from model_service.models.asr import SpeechRecognizer
from model_service.models.batcher import DynamicBatcher
from model_service.models.lm import AudioLM
from model_service.models.taggers import SAMPLE_RATE, Detection, Tagger, Window
from model_service.models.tts import SpeechSynthesizer
from model_service.sensitivity import Sensitivity

_LOGGER = logging.getLogger(__name__)


def load_service_id(data_dir: Path) -> str:
    """The service's stable id: made once, kept in the data dir (config flows key on it)."""
    path = data_dir / "service_id"
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    new_id = uuid.uuid4().hex
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new_id + "\n", encoding="utf-8")
    tmp.replace(path)
    return new_id


@dataclass(kw_only=True)
class Service:
    """Models and shared machinery of one service process."""

    config: Config
    service_id: str
    tagger: Tagger
    tagger_batcher: DynamicBatcher[Window, dict[str, Detection]]
    # Audio LM and speech recognizer backends (None when not loaded); their async `start()`
    # and `stop()` own their batchers.
    lm: AudioLM | None = None
    asr: SpeechRecognizer | None = None
    # Text to speech (models/tts.py), and why there is none when there is none.
    tts: SpeechSynthesizer | None = None
    tts_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, config: Config, tagger: Tagger, **kwargs: Any) -> Service:
        """Wire a loaded tagger to its batcher."""
        batcher: DynamicBatcher[Window, dict[str, Detection]] = DynamicBatcher(
            "tagger",
            tagger.predict,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
        )
        return cls(
            config=config,
            service_id=load_service_id(config.data_dir),
            tagger=tagger,
            tagger_batcher=batcher,
            **kwargs,
        )

    @property
    def capabilities(self) -> list[str]:
        """What this service can do, for `/v1/info`."""
        caps = ["classify", "stream"]
        if self.lm is not None:
            caps += ["describe", "ask"]
        if self.asr is not None:
            caps.append("transcribe")
        if self.tts is not None:
            caps.append("speak")
        return caps

    async def start(self) -> None:
        """Start the batchers (models are already loaded)."""
        self.tagger_batcher.start()
        for backend in (self.lm, self.asr, self.tts):
            if backend is not None:
                await backend.start()

    async def stop(self) -> None:
        """Stop batchers and release models."""
        for backend in (self.tts, self.asr, self.lm):
            if backend is not None:
                await backend.stop()
        await self.tagger_batcher.stop()
        await asyncio.to_thread(self.tagger.close)

    async def classify(
        self, samples: Samples, *, sensitivity: Sensitivity | None = None, stream: str | None = None
    ) -> tuple[list[SoundEvent], float]:
        """Run a whole clip through the tagger and the event logic; return (events, level)."""
        info = self.tagger.info
        key = stream or f"clip-{uuid.uuid4().hex}"
        windows = list(iter_windows(samples, info.window_seconds, info.hop_seconds, key))
        detections: list[dict[str, Detection]] = []
        # Chunks of one batch each: a long upload then interleaves fairly with live sources
        # instead of holding the queue, and stream-keyed caches see windows in order.
        step = self.tagger_batcher.max_batch
        try:
            for i in range(0, len(windows), step):
                chunk: Sequence[Window] = [w for _, w in windows[i : i + step]]
                detections.extend(await self.tagger_batcher.submit_many(chunk))
        finally:
            # A one-off clip's cached features would only push live sources out of the cache.
            forget = getattr(self.tagger, "forget", None)
            if forget is not None and stream is None:
                await asyncio.to_thread(forget, key)
        frames = to_frames(windows, detections)
        duration = samples.size / SAMPLE_RATE
        events = events_from_frames(
            frames,
            info.categories,
            duration=duration,
            sensitivity=sensitivity or self.config.sensitivity,
            gate_dbfs=self.config.gate_dbfs,
        )
        return events, dbfs(samples)
