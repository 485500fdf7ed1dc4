"""HTTP API of taught sounds: make one, teach it by example, rename, clear and delete it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from model_service import audio
from model_service.api.common import (
    SERVICE_KEY,
    STORE_KEY,
    STREAMS_KEY,
    expect_upload,
    json_body,
    json_error,
    read_audio_body,
)
from model_service.arrays import Array
from model_service.live.sounds import SoundBook, SoundConflictError, SoundError
from model_service.live.store import StoreError
from model_service.taught import MAX_SECONDS

DEFAULT_SECONDS = 5.0


def setup_sounds(app: web.Application) -> None:
    """Add the taught-sound routes."""
    app.router.add_get("/v1/sounds", list_sounds)
    app.router.add_post("/v1/sounds", create_sound)
    app.router.add_patch("/v1/sounds/{id}", rename_sound)
    app.router.add_delete("/v1/sounds/{id}", delete_sound)
    app.router.add_post("/v1/sounds/{id}/examples", add_example, expect_handler=expect_upload)
    app.router.add_delete("/v1/sounds/{id}/examples", clear_examples)


def _book(request: web.Request) -> SoundBook:
    return request.app[STREAMS_KEY].sounds


def _unknown(request: web.Request) -> web.Response:
    return json_error(404, f"no taught sound {request.match_info['id']!r}")


def _refusal(err: SoundError) -> web.Response:
    return json_error(409 if isinstance(err, SoundConflictError) else 400, str(err))


async def list_sounds(request: web.Request) -> web.Response:
    """Every taught sound."""
    return web.json_response({"sounds": _book(request).describe()})


async def create_sound(request: web.Request) -> web.Response:
    """Make a sound to teach (`{"name": ...}`)."""
    try:
        sound = await _book(request).create(await json_body(request))
    except SoundError as err:
        return _refusal(err)
    except OSError as err:
        return json_error(503, f"the sound could not be saved: {err}")
    return web.json_response(sound.as_dict(), status=201)


async def rename_sound(request: web.Request) -> web.Response:
    """Rename a sound."""
    try:
        sound = await _book(request).rename(request.match_info["id"], await json_body(request))
    except KeyError:
        return _unknown(request)
    except SoundError as err:
        return _refusal(err)
    except OSError as err:
        return json_error(503, f"the change could not be saved: {err}")
    return web.json_response(sound.as_dict())


async def delete_sound(request: web.Request) -> web.Response:
    """Forget a sound and its examples."""
    try:
        await _book(request).delete(request.match_info["id"])
    except KeyError:
        return _unknown(request)
    except OSError as err:
        return json_error(503, f"the sound could not be deleted: {err}")
    return web.Response(status=204)


async def clear_examples(request: web.Request) -> web.Response:
    """Forget a sound's examples, to teach it again."""
    try:
        sound = await _book(request).clear_examples(request.match_info["id"])
    except KeyError:
        return _unknown(request)
    except OSError as err:
        return json_error(503, f"the change could not be saved: {err}")
    return web.json_response(sound.as_dict())


async def _example_from_json(request: web.Request, body: Any) -> Array | web.Response:
    """`{"source": id, "seconds": s}` (that source's latest audio) or `{"event": seq}` (the
    event's stored clip)."""
    if not isinstance(body, dict) or not body:
        return json_error(400, 'give {"source": ..., "seconds": ...} or {"event": ...}')
    if set(body) <= {"source", "seconds"} and "source" in body:
        seconds = body.get("seconds", DEFAULT_SECONDS)
        if (
            not isinstance(seconds, (int, float))
            or isinstance(seconds, bool)
            or not 0.2 <= seconds <= MAX_SECONDS
        ):
            return json_error(400, f"seconds must be a number from 0.2 to {MAX_SECONDS:.0f}")
        source = body["source"]
        if not isinstance(source, str):
            return json_error(400, "source must be a source id")
        try:
            samples = request.app[STREAMS_KEY].recent_audio(source, float(seconds))
        except KeyError:
            return json_error(404, f"no source {source!r}")
        if samples.size < round(0.2 * 16000):
            return json_error(409, f"source {source!r} has not heard anything yet")
        return samples
    if set(body) == {"event"}:
        seq = body["event"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
            return json_error(400, "event must be an event's seq")
        try:
            clip = await request.app[STORE_KEY].get_clip(seq)
        except StoreError as err:
            return json_error(503, str(err))
        if clip is None:
            return json_error(404, f"no clip for event {seq}: no such event, or its clip expired")
        decoded = await audio.decode(
            clip, "audio/wav", ffmpeg=request.app[SERVICE_KEY].config.ffmpeg
        )
        return decoded.samples
    return json_error(400, 'give {"source": ..., "seconds": ...} or {"event": ...}')


async def add_example(request: web.Request) -> web.Response:
    """Teach a sound one more example: from a source, an event's clip, or an uploaded file."""
    book = _book(request)
    try:
        book.get(request.match_info["id"])
    except KeyError:
        return _unknown(request)
    if request.content_type == "application/json":
        example = await _example_from_json(request, await json_body(request))
        if isinstance(example, web.Response):
            return example
    else:
        decoded = await read_audio_body(request, request.app[SERVICE_KEY])
        example = decoded.samples
    if example.size > MAX_SECONDS * 16000:
        return json_error(400, f"an example is at most {MAX_SECONDS:.0f} s long")
    try:
        sound = await book.add_example(request.match_info["id"], example)
    except KeyError:
        return _unknown(request)
    except SoundError as err:
        return _refusal(err)
    except OSError as err:
        return json_error(503, f"the example could not be saved: {err}")
    return web.json_response(sound.as_dict(), status=201)
