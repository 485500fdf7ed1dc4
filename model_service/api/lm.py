"""HTTP endpoints of the audio LM: `POST /v1/describe` and `POST /v1/ask`.

Both answer `{"text": ...}` and take the audio in one of three ways:

- `multipart/form-data` with an `audio` file part (and, for ask, a `question` field);
- the audio file itself as the body (for ask, `?question=` in the query);
- JSON `{"source": id, "seconds": N}` (the last N seconds of a live source) or
  `{"event": seq}` (a stored event's clip), with `"question"` for ask.

501 when no audio LM is loaded, 400/413 for bad or oversized audio, 404 for an unknown
source or event, 409 for a source that has no audio yet, 503 with Retry-After when the LM
queue is full, 504 when the model does not answer within the request timeout and 502 when
an OpenAI-compatible LM server fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from model_service import audio
from model_service.api.common import (
    SERVICE_KEY,
    STORE_KEY,
    STREAMS_KEY,
    expect_upload,
    json_error,
    loads_json,
    multipart_errors,
    multipart_parts,
    read_audio_body,
)
from model_service.arrays import Array, Samples
from model_service.detection.service import Service
from model_service.live.store import StoreError
from model_service.models.lm import MAX_AUDIO_SECONDS, MAX_QUESTION_CHARS, AudioLM, LMError

DEFAULT_SOURCE_SECONDS = 10.0


class _InputError(Exception):
    """A request the handler answers with `status` and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _clip_to_samples(clip: bytes, service: Service) -> Array:
    """An event clip (WAV bytes) as float32 16 kHz mono."""
    decoded = await audio.decode(clip, "audio/wav", ffmpeg=service.config.ffmpeg)
    return decoded.samples


async def _from_json(request: web.Request, service: Service) -> tuple[Array, str | None]:
    try:
        body = await request.json(loads=loads_json)
    except (ValueError, UnicodeDecodeError) as err:
        raise _InputError(400, f"the body is not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise _InputError(400, 'send a JSON object: {"source": id, "seconds": N} or {"event": seq}')
    question = body.get("question")
    if question is not None and not isinstance(question, str):
        raise _InputError(400, "question must be a string")

    if "event" in body:
        seq = body["event"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise _InputError(400, "event must be an integer seq")
        if STORE_KEY not in request.app:
            raise _InputError(400, "this service keeps no event clips")
        try:
            clip = await request.app[STORE_KEY].get_clip(seq)
        except StoreError as err:
            raise _InputError(503, str(err)) from err
        if clip is None:
            raise _InputError(404, f"no clip for event {seq}: no such event, or its clip expired")
        return await _clip_to_samples(clip, service), question

    if "source" in body:
        source = body["source"]
        if not isinstance(source, str) or not source:
            raise _InputError(400, "source must be a source id")
        seconds = body.get("seconds", DEFAULT_SOURCE_SECONDS)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise _InputError(400, "seconds must be a number")
        if not 0 < seconds <= MAX_AUDIO_SECONDS:
            raise _InputError(400, f"seconds must be more than 0 and at most {MAX_AUDIO_SECONDS:g}")
        if STREAMS_KEY not in request.app:
            raise _InputError(400, "this service has no live sources")
        try:
            samples = request.app[STREAMS_KEY].recent_audio(source, float(seconds))
        except KeyError as err:
            raise _InputError(404, f"no source {source}") from err
        if samples.size == 0:
            raise _InputError(409, f"source {source} has no audio yet")
        return samples, question

    raise _InputError(400, 'send {"source": id, "seconds": N} or {"event": seq}, or audio')


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """A multipart part's bytes, refused as soon as they pass `limit`."""
    chunks: list[bytes] = []
    total = 0
    while chunk := await part.read_chunk(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise audio.AudioTooLargeError(f"upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _from_multipart(request: web.Request, service: Service) -> tuple[Array, str | None]:
    data: bytes | None = None
    content_type: str | None = None
    question: str | None = None
    limit = service.config.max_upload_bytes
    with multipart_errors():
        async for part in multipart_parts(request):
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "audio":
                content_type = part.headers.get("Content-Type")
                data = await _read_part(part, limit)
            elif part.name == "question":
                raw = await _read_part(part, MAX_QUESTION_CHARS * 4)
                question = raw.decode("utf-8", errors="replace")
    if data is None:
        raise _InputError(400, "the form has no audio part")
    # A browser labels a file part application/octet-stream; decode() then sniffs it.
    decoded = await audio.decode(data, content_type, ffmpeg=service.config.ffmpeg)
    return decoded.samples, question


async def _read_input(request: web.Request, service: Service) -> tuple[Array, str | None]:
    """The audio (and question, if given) of a describe/ask request, in any accepted form."""
    content_type = request.content_type
    if content_type == "application/json":
        return await _from_json(request, service)
    if content_type.startswith("multipart/"):
        return await _from_multipart(request, service)
    decoded = await read_audio_body(request, service)
    return decoded.samples, request.query.get("question")


Runner = Callable[[Any, Array, str | None], Awaitable[str]]


async def _handle(request: web.Request, run: Runner, *, needs_question: bool) -> web.Response:
    service = request.app[SERVICE_KEY]
    lm = service.lm
    if lm is None:
        return json_error(501, "no audio language model is loaded; start the service with --lm")
    try:
        samples, question = await _read_input(request, service)
    except _InputError as err:
        return json_error(err.status, str(err))
    if needs_question and not (question and question.strip()):
        return json_error(400, "a question is required (form field, JSON key or ?question=)")
    try:
        text = await run(lm, samples, question)
    except LMError as err:
        return json_error(err.status, str(err))
    except ValueError as err:
        if isinstance(err, audio.AudioError):
            raise  # the error middleware answers 400/413
        return json_error(400, str(err))
    return web.json_response({"text": text})


async def _describe(lm: AudioLM, samples: Samples, question: str | None) -> str:
    return await lm.describe(samples)


async def _ask(lm: AudioLM, samples: Samples, question: str | None) -> str:
    return await lm.ask(samples, question or "")


async def describe(request: web.Request) -> web.Response:
    """Caption audio: an upload, a live source's last seconds or an event's clip."""
    return await _handle(request, _describe, needs_question=False)


async def ask(request: web.Request) -> web.Response:
    """Answer a question about audio."""
    return await _handle(request, _ask, needs_question=True)


def setup_lm(app: web.Application) -> None:
    """Add the audio LM endpoints to the app."""
    app.router.add_post("/v1/describe", describe, expect_handler=expect_upload)
    app.router.add_post("/v1/ask", ask, expect_handler=expect_upload)
