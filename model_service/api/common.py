"""What every route module shares: the app keys, the error shape and reading audio uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import contextlib
import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from model_service import audio
from model_service.api.connections import ConnectionGuard
from model_service.detection.service import Service
from model_service.live.manager import StreamManager
from model_service.live.store import EventStore

SERVICE_KEY = web.AppKey("service", Service)
STREAMS_KEY = web.AppKey("streams", StreamManager)
STORE_KEY = web.AppKey("event_store", EventStore)
GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error answer in the one shape every endpoint uses."""
    return web.json_response({"error": message}, status=status, headers=headers)


async def read_audio_body(request: web.Request, service: Service) -> audio.Decoded:
    """Read an audio upload within the size limit and decode it."""
    limit = service.config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        # Refuse before reading: a huge upload must not be pulled into memory.
        raise audio.AudioTooLargeError(
            f"upload of {request.content_length} bytes is over the limit of {limit} bytes"
        )
    data = await audio.read_limited(request.content, limit)
    return await audio.decode(
        data, request.headers.get("Content-Type"), ffmpeg=service.config.ffmpeg
    )


def loads_json(text: str | bytes) -> Any:
    """`json.loads` where every malformed document is a ValueError, including one nested too
    deeply for the parser (`[` x 100000 raises RecursionError in the standard library)."""
    try:
        return json.loads(text)
    except RecursionError as err:
        raise ValueError("the JSON is nested too deeply") from err


@contextlib.contextmanager
def multipart_errors() -> Iterator[None]:
    """Around reading a multipart body's parts: aiohttp asserts when a part's body ends before
    its boundary ("Reading after EOF"), which is the client's malformed body, not our fault."""
    try:
        yield
    except AssertionError as err:
        raise web.HTTPBadRequest(
            text=f"malformed multipart body: it ends inside a part ({err})"
        ) from err


async def multipart_parts(request: web.Request) -> AsyncIterator[BodyPartReader | MultipartReader]:
    """The parts of a multipart body; a malformed body is the client's error (400), not ours."""
    try:
        reader = await request.multipart()
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"malformed multipart body: {err}") from err
    while True:
        try:
            part = await reader.next()
        except ValueError as err:
            raise web.HTTPBadRequest(text=f"malformed multipart body: {err}") from err
        if part is None:
            return
        yield part
