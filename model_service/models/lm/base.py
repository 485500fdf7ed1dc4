"""What every audio LM backend shares: requests, limits, errors, the `AudioLM` protocol and
the describe / ask / transcribe logic on top of one generate call."""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from model_service.arrays import Array, Samples
from model_service.audio import AudioError
from model_service.redaction import redact_url

if TYPE_CHECKING:
    pass

_LOGGER = logging.getLogger(__name__)
SAMPLE_RATE = 16000
MAX_AUDIO_SECONDS = 30.0
"""Longest clip an audio LM is given: MiDashengLM's evaluation clips and Qwen2-Audio's
Whisper encoder both top out at 30 s."""
MAX_QUESTION_CHARS = 2000
TASK_CAPTION = "caption"
TASK_ASK = "ask"
TASK_TRANSCRIBE = "transcribe"


class LMError(RuntimeError):
    """Generation failed; `status` is the HTTP status the API answers with."""

    status = 502


class LMTimeoutError(LMError):
    """The model (or the LM server) did not answer within the request timeout."""

    status = 504


class LMLoadError(RuntimeError):
    """An audio LM could not be loaded; the message names the problem."""


@dataclass(frozen=True, slots=True)
class LMRequest:
    """One request: 16 kHz mono samples, the task and its text (question or language)."""

    audio: Samples
    task: str
    text: str | None = None


def parse_lm_spec(spec: str) -> tuple[str, str]:
    """Split `--lm` into (backend, target): ("openai", base URL) or ("transformers", id/folder)."""
    if spec.startswith("openai:"):
        url = spec.removeprefix("openai:").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise LMLoadError(
                f"--lm {redact_url(spec)}: expected openai:<base URL>, "
                "e.g. openai:http://127.0.0.1:8000/v1"
            )
        return "openai", url
    return "transformers", spec


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def strip_thinking(text: str) -> str:
    """An answer without its reasoning: Qwen3 decoders (MiDashengLM-0.6B) may think aloud.

    Whole `<think>...</think>` sections go; so does a section the token limit cut off
    (`<think>` with no end), and the reasoning before a lone `</think>` (a chat template
    that opens the section itself).
    """
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text.strip()


def check_audio(samples: Samples) -> Array:
    """Validate a clip for an audio LM: non-empty, at most `MAX_AUDIO_SECONDS`, finite."""
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise AudioError("audio is empty")
    if audio.size > MAX_AUDIO_SECONDS * SAMPLE_RATE:
        raise AudioError(
            f"audio for the language model may be at most {MAX_AUDIO_SECONDS:g} s long, "
            f"not {audio.size / SAMPLE_RATE:.1f} s"
        )
    return np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)


@dataclass(frozen=True, kw_only=True)
class LMInfo:
    """What a loaded audio LM is, for `/v1/info`."""

    name: str
    backend: str
    family: str
    device: str | None = None
    max_new_tokens: int = 128
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "name": self.name,
            "backend": self.backend,
            "family": self.family,
            "device": self.device,
            "max_new_tokens": self.max_new_tokens,
            **self.extra,
        }


class AudioLM(Protocol):
    """An audio LM backend as the service uses it."""

    info: LMInfo

    async def start(self) -> None:
        """Start batchers / sessions (the model is already loaded)."""

    async def stop(self) -> None:
        """Stop and release resources."""

    async def verify(self) -> None:
        """Prove before `Ready` that the model answers audio; raise LMLoadError if not."""

    async def describe(self, samples: Samples) -> str:
        """A caption of the clip."""
        ...

    async def ask(self, samples: Samples, question: str) -> str:
        """An answer to a question about the clip."""
        ...

    async def transcribe(self, samples: Samples, language: str | None = None) -> str:
        """The speech in the clip as text, with the model's ASR prompt."""
        ...


class AudioLMBase:
    """describe / ask / transcribe on top of one `_generate(LMRequest)`."""

    info: LMInfo
    timeout: float

    async def _generate(self, request: LMRequest) -> str:
        raise NotImplementedError

    async def verify(self) -> None:
        """Nothing to prove beyond loading (an in-process model ran a probe at load)."""

    async def describe(self, samples: Samples) -> str:
        """A caption of the clip."""
        return await self._generate(LMRequest(check_audio(samples), TASK_CAPTION))

    async def ask(self, samples: Samples, question: str) -> str:
        """An answer to a question about the clip."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        return await self._generate(LMRequest(check_audio(samples), TASK_ASK, question))

    async def transcribe(self, samples: Samples, language: str | None = None) -> str:
        """The speech in the clip as text, with the model's ASR prompt.

        `language` is an ISO 639-1 code or a BCP 47 tag ("en", "en-US"); None lets the
        model decide.
        """
        return await self._generate(LMRequest(check_audio(samples), TASK_TRANSCRIBE, language))
