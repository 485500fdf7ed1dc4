"""`LMRecognizer`: speech recognition with the audio LM's ASR prompt."""

from __future__ import annotations

from collections.abc import Sequence
import logging

from model_service.arrays import Samples
from model_service.models.asr.base import (
    DEFAULT_LM_LANGUAGES,
    AsrInfo,
    Transcript,
    resolve_language,
)
from model_service.models.lm import AudioLM

_LOGGER = logging.getLogger(__name__)


class LMRecognizer:
    """Speech recognition with the loaded audio LM's ASR prompt."""

    def __init__(self, lm: AudioLM, languages: Sequence[str] = DEFAULT_LM_LANGUAGES) -> None:
        """Wrap a loaded audio LM (its lifecycle belongs to the service, not to this)."""
        self.lm = lm
        self.info = AsrInfo(
            name=lm.info.name,
            backend="lm",
            languages=tuple(languages),
            device=lm.info.device or "remote",
        )

    async def start(self) -> None:
        """Nothing to start: the service starts the LM itself."""

    async def stop(self) -> None:
        """Nothing to stop: the service stops the LM itself."""

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech to text through the LM. `phrases` are not used."""
        lang = resolve_language(language, self.info.languages, self.info.languages[0])
        assert lang is not None
        text = await self.lm.transcribe(samples, lang)
        return Transcript(text.strip(), lang)
