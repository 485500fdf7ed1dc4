"""HTTP and WebSocket API of live detection: sources, the event log, clips and `/v1/ws`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from model_service.api.common import (
    SERVICE_KEY,
    STORE_KEY,
    STREAMS_KEY,
    json_body,
    json_error,
    loads_json,
)
from model_service.live.hub import Subscriber
from model_service.live.manager import StreamManager
from model_service.live.runtime import SourceRuntime
from model_service.live.sources import SourceError
from model_service.live.store import StoreError

_LOGGER = logging.getLogger(__name__)
# The largest `after` cursor taken: revs are SQLite integers (64-bit), far below this.
MAX_AFTER = 2**62


PUSH_RATE = 16000
MAX_EVENTS_LIMIT = 1000
DEFAULT_EVENTS_LIMIT = 100
REPLAY_PAGE = 500
# A peer that takes nothing for this long is gone (Home Assistant may pause for seconds).
SEND_TIMEOUT = 30.0
# For the overflow notice and the close after it: that peer is known to be behind.
NOTICE_TIMEOUT = 5.0


def setup_live(app: web.Application) -> None:
    """Register the live routes; start sources after the service starts, stop them before it stops."""
    app.router.add_get("/v1/sources", list_sources)
    app.router.add_post("/v1/sources", create_source)
    app.router.add_get("/v1/sources/{id}", get_source)
    app.router.add_patch("/v1/sources/{id}", patch_source)
    app.router.add_delete("/v1/sources/{id}", delete_source)
    app.router.add_get("/v1/events", list_events)
    app.router.add_get("/v1/events/{seq}/clip", event_clip)
    app.router.add_get("/v1/ws", websocket)
    manager = StreamManager(app[SERVICE_KEY])
    app[STREAMS_KEY] = manager
    app[STORE_KEY] = manager.store

    async def on_startup(app: web.Application) -> None:
        # Appended after the service's own startup: the batcher runs before sources feed it.
        await app[STREAMS_KEY].start()

    async def on_shutdown(app: web.Application) -> None:
        # aiohttp runs on_shutdown before it waits for open connections and before
        # on_cleanup stops the batcher: close sockets, then let sources finish their runs.
        for ws in list(app[STREAMS_KEY].sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"service stopping")
        await app[STREAMS_KEY].stop()

    async def on_cleanup(app: web.Application) -> None:
        await app[STREAMS_KEY].close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)


# -- REST ------------------------------------------------------------------------------------


def _source_or_404(request: web.Request) -> SourceRuntime | web.Response:
    source_id = request.match_info["id"]
    try:
        return request.app[STREAMS_KEY].get(source_id)
    except KeyError:
        return json_error(404, f"no source {source_id!r}")


async def list_sources(request: web.Request) -> web.Response:
    """All live sources."""
    return web.json_response({"sources": request.app[STREAMS_KEY].list()})


async def create_source(request: web.Request) -> web.Response:
    """Create an ffmpeg source (`url`) or a push source (`kind: push`)."""
    body = await json_body(request)
    try:
        runtime = await request.app[STREAMS_KEY].create(body)
    except SourceError as err:
        return json_error(400, str(err))
    except StoreError as err:
        return json_error(503, f"the source could not be saved: {err}")
    return web.json_response(runtime.as_dict(), status=201)


async def get_source(request: web.Request) -> web.Response:
    """One source."""
    found = _source_or_404(request)
    if isinstance(found, web.Response):
        return found
    return web.json_response(found.as_dict())


async def patch_source(request: web.Request) -> web.Response:
    """Change a source's sensitivity and/or name."""
    found = _source_or_404(request)
    if isinstance(found, web.Response):
        return found
    body = await json_body(request)
    try:
        runtime = await request.app[STREAMS_KEY].update(found.id, body)
    except KeyError:
        return json_error(404, f"no source {found.id!r}")
    except SourceError as err:
        return json_error(400, str(err))
    except StoreError as err:
        return json_error(503, f"the change could not be saved: {err}")
    return web.json_response(runtime.as_dict())


async def delete_source(request: web.Request) -> web.Response:
    """Stop and remove a source made through the API."""
    source_id = request.match_info["id"]
    try:
        await request.app[STREAMS_KEY].delete(source_id)
    except KeyError:
        return json_error(404, f"no source {source_id!r}")
    except SourceError as err:
        return json_error(409, str(err))
    except StoreError as err:
        return json_error(503, f"the source could not be removed: {err}")
    return web.Response(status=204)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise _bad(f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise _bad(f"{name} must be between {lo} and {hi}")
    return value


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def list_events(request: web.Request) -> web.Response:
    """Stored events that started or changed after `after`, in the order they last changed."""
    after = _int_param(request, "after", 0, 0, MAX_AFTER)
    limit = _int_param(request, "limit", DEFAULT_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT)
    source = request.query.get("source") or None
    category = request.query.get("category") or None
    try:
        events, counter = await request.app[STORE_KEY].events_after(
            after, limit=limit, source=source, category=category
        )
    except StoreError as err:
        return json_error(503, str(err))
    # A full page continues after its last event; a short page covers everything up to now.
    last = events[-1].rev if len(events) == limit else max(counter, after)
    return web.json_response({"events": [e.as_dict() for e in events], "last_seq": last})


async def event_clip(request: web.Request) -> web.Response:
    """The WAV clip kept for an event."""
    try:
        seq = int(request.match_info["seq"], 10)
    except ValueError:
        return json_error(400, "seq must be a whole number")
    try:
        clip = await request.app[STORE_KEY].get_clip(seq)
    except StoreError as err:
        return json_error(503, str(err))
    if clip is None:
        return json_error(404, f"no clip for event {seq}: no such event, or its clip expired")
    return web.Response(body=clip, content_type="audio/wav")


# -- WebSocket -------------------------------------------------------------------------------


def _shown(value: object, limit: int = 80) -> str:
    """A client's value quoted in an error, cut short: replies never grow with what was sent."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Connection:
    """One `/v1/ws` connection: a reader (this handler) and a sender task sharing a queue."""

    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, manager: StreamManager
    ) -> None:
        self.request = request
        self.ws = ws
        self.manager = manager
        self.out = Subscriber(manager.subscriber_queue)
        # Event messages with a rev at or below this were already sent by the replay.
        self.skip_upto = 0
        self.replay_after: int | None = None
        self.replay_pending = False
        self.pushing: SourceRuntime | None = None

    # -- outgoing --

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a message for this connection only."""
        self.out.offer(json.dumps(message, separators=(",", ":")))

    def error(self, message: str) -> None:
        """Tell the client its last message was refused; the connection goes on."""
        self.reply({"type": "error", "error": message})

    async def send_loop(self) -> None:
        """Deliver queued messages in order; replay on subscribe; close on overflow."""
        ws = self.ws
        out = self.out
        try:
            while not ws.closed:
                if out.overflowed:
                    await self._overflow()
                    return
                if self.replay_pending:
                    self.replay_pending = False
                    await self._replay()
                    continue
                if not out.queue:
                    out.wake.clear()
                    await out.wake.wait()
                    continue
                text, rev = out.pop()
                if rev is not None and rev <= self.skip_upto:
                    continue
                await self._send(text)
        except TimeoutError:
            await self._overflow()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            # RuntimeError: aiohttp refuses to send on a closing socket. Nothing to tell.
            return

    async def _send(self, text: str) -> None:
        """Send one message; a peer that takes none of it for SEND_TIMEOUT fell behind."""
        # Once the socket's buffers are full, send_str waits for the peer to read: without
        # the timeout a client that stopped reading would hold this task forever.
        await asyncio.wait_for(self.ws.send_str(text), SEND_TIMEOUT)

    async def _replay(self) -> None:
        store = self.manager.store
        after = self.replay_after
        counter = store.last_rev
        if after is not None:
            position = after
            while True:
                try:
                    events, counter = await store.events_after(position, limit=REPLAY_PAGE)
                except StoreError as err:
                    await self.ws.send_str(json.dumps({"type": "error", "error": str(err)}))
                    await self.ws.close(
                        code=WSCloseCode.INTERNAL_ERROR, message=b"event log unavailable"
                    )
                    return
                for event in events:
                    await self._send(
                        json.dumps(
                            {"type": "event", "event": event.as_dict(), "replay": True},
                            separators=(",", ":"),
                        )
                    )
                    position = event.rev
                if len(events) < REPLAY_PAGE:
                    break
            # Live copies of what the replay covered are dropped (the replay sent each event
            # in its latest form).
            self.skip_upto = counter
        for source in self.manager.list():
            await self._send(json.dumps({"type": "source", "source": source}))
        await self._send(json.dumps({"type": "storage", "storage": store.storage}))
        await self._send(json.dumps({"type": "subscribed", "last_seq": counter}))

    async def _overflow(self) -> None:
        _LOGGER.warning(
            "A WebSocket client (%s) fell behind and is disconnected", self.request.remote
        )
        try:
            await asyncio.wait_for(self.ws.send_str('{"type":"overflow"}'), NOTICE_TIMEOUT)
            await asyncio.wait_for(
                self.ws.close(
                    code=WSCloseCode.TRY_AGAIN_LATER,
                    message=b"fell behind; reconnect and subscribe with after",
                ),
                NOTICE_TIMEOUT,
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            # The peer does not read at all: drop the TCP connection.
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    # -- incoming --

    async def handle_text(self, data: str) -> None:
        """Dispatch one JSON control message."""
        try:
            message = loads_json(data)
        except ValueError:
            self.error("messages must be JSON objects")
            return
        if not isinstance(message, dict):
            self.error("messages must be JSON objects")
            return
        kind = message.get("type")
        if kind == "subscribe":
            self._subscribe(message)
        elif kind == "push_start":
            await self._push_start(message)
        elif kind == "push_stop":
            await self._push_stop(message)
        else:
            self.error(
                f"unknown message type {_shown(kind)}; use subscribe, push_start or push_stop"
            )

    def _subscribe(self, message: dict[str, Any]) -> None:
        if self.out.subscribed:
            self.error("already subscribed")
            return
        after = message.get("after")
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_AFTER
        ):
            self.error(
                f"after must be a whole number from 0 to {MAX_AFTER} (the highest rev you have seen)"
            )
            return
        # Register before the replay query so nothing committed in between is missed.
        self.manager.hub.add(self.out)
        self.replay_after = after
        self.replay_pending = True
        self.out.wake.set()

    async def _push_start(self, message: dict[str, Any]) -> None:
        source_id = message.get("source")
        rate = message.get("rate", PUSH_RATE)
        if not isinstance(source_id, str):
            self.error("push_start needs a source id")
            return
        runtime = self.manager.sources.get(source_id)
        if runtime is None:
            self.error(f"no source {_shown(source_id)}")
            return
        if runtime.spec.kind != "push":
            self.error(f"source {source_id!r} is an {runtime.spec.kind} source, not a push source")
            return
        if isinstance(rate, bool) or rate != PUSH_RATE:
            self.error(f"rate must be {PUSH_RATE} (16-bit mono PCM at 16 kHz)")
            return
        if self.pushing is not None and self.pushing is not runtime:
            await self.pushing.push_stop(self)
        self.pushing = runtime
        await runtime.push_start(self)

    async def _push_stop(self, message: dict[str, Any]) -> None:
        source_id = message.get("source")
        if self.pushing is None or (source_id is not None and source_id != self.pushing.id):
            self.error(f"not pushing to {_shown(source_id)}")
            return
        runtime, self.pushing = self.pushing, None
        await runtime.push_stop(self)

    async def handle_binary(self, data: bytes) -> None:
        """Feed pushed PCM to the source this connection pushes to."""
        runtime = self.pushing
        if runtime is None:
            self.error("binary frames need a push_start first")
            return
        if runtime.pusher is not self or self.manager.sources.get(runtime.id) is not runtime:
            self.pushing = None
            self.error(f"push to {runtime.id!r} ended (taken over or removed); push_start again")
            return
        if len(data) % 2:
            self.error(f"a binary frame must hold whole 16-bit samples, not {len(data)} bytes")
            return
        if data:
            await runtime.feed(data)

    async def close_push(self) -> None:
        """The connection is going away: end its push like a push_stop."""
        if self.pushing is not None:
            runtime, self.pushing = self.pushing, None
            try:
                # Shielded: aiohttp cancels the handler of a connection that went away, and
                # the push must still end (its events end, the source says it is lost).
                await asyncio.shield(
                    runtime.push_stop(
                        self, lost="the pushing client disconnected without push_stop"
                    )
                )
            except Exception:
                _LOGGER.exception("Ending the push to %s failed", runtime.id)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """`/v1/ws`: subscribe to events, levels and sources; push PCM for push sources."""
    manager = request.app[STREAMS_KEY]
    # Heartbeat: a client that vanished without closing is noticed within a minute.
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    conn = _Connection(request, ws, manager)
    manager.sockets.add(ws)
    sender = asyncio.create_task(conn.send_loop(), name="ws-send")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.handle_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await conn.handle_binary(msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
            if sender.done():
                break
    finally:
        manager.hub.remove(conn.out)
        manager.sockets.discard(ws)
        await conn.close_push()
        if not sender.done():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
    return ws
