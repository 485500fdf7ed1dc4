"""What every route module shares: the app keys, the error shape and reading audio uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import contextlib
import hmac
import json
from typing import Any

from aiohttp import BodyPartReader, HttpVersion11, MultipartReader, hdrs, web

from model_service import audio, metrics
from model_service.api.connections import ConnectionGuard
from model_service.detection.service import Service
from model_service.live.manager import StreamManager
from model_service.live.store import EventStore

SERVICE_KEY = web.AppKey("service", Service)
STREAMS_KEY = web.AppKey("streams", StreamManager)
STORE_KEY = web.AppKey("event_store", EventStore)
GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


# The routes whose requests carry audio to decode and run through a model.
UPLOAD_ROUTES = frozenset(
    {"/v1/classify", "/v1/transcribe", "/v1/describe", "/v1/ask", "/v1/sounds/{id}/examples"}
)


class Admission:
    """Uploads in progress (one per application), and how long one takes."""

    def __init__(self) -> None:
        """Nothing in progress."""
        self.in_progress = 0
        self.seconds_per_upload = 1.0

    def took(self, seconds: float) -> None:
        """An upload finished after `seconds` (a running average, for Retry-After)."""
        self.seconds_per_upload += 0.1 * (seconds - self.seconds_per_upload)

    def refusal(self, limit: int) -> web.Response | None:
        """The 503 for an upload now, or None when it may go ahead."""
        if not limit or self.in_progress < limit:
            return None
        metrics.UPLOADS_REFUSED.inc()
        retry = max(1, round(self.seconds_per_upload * self.in_progress / limit))
        return json_error(
            503,
            f"{self.in_progress} uploads are being processed; retry in {retry} s",
            {"Retry-After": str(retry)},
        )


ADMISSION_KEY = web.AppKey("admission", Admission)


async def expect_upload(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` on an upload route: say 503 before the client sends its body
    when the uploads in progress are at the limit (to a client with the right token only),
    else 100 Continue as aiohttp would."""
    config = request.app[SERVICE_KEY].config
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"unknown Expect: {request.headers[hdrs.EXPECT]}")
    authorized = not config.token or hmac.compare_digest(
        request.headers.get(hdrs.AUTHORIZATION, "").encode(), f"Bearer {config.token}".encode()
    )
    if authorized:
        refused = request.app[ADMISSION_KEY].refusal(config.max_pending_uploads)
        if refused is not None:
            # The body is never sent: nothing to read before the next request, so close.
            refused.force_close()
            return refused
    if request.version >= HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


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


async def json_body(request: web.Request) -> Any:
    """A JSON request body; 415 unless sent as application/json, 400 unless JSON."""
    if request.content_type != "application/json":
        # A web page can POST text/plain across sites without asking first; it cannot send
        # application/json without a CORS preflight, which this service never grants.
        raise web.HTTPUnsupportedMediaType(
            text=json.dumps({"error": "send the body as Content-Type: application/json"}),
            content_type="application/json",
        )
    try:
        return await request.json(loads=loads_json)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be JSON"}), content_type="application/json"
        ) from None
