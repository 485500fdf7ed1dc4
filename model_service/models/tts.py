"""Text to speech through an audio model that speaks: Xiaomi's MiMo-Audio-7B-Instruct served by
vLLM-Omni behind its OpenAI-compatible chat-completions endpoint.

The request follows vLLM-Omni's MiMo-Audio examples (examples/online_serving/mimo_audio and
examples/offline_inference/mimo_audio/message_convert.py), with the model's own chat
template on the server:

- the user turn is a TTS task prompt in the text's language, a colon and the text
  ("Please convert this text to speech: Dinner is ready"); a voice instruction follows the
  text in parentheses, with the style system prompt the examples use;
- a reference voice goes in the system turn as an `audio_url` data URL after the timbre
  prompt;
- `modalities: ["audio"]` asks for the speech output only.

The answer comes as the server sends it: with `stream: true`, server-sent events whose
chunks have `"modality": "audio"` and a base64 WAV (24 kHz from MiMo-Audio) in
`choices[0].delta.content`, one piece of the speech per chunk; without streaming, a choice
whose `message.audio.data` is the whole WAV. Both are read here; each piece is handed on as
16-bit PCM as soon as it arrives, so the first words can play before the last are made.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
import io
import json
import logging
import re
from typing import Any, Protocol

import aiohttp
import numpy as np
import soundfile as sf

from model_service.arrays import Samples
from model_service.audio import to_wav_bytes
from model_service.models.lm.families import family_for_served_model
from model_service.models.openai_server import OpenAIServer, ServerError, error_text

_LOGGER = logging.getLogger(__name__)

PREFIX = "openai:"
MAX_SPEAK_CHARS = 1000
MAX_INSTRUCTION_CHARS = 300
MAX_REFERENCE_SECONDS = 30.0
# Speech longer than this is cut off (and said so in the log): a runaway generation must
# not fill the memory of the service or of the client.
MAX_SPEECH_SECONDS = 300.0
# A server-sent event's line (one base64 WAV piece) may be at most this long.
MAX_EVENT_BYTES = 64 * 1024 * 1024
LANGUAGES: tuple[str, ...] = ("en", "zh")
# The task prompts of MiMo-Audio's TTS examples, by language.
TTS_PROMPTS: Mapping[str, str] = {
    "en": "Please convert this text to speech",
    "zh": "请将这段文字转换为语音",
}
# The style and timbre system prompts of the same examples (in Chinese there too).
STYLE_SYSTEM_PROMPT = "你需要根据指定的风格指令和文本内容来生成语音。"
TIMBRE_SYSTEM_PROMPT = (
    "你需要根据指定的风格指令和文本内容来生成和语音prompt具有相同音色的语音。你的音色应该是："  # noqa: RUF001 - the model was trained on this prompt
)


@dataclass(frozen=True, kw_only=True)
class Voice:
    """A named speaking style: an instruction for the model, or none (its own voice)."""

    id: str
    name: str
    instruction: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {"id": self.id, "name": self.name, "instruction": self.instruction}


VOICES: tuple[Voice, ...] = (
    Voice(id="default", name="Default"),
    Voice(id="calm", name="Calm", instruction="Speak calmly and slowly, in a soft voice."),
    Voice(id="cheerful", name="Cheerful", instruction="Speak in a cheerful, lively voice."),
    Voice(
        id="announcer",
        name="Announcer",
        instruction="Speak clearly and firmly, like an announcement.",
    ),
    Voice(id="whisper", name="Whisper", instruction="Whisper quietly."),
)
VOICES_BY_ID: Mapping[str, Voice] = {v.id: v for v in VOICES}


class SpeechSynthesizer(Protocol):
    """A text-to-speech backend as the service uses it."""

    info: TtsInfo

    async def start(self) -> None:
        """Open connections."""

    async def stop(self) -> None:
        """Close them."""

    def speak(self, request: SpeechRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        """(sample rate, 16-bit mono PCM) pieces of the speech as they are made."""
        ...


class TtsLoadError(RuntimeError):
    """A speech synthesizer cannot be used; the message says why."""


class SpeechError(ServerError):
    """Synthesis failed; `status` is the HTTP status the service answers with (502, or 504
    for a server that stopped sending)."""


@dataclass(frozen=True, kw_only=True)
class SpeechRequest:
    """What to say, and how."""

    text: str
    language: str = "en"
    instruction: str | None = None
    reference: Samples | None = None  # float32 mono 16 kHz: the voice to speak in


@dataclass(frozen=True, kw_only=True)
class TtsInfo:
    """What a speech synthesizer is, for `/v1/info`."""

    name: str
    backend: str
    languages: tuple[str, ...] = LANGUAGES
    voices: tuple[Voice, ...] = VOICES
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "available": True,
            "name": self.name,
            "backend": self.backend,
            "languages": list(self.languages),
            "voices": [v.as_dict() for v in self.voices],
            "reference_voice": True,
            **self.extra,
        }


def tts_url(spec: str | None) -> str | None:
    """The base URL of `--tts openai:<base url>`; None for "none", "lm" or nothing."""
    if spec is None or spec.strip().lower() in ("", "none", "off", "lm"):
        return None
    value = spec.strip()
    if not value.lower().startswith(PREFIX):
        raise TtsLoadError(
            f'--tts takes "openai:<base url>" (a vLLM-Omni server with MiMo-Audio), "lm" or '
            f'"none", not {value!r}'
        )
    url = value[len(PREFIX) :].strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TtsLoadError(f"--tts {PREFIX}<base url> needs an http(s) URL, not {url!r}")
    return url


def speech_messages(request: SpeechRequest) -> list[dict[str, Any]]:
    """The chat messages of a TTS request in MiMo-Audio's conventions."""
    language = request.language if request.language in TTS_PROMPTS else "en"
    text = request.text.strip()
    # The examples capitalise text that is all one case ("dinner is ready").
    if text.isupper() or text.islower():
        text = text.capitalize()
    user = f"{TTS_PROMPTS[language]}: {text}"
    if request.instruction:
        user += f"({request.instruction.strip()})"
    messages: list[dict[str, Any]] = []
    if request.reference is not None:
        wav = base64.b64encode(to_wav_bytes(request.reference, 16000)).decode("ascii")
        messages.append(
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": TIMBRE_SYSTEM_PROMPT},
                    {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{wav}"}},
                ],
            }
        )
    elif request.instruction:
        messages.append({"role": "system", "content": STYLE_SYSTEM_PROMPT})
    messages.append({"role": "user", "content": [{"type": "text", "text": user}]})
    return messages


def wav_piece(data: bytes) -> tuple[int, bytes]:
    """A WAV piece of the answer as (sample rate, 16-bit mono PCM); SpeechError if not audio."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise SpeechError(
            f"the speech server sent audio that is not a readable WAV: {err}"
        ) from err
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    pcm = (np.clip(np.nan_to_num(mono), -1.0, 1.0) * 32767.0).astype("<i2")
    return int(rate), pcm.tobytes()


_DATA_URL = re.compile(r"^data:[\w/+.-]+;base64,", re.ASCII)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(_DATA_URL.sub("", value), validate=False)
    except (ValueError, TypeError) as err:
        raise SpeechError("the speech server sent audio that is not base64") from err


def audio_pieces_of_answer(data: Any) -> list[str]:
    """The base64 audio of a non-streamed chat-completions answer (`message.audio.data`)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    pieces = []
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        audio = message.get("audio") if isinstance(message, dict) else None
        if isinstance(audio, dict) and isinstance(audio.get("data"), str) and audio["data"]:
            pieces.append(audio["data"])
    return pieces


def audio_piece_of_chunk(chunk: Any) -> str | None:
    """The base64 audio of one streamed chunk, or None for a text or empty chunk.

    vLLM-Omni marks a chunk's output with a top-level `modality`; an audio chunk carries
    its WAV in `choices[0].delta.content`.
    """
    if not isinstance(chunk, dict) or chunk.get("modality") != "audio":
        return None
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            return content
    return None


class OpenAISpeechSynthesizer:
    """Speech from MiMo-Audio behind a vLLM-Omni OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_concurrency: int = 8,
        max_queue: int = 64,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember the server; `verify` checks that it serves a model that speaks."""
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_queue=max_queue,
        )
        self.model = model
        self.generation = dict(generation or {})
        self.info = self._make_info()

    def _make_info(self) -> TtsInfo:
        shown = self.server.shown_url
        return TtsInfo(name=self.model or shown, backend="openai", extra={"url": shown})

    async def start(self) -> None:
        """Open the HTTP session."""
        await self.server.session()

    async def stop(self) -> None:
        """Close the HTTP session."""
        await self.server.close()

    async def verify(self) -> None:
        """Check, before `Ready`, that the server serves a model that generates speech."""
        shown = self.server.shown_url
        try:
            card = await self.server.served(self.model, "--tts-model")
        except ServerError as err:
            await self.stop()
            raise TtsLoadError(f"the speech server at {shown} cannot be used: {err}") from err
        if not family_for_served_model(card).speaks:
            await self.stop()
            raise TtsLoadError(
                f"the model {card['id']} at {shown} does not generate speech; "
                "serve MiMo-Audio-7B-Instruct with vLLM-Omni (see README)"
            )
        self.model = str(card["id"])
        self.info = self._make_info()
        _LOGGER.info("Speech synthesis by %s at %s", self.model, shown)

    async def speak(self, request: SpeechRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        """(sample rate, 16-bit mono PCM) pieces of the speech, as the server makes them.

        The wait for each piece is bounded by the timeout (aiohttp's read timeout, so the
        time the caller takes between pieces never counts).
        """
        self.server.admit("tts")
        body = {
            **self.generation,
            "model": self.model,
            "messages": await asyncio.to_thread(speech_messages, request),
            "modalities": ["audio"],
            "stream": True,
        }
        self.server.waiting += 1
        try:
            async with self.server.slots:
                async for piece in self._pieces(body):
                    yield piece
        except TimeoutError as err:
            raise SpeechError(
                f"the speech server at {self.server.shown_url} sent nothing for "
                f"{self.server.timeout:g} s",
                status=504,
            ) from err
        except aiohttp.ClientError as err:
            raise SpeechError(str(self.server.unreachable(err))) from err
        finally:
            self.server.waiting -= 1

    async def _pieces(self, body: dict[str, Any]) -> AsyncIterator[tuple[int, bytes]]:
        session = await self.server.session()
        url = f"{self.server.base_url}/chat/completions"
        wait = aiohttp.ClientTimeout(
            total=None, sock_connect=self.server.timeout, sock_read=self.server.timeout
        )
        rate: int | None = None
        seconds = 0.0
        headers = self.server.headers("text/event-stream, application/json")
        async with session.post(url, json=body, headers=headers, timeout=wait) as resp:
            if resp.status >= 400:
                raise SpeechError(
                    f"the speech server answered {resp.status}: {await error_text(resp)}"
                )
            encoded = (
                self._events(resp)
                if resp.content_type == "text/event-stream"
                else self._whole(resp)
            )
            async for b64 in encoded:
                piece_rate, pcm = await asyncio.to_thread(wav_piece, _b64(b64))
                if rate is None:
                    rate = piece_rate
                elif piece_rate != rate:
                    raise SpeechError(
                        f"the speech server changed its sample rate from {rate} to "
                        f"{piece_rate} Hz within one answer"
                    )
                seconds += len(pcm) / 2 / rate
                if seconds > MAX_SPEECH_SECONDS:
                    _LOGGER.warning(
                        "Speech cut off after %.0f s: the speech server went on", seconds
                    )
                    return
                if pcm:
                    yield rate, pcm
        if rate is None:
            raise SpeechError(
                f"the speech server at {self.server.shown_url} answered without speech"
            )

    async def _whole(self, resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
        try:
            data = await resp.json(content_type=None)
        except ValueError as err:
            raise SpeechError("the speech server sent a non-JSON answer") from err
        for piece in audio_pieces_of_answer(data):
            yield piece

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """The audio of each server-sent event, lines bounded by MAX_EVENT_BYTES."""
        buffer = bytearray()
        async for block in resp.content.iter_any():
            buffer += block
            if len(buffer) > MAX_EVENT_BYTES and b"\n" not in buffer:
                raise SpeechError("the speech server sent an event over the size limit")
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end]).strip()
                del buffer[: end + 1]
                piece = _event_audio(line)
                if piece is _DONE:
                    return
                if isinstance(piece, str):
                    yield piece
        piece = _event_audio(bytes(buffer).strip())
        if isinstance(piece, str):
            yield piece


_DONE = object()


def _event_audio(line: bytes) -> str | object | None:
    """A server-sent event line: its audio, _DONE at the end, None otherwise."""
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return _DONE
    try:
        chunk = json.loads(payload)
    except ValueError as err:
        raise SpeechError("the speech server sent an event that is not JSON") from err
    if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
        message = str(chunk["error"].get("message") or "error")[:300]
        raise SpeechError(f"the speech server failed: {message}")
    return audio_piece_of_chunk(chunk)


def language_of(tag: str | None, languages: Sequence[str] = LANGUAGES) -> str:
    """ "en-US" -> "en"; "zh-Hans" -> "zh"; ValueError for one the model does not speak."""
    if tag is None or not tag.strip():
        return languages[0]
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    if primary not in languages:
        raise ValueError(
            f"language {tag!r} is not one the speech model speaks; use {', '.join(languages)}"
        )
    return primary


async def tts_from_config(
    spec: str | None,
    lm: Any,
    *,
    model: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,  # noqa: ASYNC109 - the speech server's answer time, kept
) -> tuple[OpenAISpeechSynthesizer | None, str | None]:
    """The speech synthesizer `--tts` asks for, verified, or (None, why there is none).

    `--tts openai:<base url>` is a vLLM-Omni server of its own; without `--tts` (or with
    `--tts lm`) the audio LM speaks when it is a model that can (MiMo-Audio). A server that
    is named but cannot be used stops the start (TtsLoadError), as the LM's does.
    """
    if spec is not None and spec.strip().lower() in ("none", "off"):
        return None, "speech synthesis is switched off (--tts none)"
    url = tts_url(spec)
    if url is not None:
        synthesizer = OpenAISpeechSynthesizer(url, model=model, api_key=api_key, timeout=timeout)
        await synthesizer.verify()
        return synthesizer, None
    family = getattr(lm, "family", None)
    if lm is not None and lm.info.backend == "openai" and family is not None and family.speaks:
        synthesizer = OpenAISpeechSynthesizer(
            lm.base_url, model=lm.model, api_key=lm.api_key, timeout=timeout
        )
        await synthesizer.verify()
        return synthesizer, None
    why = "no model that generates speech is loaded"
    if lm is not None:
        why = f"the audio LM {lm.info.name} ({lm.info.family}) does not generate speech"
    return None, (
        f"{why}: serve MiMo-Audio-7B-Instruct with vLLM-Omni and start the service with "
        "--tts openai:<its base URL>"
    )
