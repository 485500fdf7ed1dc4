"""`POST /v1/speak`: text to speech by the speech model (MiMo-Audio), as a WAV file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import struct
from typing import Any

from aiohttp import web

from model_service import audio
from model_service.api.common import SERVICE_KEY, STORE_KEY, json_body, json_error
from model_service.arrays import Samples
from model_service.models.batcher import QueueFullError
from model_service.models.tts import (
    MAX_INSTRUCTION_CHARS,
    MAX_REFERENCE_SECONDS,
    MAX_SPEAK_CHARS,
    VOICES_BY_ID,
    SpeechError,
    SpeechRequest,
    language_of,
)

_LOGGER = logging.getLogger(__name__)
STREAMED_SIZE = 0xFFFFFFFF  # a WAV header's sizes while the length is not known yet
FIELDS = frozenset(
    {"text", "language", "voice", "instruction", "reference", "reference_event", "stream"}
)


class _BadRequestError(ValueError):
    """The request is wrong in a way the client can fix (answered 400)."""


def wav_header(rate: int, data_bytes: int = STREAMED_SIZE) -> bytes:
    """A 16-bit mono WAV header; with the default size, for a stream of unknown length
    (players and ffmpeg read such a file to its end)."""
    riff = STREAMED_SIZE if data_bytes == STREAMED_SIZE else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


async def _speech_request(request: web.Request, body: Any) -> tuple[SpeechRequest, bool]:
    service = request.app[SERVICE_KEY]
    tts = service.tts
    assert tts is not None
    if not isinstance(body, dict):
        raise _BadRequestError("the body must be a JSON object with a 'text'")
    unknown = set(body) - FIELDS
    if unknown:
        raise _BadRequestError(f"unknown fields: {', '.join(sorted(unknown))}")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _BadRequestError("'text' must be the words to say")
    if len(text) > MAX_SPEAK_CHARS:
        raise _BadRequestError(
            f"'text' may be at most {MAX_SPEAK_CHARS} characters, not {len(text)}"
        )
    language = body.get("language")
    if language is not None and not isinstance(language, str):
        raise _BadRequestError("'language' must be a language tag such as en or zh-CN")
    try:
        lang = language_of(language, tts.info.languages)
    except ValueError as err:
        raise _BadRequestError(str(err)) from err
    instruction = body.get("instruction")
    voice_id = body.get("voice")
    if voice_id is not None:
        voice = VOICES_BY_ID.get(voice_id) if isinstance(voice_id, str) else None
        if voice is None:
            raise _BadRequestError(f"'voice' must be one of {', '.join(VOICES_BY_ID)}")
        instruction = instruction or voice.instruction
    if instruction is not None:
        if not isinstance(instruction, str):
            raise _BadRequestError("'instruction' must be text, such as 'speak slowly and calmly'")
        if len(instruction) > MAX_INSTRUCTION_CHARS:
            raise _BadRequestError(
                f"'instruction' may be at most {MAX_INSTRUCTION_CHARS} characters"
            )
        instruction = instruction.strip() or None
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequestError("'stream' must be true or false")
    reference = await _reference(request, body)
    return (
        SpeechRequest(text=text, language=lang, instruction=instruction, reference=reference),
        stream,
    )


async def _reference(request: web.Request, body: dict[str, Any]) -> Samples | None:
    """The reference voice: base64 audio in `reference`, or an event's clip (`reference_event`)."""
    service = request.app[SERVICE_KEY]
    data: bytes | None = None
    if body.get("reference") is not None and body.get("reference_event") is not None:
        raise _BadRequestError("give 'reference' or 'reference_event', not both")
    if body.get("reference") is not None:
        if not isinstance(body["reference"], str):
            raise _BadRequestError("'reference' must be base64 audio")
        try:
            data = base64.b64decode(body["reference"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise _BadRequestError("'reference' must be base64 audio") from err
    elif body.get("reference_event") is not None:
        seq = body["reference_event"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise _BadRequestError("'reference_event' must be an event's number")
        store = request.app.get(STORE_KEY)
        data = await store.get_clip(seq) if store is not None else None
        if data is None:
            raise _BadRequestError(f"event {seq} has no stored clip")
    if data is None:
        return None
    decoded = await audio.decode(
        data, None, ffmpeg=service.config.ffmpeg, max_seconds=MAX_REFERENCE_SECONDS + 1
    )
    if decoded.duration > MAX_REFERENCE_SECONDS:
        raise _BadRequestError(
            f"the reference voice may be at most {MAX_REFERENCE_SECONDS:g} s long, "
            f"not {decoded.duration:.1f} s"
        )
    if decoded.duration < 1.0:
        raise _BadRequestError("the reference voice must be at least 1 s of speech")
    return decoded.samples


async def speak(request: web.Request) -> web.StreamResponse:
    """Text to speech: `{text, language?, voice?, instruction?, reference?, stream?}` -> WAV.

    Without `stream` the answer is one WAV file with exact sizes once the speech is made;
    with it, the WAV header goes out at once and each piece of speech follows as the model
    makes it (sizes marked unknown), so playback can start after the first piece.
    """
    service = request.app[SERVICE_KEY]
    if service.tts is None:
        return json_error(501, service.tts_reason or "no speech model is loaded")
    body = await json_body(request)
    try:
        speech, stream = await _speech_request(request, body)
    except _BadRequestError as err:
        return json_error(400, str(err))
    response: web.StreamResponse | None = None
    chunks: list[bytes] = []
    rate = 0
    try:
        # Closed at once when the client goes away: the request to the model ends with it.
        async with contextlib.aclosing(service.tts.speak(speech)) as pieces:
            async for rate, pcm in pieces:
                if not stream:
                    chunks.append(pcm)
                    continue
                if response is None:
                    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
                    response.enable_chunked_encoding()
                    await response.prepare(request)
                    await response.write(wav_header(rate))
                await response.write(pcm)
    except (SpeechError, QueueFullError) as err:
        if response is not None:
            # The status has gone out: cut the connection, so that the client sees the speech
            # end early rather than complete (a final chunk would say it was all).
            _LOGGER.warning("Speech stopped part way: %s", err)
            if request.transport is not None:
                request.transport.abort()
            return response
        if isinstance(err, QueueFullError):
            raise
        return json_error(err.status, str(err))
    if response is not None:
        await response.write_eof()
        return response
    data = b"".join(chunks)
    return web.Response(body=wav_header(rate, len(data)) + data, content_type="audio/wav")


def setup_speech(app: web.Application) -> None:
    """Add the text-to-speech route."""
    app.router.add_post("/v1/speak", speak)
