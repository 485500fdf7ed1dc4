"""`OpenAITranscriptionRecognizer`: speech sent to an OpenAI-compatible server, in one of the
two shapes such servers take:

- `POST {base}/audio/transcriptions`, as OpenAI's API and vLLM (Whisper and other speech
  models) serve it: the multipart form of vLLM's `TranscriptionRequest`, the audio as `file`
  (16-bit WAV here), `model`, `language` (ISO 639-1), `response_format=json`,
  `temperature=0`; the answer `{"text": ...}`;
- `POST {base}/chat/completions`, as Xiaomi's MiMo platform serves MiMo-V2.5-ASR
  (`mimo-v2.5-asr`): a user message whose content is one `input_audio` part with the WAV as
  a data URL, `asr_options: {"language": ...}`; the text in `choices[0].message.content` (a
  string, or a list of text parts). Models named MiMo ASR are asked this way.

Errors come as `{"error": {"message": ...}}` (OpenAI, vLLM) or `{"detail": ...}` (FastAPI).
A server that does not list its models (`/models` 404) is used with the `--asr-model` given.
"""

from __future__ import annotations

import asyncio
import base64
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
from model_service.models.openai_server import OpenAIServer, ServerError, error_text

_LOGGER = logging.getLogger(__name__)
PREFIX = "openai:"
# A transcript of the longest clip transcribed (30 s) fits in far fewer tokens.
MAX_TRANSCRIPT_TOKENS = 1024
# What Whisper-family servers and MiMo ASR transcribe; the server decides in the end and
# answers an error for a language it does not know, which reaches the caller as such.
OPENAI_ASR_LANGUAGES: tuple[str, ...] = (
    *("en", "zh", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "sv", "tr"),
    *("uk", "cs", "da", "fi", "el", "hu", "no", "ro", "ar", "he", "hi", "id", "vi", "th"),
)


class TranscriptionError(ServerError):
    """The transcription server failed or could not be reached (the message says which);
    `status` is 502, or 504 for a server that did not answer in time."""


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
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_queue=max_queue,
        )
        self.model = model
        self.info = self._make_info()

    @property
    def chat_shape(self) -> bool:
        """Whether the served model is MiMo ASR, asked through chat completions."""
        name = (self.model or "").lower()
        return "mimo" in name and "asr" in name

    def _make_info(self) -> AsrInfo:
        return AsrInfo(
            name=self.model or self.server.shown_url,
            backend="openai",
            languages=OPENAI_ASR_LANGUAGES,
            device="remote",
            extra={
                "url": self.server.shown_url,
                "endpoint": "chat/completions" if self.chat_shape else "audio/transcriptions",
            },
        )

    async def start(self) -> None:
        """Open the HTTP session."""
        await self.server.session()

    async def stop(self) -> None:
        """Close the HTTP session."""
        await self.server.close()

    async def verify(self) -> None:
        """Read the served model from `/models` (unless one was given) before `Ready`."""
        shown = self.server.shown_url
        try:
            card = await self.server.served(self.model, "--asr-model")
        except ServerError as err:
            await self.stop()
            raise AsrLoadError(
                f"the transcription server at {shown} cannot be used: {err}"
            ) from err
        self.model = str(card["id"])
        self.info = self._make_info()
        _LOGGER.info("Speech recognition by %s at %s", self.model, shown)

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
        self.server.admit("asr")
        wav = await asyncio.to_thread(to_wav_bytes, samples, SAMPLE_RATE)
        self.server.waiting += 1
        try:
            async with asyncio.timeout(self.server.timeout), self.server.slots:
                if self.chat_shape:
                    text = chat_text(await self._post_chat(wav, lang))
                else:
                    text = transcription_text(await self._post(wav, lang))
        except TimeoutError as err:
            raise TranscriptionError(
                f"the transcription server at {self.server.shown_url} did not answer within "
                f"{self.server.timeout:g} s",
                status=504,
            ) from err
        finally:
            self.server.waiting -= 1
        return Transcript(text.strip(), lang or "en")

    async def _post_chat(self, wav: bytes, language: str | None) -> Any:
        data_url = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "input_audio", "input_audio": {"data": data_url}}],
                }
            ],
            "max_tokens": MAX_TRANSCRIPT_TOKENS,
        }
        if language:
            body["asr_options"] = {"language": language}
        return await self._answer("chat/completions", json=body)

    async def _post(self, wav: bytes, language: str | None) -> Any:
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="speech.wav", content_type="audio/wav")
        if self.model:
            form.add_field("model", self.model)
        if language:
            form.add_field("language", language)
        form.add_field("response_format", "json")
        form.add_field("temperature", "0")
        return await self._answer("audio/transcriptions", data=form)

    async def _answer(self, path: str, **body: Any) -> Any:
        session = await self.server.session()
        url = f"{self.server.base_url}/{path}"
        try:
            async with session.post(url, headers=self.server.headers(), **body) as resp:
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
            raise TranscriptionError(str(self.server.unreachable(err))) from err


def transcription_text(data: Any) -> str:
    """The text of an `/audio/transcriptions` answer."""
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise TranscriptionError("the transcription server answered without a text")
    return text


def chat_text(data: Any) -> str:
    """The text of a chat-completions answer: a string, or a list of text parts."""
    choices = data.get("choices") if isinstance(data, dict) else None
    message = (
        choices[0].get("message")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict)
        else None
    )
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "") if isinstance(part, dict) else "" for part in content
        )
    if content is None and isinstance(message, dict):
        return ""  # nothing was said
    raise TranscriptionError("the transcription server answered without a message")
