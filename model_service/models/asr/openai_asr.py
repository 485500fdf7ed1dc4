"""`OpenAITranscriptionRecognizer`: speech sent to an OpenAI-compatible transcription server
(`POST {base}/audio/transcriptions`), as vLLM serves Whisper and speech recognisers such as
Xiaomi's MiMo ASR, and as OpenAI's own API does.

The request is the multipart form of OpenAI's API and vLLM's `TranscriptionRequest`: the
audio as `file` (16-bit WAV here), `model`, `language` (ISO 639-1), `response_format=json`
and `temperature=0`. The answer is `{"text": ...}`; errors come as
`{"error": {"message": ...}}` (OpenAI, vLLM) or `{"detail": ...}` (FastAPI).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
from typing import Any

import aiohttp

from model_service.arrays import Samples
from model_service.audio import to_wav_bytes
from model_service.models.asr.base import (
    SAMPLE_RATE,
    AsrInfo,
    AsrLoadError,
    Transcript,
    resolve_language,
)
from model_service.models.batcher import QueueFullError
from model_service.models.lm.remote import error_text
from model_service.redaction import redact_text, redact_url

_LOGGER = logging.getLogger(__name__)
PREFIX = "openai:"
# What Whisper-family servers and MiMo ASR transcribe; the server decides in the end and
# answers an error for a language it does not know, which reaches the caller as such.
OPENAI_ASR_LANGUAGES: tuple[str, ...] = (
    *("en", "zh", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "tr"),
    *("uk", "cs", "da", "fi", "el", "hu", "no", "ro", "ar", "he", "hi", "id", "vi", "th"),
)


class TranscriptionError(RuntimeError):
    """The transcription server failed or could not be reached (the message says which).

    `status` is the HTTP status the service answers with: 502 for a failing server, 504
    for one that did not answer in time.
    """

    def __init__(self, message: str, status: int = 502) -> None:
        """Keep the status for the API's answer."""
        super().__init__(message)
        self.status = status


def openai_asr_url(spec: str | None) -> str | None:
    """The base URL of `--asr openai:<base url>`, or None when `spec` names another backend."""
    if spec is None or not spec.strip().lower().startswith(PREFIX):
        return None
    url = spec.strip()[len(PREFIX) :].strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AsrLoadError(
            f"--asr {PREFIX}<base url> needs an http(s) URL such as "
            f"{PREFIX}http://gpu-box:8001/v1, not {url!r}"
        )
    return url


class OpenAITranscriptionRecognizer:
    """Open-vocabulary speech recognition by an OpenAI-compatible transcription server."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 16,
        max_queue: int = 256,
    ) -> None:
        """Remember the server; `verify` asks it for its model before the service is ready."""
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(max_concurrency)
        self._waiting = 0
        self._session: aiohttp.ClientSession | None = None
        self.info = self._make_info()

    def _make_info(self) -> AsrInfo:
        return AsrInfo(
            name=self.model or self.shown_url,
            backend="openai",
            languages=OPENAI_ASR_LANGUAGES,
            device="remote",
            extra={"url": self.shown_url},
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def start(self) -> None:
        """Open the HTTP session."""
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def verify(self) -> None:
        """Read the served model from `/models` (unless one was given) before `Ready`."""
        await self.start()
        assert self._session is not None
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.get(
                    f"{self.base_url}/models", headers=self._headers()
                ) as resp:
                    if resp.status >= 400:
                        raise TranscriptionError(f"it answered {resp.status} to /models")
                    data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, TranscriptionError) as err:
            await self.stop()
            reason = redact_text(str(err), self.base_url) or "no answer"
            raise AsrLoadError(
                f"the transcription server at {self.shown_url} cannot be used: {reason}"
            ) from err
        cards = data.get("data") if isinstance(data, dict) else None
        names = [str(c.get("id")) for c in cards or () if isinstance(c, dict) and c.get("id")]
        if self.model is None:
            if not names:
                await self.stop()
                raise AsrLoadError(
                    f"the transcription server at {self.shown_url} lists no model; set --asr-model"
                )
            self.model = names[0]
        elif names and self.model not in names:
            await self.stop()
            raise AsrLoadError(
                f"the transcription server at {self.shown_url} serves {', '.join(names)}, "
                f"not {self.model}"
            )
        self.info = self._make_info()
        _LOGGER.info("Speech recognition by %s at %s", self.model, self.shown_url)

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """The server's text for `samples`; `phrases` are not used (open vocabulary)."""
        del phrases
        lang = resolve_language(language, self.info.languages, None)
        if samples.size == 0:
            return Transcript("", lang or "en")
        if self._waiting >= self.max_queue:
            raise QueueFullError("asr", 1.0)
        await self.start()
        assert self._session is not None
        wav = await asyncio.to_thread(to_wav_bytes, samples, SAMPLE_RATE)
        self._waiting += 1
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                data = await self._post(self._session, wav, lang)
        except TimeoutError as err:
            raise TranscriptionError(
                f"the transcription server at {self.shown_url} did not answer within "
                f"{self.timeout:g} s",
                status=504,
            ) from err
        finally:
            self._waiting -= 1
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise TranscriptionError(
                f"the transcription server at {self.shown_url} answered without a text"
            )
        answered = data.get("language")
        if lang is None and isinstance(answered, str) and answered:
            # verbose_json-style servers name the language they heard ("english" or "en").
            lang = answered.lower()[:2] if len(answered) > 3 else answered.lower()
        return Transcript(text.strip(), lang or "en")

    async def _post(self, session: aiohttp.ClientSession, wav: bytes, language: str | None) -> Any:
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="speech.wav", content_type="audio/wav")
        if self.model:
            form.add_field("model", self.model)
        if language:
            form.add_field("language", language)
        form.add_field("response_format", "json")
        form.add_field("temperature", "0")
        url = f"{self.base_url}/audio/transcriptions"
        try:
            async with session.post(url, data=form, headers=self._headers()) as resp:
                if resp.status >= 400:
                    raise TranscriptionError(
                        f"the transcription server answered {resp.status}: {await error_text(resp)}"
                    )
                try:
                    return await resp.json(content_type=None)
                except ValueError as err:
                    raise TranscriptionError(
                        "the transcription server sent a non-JSON answer"
                    ) from err
        except aiohttp.ClientError as err:
            reason = redact_text(str(err), self.base_url)
            raise TranscriptionError(
                f"cannot reach the transcription server at {self.shown_url}: {reason}"
            ) from err
