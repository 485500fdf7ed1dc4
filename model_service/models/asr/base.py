"""What every speech recognizer shares: the `SpeechRecognizer` protocol, its answer, its
description, its errors and the language rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import logging
from typing import Any, Protocol

from model_service.arrays import Samples

_LOGGER = logging.getLogger(__name__)
SAMPLE_RATE = 16000
# Languages the audio LM's ASR prompt is used with when the LM does not say otherwise:
# MiDashengLM and Qwen2-Audio were trained for English and Chinese speech recognition.
DEFAULT_LM_LANGUAGES: tuple[str, ...] = ("en", "zh")
MAX_PHRASES = 20000


class AsrLoadError(RuntimeError):
    """A speech recognizer could not be loaded; the message names the problem."""


class UnsupportedLanguageError(ValueError):
    """The requested language is not one the loaded recognizer supports."""

    def __init__(self, language: str, supported: Sequence[str]) -> None:
        """Keep the supported languages so API answers can list them."""
        self.language = language
        self.supported = tuple(supported)
        super().__init__(
            f"language {language!r} is not supported by this speech recognizer; "
            f"supported: {', '.join(self.supported)}"
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, and in which language."""

    text: str
    language: str


@dataclass(frozen=True, kw_only=True)
class AsrInfo:
    """What a loaded recognizer is, for `/v1/info` and Wyoming's describe."""

    name: str
    backend: str
    languages: tuple[str, ...]
    device: str = "cpu"
    phrases: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "name": self.name,
            "backend": self.backend,
            "languages": list(self.languages),
            "device": self.device,
            "phrases": self.phrases,
            **self.extra,
        }


class SpeechRecognizer(Protocol):
    """A speech-to-text backend as the service uses it."""

    info: AsrInfo

    async def start(self) -> None:
        """Start worker threads / batchers (the model is already loaded)."""

    async def stop(self) -> None:
        """Stop and release resources."""

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech in `samples` (float32 mono 16 kHz) as text.

        `phrases`, when the backend supports them, are the sentences expected (voice
        commands); backends that cannot use them ignore them.
        """
        ...


def resolve_language(
    language: str | None, supported: Sequence[str], default: str | None
) -> str | None:
    """Map a requested language ("en", "en-US", "EN_gb") onto a supported code.

    Home Assistant sends BCP 47 tags ("en-US") while models list bare codes ("en"), so the
    primary subtag is tried after the full tag. None or "" gives `default`. Raises
    UnsupportedLanguageError listing `supported` for anything else.
    """
    if language is None or not language.strip():
        return default
    tag = language.strip().lower().replace("_", "-")
    if tag in supported:
        return tag
    primary = tag.split("-", 1)[0]
    if primary in supported:
        return primary
    raise UnsupportedLanguageError(language, supported)
