"""HTTP API of speech recognition: `POST /v1/transcribe`."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import BodyPartReader, hdrs, web

from model_service import audio
from model_service.api.common import (
    SERVICE_KEY,
    expect_upload,
    loads_json,
    multipart_errors,
    multipart_parts,
    read_audio_body,
)
from model_service.detection.service import Service
from model_service.models.asr import (
    MAX_PHRASES,
    TranscriptionError,
    UnsupportedLanguageError,
    resolve_language,
)

_LOGGER = logging.getLogger(__name__)

# Text fields (language, phrases) are small; a phrase list of thousands of commands is a
# few hundred kB. Anything past this is not a phrase list.
MAX_FIELD_BYTES = 2 * 1024 * 1024
_CHUNK = 64 * 1024

# Speech to text is for utterances and recordings, not hours of audio: pocketsphinx's general
# model runs at about half real time on one core.
MAX_TRANSCRIBE_SECONDS = 600.0

NO_ASR_MESSAGE = (
    "no speech recognizer is loaded: start the service with --asr pocketsphinx (the default), "
    "--asr lm (with --lm) or --asr <Whisper model id or folder>"
)


def setup_asr(app: web.Application) -> None:
    """Register the speech recognition route."""
    app.router.add_post("/v1/transcribe", transcribe, expect_handler=expect_upload)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    """A multipart part's body, refused as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await part.read_chunk(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise audio.AudioTooLargeError(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_phrases(text: str) -> list[str]:
    """The `phrases` field: a JSON list of sentences (ValueError with a message otherwise)."""
    try:
        value = loads_json(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"phrases must be a JSON list of strings: {err.msg}") from err
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError("phrases must be a JSON list of strings")
    if len(value) > MAX_PHRASES:
        raise ValueError(f"at most {MAX_PHRASES} phrases are accepted, not {len(value)}")
    return value


async def _read_multipart(
    request: web.Request, limit: int
) -> tuple[bytes | None, str | None, str | None, str | None]:
    """(audio bytes, audio content type, phrases text, language) from a multipart body."""
    data: bytes | None = None
    content_type: str | None = None
    phrases: str | None = None
    language: str | None = None
    with multipart_errors():
        async for part in multipart_parts(request):
            if not isinstance(part, BodyPartReader):  # a nested multipart: not ours
                continue
            if part.name == "audio":
                content_type = part.headers.get(hdrs.CONTENT_TYPE)
                data = await _read_part(part, limit, "the audio upload")
            elif part.name == "phrases":
                raw = await _read_part(part, MAX_FIELD_BYTES, "the phrases field")
                phrases = raw.decode("utf-8", "replace")
            elif part.name == "language":
                raw = await _read_part(part, 1024, "the language field")
                language = raw.decode("utf-8", "replace").strip()
            else:
                await part.release()
    return data, content_type, phrases, language


async def transcribe(request: web.Request) -> web.Response:
    """Speech to text: multipart `audio` (+ `phrases`, `language`) or a raw audio body."""
    service: Service = request.app[SERVICE_KEY]
    recognizer = service.asr
    if recognizer is None:
        return _error(501, NO_ASR_MESSAGE)
    limit = service.config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        # Refuse before reading: a huge upload must not be pulled into memory.
        raise audio.AudioTooLargeError(
            f"upload of {request.content_length} bytes is over the limit of {limit} bytes"
        )

    phrases_text: str | None
    if request.content_type.startswith("multipart/"):
        data, content_type, phrases_text, language = await _read_multipart(request, limit)
        if data is None:
            return _error(400, "the multipart body needs an 'audio' part")
    else:
        data, content_type = None, None
        phrases_text = request.query.get("phrases")
        language = request.query.get("language")

    languages = recognizer.info.languages
    try:
        # Checked before decoding so a wrong language fails fast and cheaply.
        resolve_language(language, languages, None)
        phrases = parse_phrases(phrases_text) if phrases_text else None
    except UnsupportedLanguageError as err:
        return _error(400, str(err), languages=list(err.supported))
    except ValueError as err:
        return _error(400, str(err))

    if data is None:
        decoded = await read_audio_body(request, service)
    else:
        decoded = await audio.decode(data, content_type, ffmpeg=service.config.ffmpeg)
    if decoded.duration > MAX_TRANSCRIBE_SECONDS:
        raise audio.AudioTooLargeError(
            f"audio to transcribe may be at most {MAX_TRANSCRIBE_SECONDS:g} s long, "
            f"not {decoded.duration:.1f} s"
        )
    try:
        result = await recognizer.transcribe(decoded.samples, language=language, phrases=phrases)
    except UnsupportedLanguageError as err:
        return _error(400, str(err), languages=list(err.supported))
    except TranscriptionError as err:
        return _error(err.status, str(err))
    return web.json_response({"text": result.text, "language": result.language})
