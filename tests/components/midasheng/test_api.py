"""Tests for the client (api.py) against a real aiohttp server speaking the wire contract."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
import json
from typing import Any
from unittest.mock import AsyncMock, MagicMock

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
import pytest

from custom_components.midasheng.api import (
    API_VERSION,
    ErrorMessage,
    EventMessage,
    LevelMessage,
    MidashengAuthError,
    MidashengBusyError,
    MidashengClient,
    MidashengConnectionError,
    MidashengInvalidURLError,
    MidashengNotFoundError,
    MidashengNotSupportedError,
    MidashengResponseError,
    ModelInfo,
    OverflowMessage,
    ServiceInfo,
    SoundEvent,
    Source,
    SourceMessage,
    SourceRemovedMessage,
    SubscribedMessage,
    normalize_url,
    parse_message,
)

from .conftest import TOKEN, event_message, load_json

pytestmark = pytest.mark.usefixtures("socket_enabled")


class Service:
    """A small in-memory service implementing docs/api.md for the client to talk to."""

    def __init__(self, token: str | None = TOKEN) -> None:
        """Start with the fixture sources."""
        self.token = token
        self.sources: dict[str, dict[str, Any]] = {
            s["id"]: s for s in load_json("sources.json")["sources"]
        }
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.ws_received: list[Any] = []
        self.ws_script: list[dict[str, Any] | str] = []
        self.override: dict[str, web.Response] = {}
        self.delay = 0.0
        self.speech_gate: asyncio.Event | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Auth, canned overrides and a slow mode."""
        if self.delay:
            await asyncio.sleep(self.delay)
        if (
            request.path != "/v1/health"
            and self.token is not None
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            return web.json_response({"error": "missing or wrong token"}, status=401)
        if (response := self.override.get(request.path)) is not None:
            return response
        return await handler(request)

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self.middleware])
        app.router.add_get("/v1/info", self.info)
        app.router.add_get("/v1/sources", self.list_sources)
        app.router.add_post("/v1/sources", self.create_source)
        app.router.add_get("/v1/sources/{id}", self.get_source)
        app.router.add_patch("/v1/sources/{id}", self.patch_source)
        app.router.add_delete("/v1/sources/{id}", self.delete_source)
        app.router.add_get("/v1/events", self.events)
        app.router.add_post("/v1/describe", self.lm)
        app.router.add_post("/v1/ask", self.lm)
        app.router.add_post("/v1/transcribe", self.transcribe)
        app.router.add_post("/v1/speak", self.speak)
        app.router.add_get("/v1/ws", self.ws)
        return app

    async def _record(self, request: web.Request) -> None:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body: Any = {
                key: (value.file.read() if hasattr(value, "file") else value)
                for key, value in form.items()
            }
        elif request.content_type == "application/json":
            body = await request.json()
        else:
            body = await request.read()
        self.requests.append((request.method, request.path, dict(request.query), body))

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(load_json("info.json"))

    async def list_sources(self, request: web.Request) -> web.Response:
        return web.json_response({"sources": list(self.sources.values())})

    async def create_source(self, request: web.Request) -> web.Response:
        await self._record(request)
        body = self.requests[-1][3]
        if "url" in body and not str(body["url"]).startswith(("rtsp://", "http")):
            return web.json_response({"error": "unsupported URL scheme"}, status=400)
        source_id = body["name"].lower().replace(" ", "_")
        source = {
            "id": source_id,
            "name": body["name"],
            "kind": body.get("kind", "ffmpeg"),
            "url": body.get("url"),
            "state": "connecting",
            "error": None,
            "level_dbfs": None,
            "sensitivity": body.get("sensitivity", "medium"),
            "persistent": True,
        }
        self.sources[source_id] = source
        return web.json_response(source, status=201)

    def _source(self, request: web.Request) -> dict[str, Any]:
        if (source := self.sources.get(request.match_info["id"])) is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "no such source"}), content_type="application/json"
            )
        return source

    async def get_source(self, request: web.Request) -> web.Response:
        return web.json_response(self._source(request))

    async def patch_source(self, request: web.Request) -> web.Response:
        source = self._source(request)
        await self._record(request)
        source.update(self.requests[-1][3])
        return web.json_response(source)

    async def delete_source(self, request: web.Request) -> web.Response:
        self._source(request)
        del self.sources[request.match_info["id"]]
        return web.Response(status=204)

    async def events(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "events": [event_message(42)["event"], event_message(43, ended=True)["event"]],
                "last_seq": 43,
            }
        )

    async def lm(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"text": f"answer from {request.path}"})

    async def transcribe(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"text": "turn on the light", "language": "en"})

    async def speak(self, request: web.Request) -> web.StreamResponse:
        """A streamed WAV in two pieces; `speech_gate` (when set) holds the second back."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        await response.write(b"RIFF\xff\xff\xff\xffWAVE" + b"h" * 32)
        if self.speech_gate is not None:
            await self.speech_gate.wait()
        await response.write(b"\x01\x00" * 100)
        return response

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_received.append(await ws.receive_json())
        for item in self.ws_script:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            elif isinstance(item, str):
                await ws.send_str(item)
            else:
                await ws.send_json(item)
        await ws.close()
        return ws


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, TestServer]]:
    """A running service on localhost."""
    svc = Service()
    server = TestServer(svc.app())
    await server.start_server()
    yield svc, server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    """A client session owned by the test."""
    async with ClientSession() as client_session:
        yield client_session


def make_client(server: TestServer, session: ClientSession, **kwargs: Any) -> MidashengClient:
    """A client for the test server."""
    kwargs.setdefault("token", TOKEN)
    return MidashengClient(str(server.make_url("/")), session=session, **kwargs)


async def test_info_and_health(service, session) -> None:
    """/v1/info is parsed into typed data with the token sent."""
    _, server = service
    client = make_client(server, session)
    assert client.url == str(server.make_url("")).rstrip("/")
    info = await client.info()
    assert info.id == "3f0c9d2e8a7b4c1d9e6f5a4b3c2d1e0f"
    assert info.compatible
    assert info.api == API_VERSION
    assert info.category_ids[0] == "smoke_alarm"
    assert info.categories[0].labels == ("Smoke detector, smoke alarm",)
    recorded = load_json("info.json")["models"]["tagger"]
    assert info.tagger == ModelInfo(
        name="ced-stand-in",
        backend="transformers",
        details={k: v for k, v in recorded.items() if k not in ("name", "backend")},
    )
    assert info.tagger.details["window_seconds"] == 5.0
    assert info.lm is None
    assert info.supports("transcribe")
    assert not info.supports("ask")
    assert ServiceInfo.from_dict(info.as_dict()) == info


async def test_auth_errors(service, session) -> None:
    """A missing or wrong token raises MidashengAuthError."""
    _, server = service
    client = make_client(server, session, token=None)
    with pytest.raises(MidashengAuthError, match="missing or wrong token"):
        await client.info()
    with pytest.raises(MidashengAuthError):
        await make_client(server, session, token="wrong").sources()


async def test_sources(service, session) -> None:
    """List, create, get, change and delete sources."""
    svc, server = service
    client = make_client(server, session)
    sources = await client.sources()
    assert [s.id for s in sources] == ["kitchen", "hall"]
    assert sources[0].level_dbfs == -42.1
    assert sources[0].url is not None and "hunter2" not in sources[0].url  # redacted
    assert sources[1].url is None
    assert Source.from_dict(sources[0].as_dict()) == sources[0]

    created = await client.create_source("Front door", url="rtsp://cam/1", sensitivity="high")
    assert created.id == "front_door"
    assert created.state == "connecting"
    assert svc.requests[-1][3] == {
        "name": "Front door",
        "url": "rtsp://cam/1",
        "sensitivity": "high",
    }
    push = await client.create_source("Hall mic", kind="push")
    assert push.kind == "push"

    with pytest.raises(MidashengResponseError, match="unsupported URL scheme") as err:
        await client.create_source("Bad", url="ftp://x")
    assert err.value.status == 400

    assert (await client.source("kitchen")).name == "Kitchen"
    changed = await client.update_source("kitchen", sensitivity="low", name="Cooking")
    assert (changed.sensitivity, changed.name) == ("low", "Cooking")
    await client.delete_source("front_door")
    with pytest.raises(MidashengNotFoundError, match="no such source"):
        await client.delete_source("front_door")


async def test_events_and_clip(service, session) -> None:
    """Stored events are parsed; a clip comes back as bytes."""
    svc, server = service
    client = make_client(server, session)
    page = await client.events(after=41, limit=10, source="kitchen", category="smoke_alarm")
    assert svc.requests[-1][2] == {
        "after": "41",
        "limit": "10",
        "source": "kitchen",
        "category": "smoke_alarm",
    }
    assert page.last_seq == 43
    first, second = page.events
    assert first.ongoing
    assert first.start is not None
    recorded_start = load_json("ws_event_start.json")["event"]["start"]
    assert first.start == datetime.fromisoformat(recorded_start)
    assert not second.ongoing
    assert second.duration == load_json("ws_event_end.json")["event"]["duration"]
    assert SoundEvent.from_dict(second.as_dict()) == second
    await client.events()
    assert svc.requests[-1][2] == {}


async def test_describe_ask_transcribe(service, session) -> None:
    """The audio LM and ASR endpoints take an upload or a reference to stored audio."""
    svc, server = service
    client = make_client(server, session)
    assert await client.describe(b"wav") == "answer from /v1/describe"
    assert svc.requests[-1][3] == {"audio": b"wav"}
    assert await client.ask("what was that?", b"wav") == "answer from /v1/ask"
    assert svc.requests[-1][3] == {"audio": b"wav", "question": "what was that?"}
    await client.ask("is the dog barking?", source="kitchen", seconds=10)
    assert svc.requests[-1][3] == {
        "source": "kitchen",
        "seconds": 10,
        "question": "is the dog barking?",
    }
    await client.describe(event=42)
    assert svc.requests[-1][3] == {"event": 42}
    with pytest.raises(ValueError):
        await client.describe()

    result = await client.transcribe(b"wav", language="en", phrases=["turn on the light"])
    assert (result.text, result.language) == ("turn on the light", "en")
    assert svc.requests[-1][3] == {
        "audio": b"wav",
        "language": "en",
        "phrases": '["turn on the light"]',
    }
    await client.transcribe(b"wav")
    assert svc.requests[-1][3] == {"audio": b"wav"}


async def test_speak_stream(service, session) -> None:
    """Speech arrives block by block as the service sends it; a refusal raises at the call."""
    svc, server = service
    client = make_client(server, session)
    svc.speech_gate = asyncio.Event()
    blocks = await client.speak_stream("hello", language="en", voice="calm")
    first = await anext(blocks)
    assert first.startswith(b"RIFF")  # before the rest was even sent
    svc.speech_gate.set()
    rest = b"".join([block async for block in blocks])
    assert len(first) + len(rest) == 44 + 200
    assert svc.requests[-1][3] == {
        "text": "hello",
        "stream": True,
        "language": "en",
        "voice": "calm",
    }
    svc.override["/v1/speak"] = web.json_response({"error": "no speech model"}, status=501)
    with pytest.raises(MidashengNotSupportedError, match="no speech model"):
        await client.speak_stream("hello")
    svc.override["/v1/speak"] = web.json_response({"text": "not audio"})
    with pytest.raises(MidashengResponseError, match="not speech"):
        await client.speak_stream("hello")


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (
            web.json_response({"error": "no audio LM loaded"}, status=501),
            MidashengNotSupportedError,
            "no audio LM loaded",
        ),
        (
            web.json_response({"error": "queue full"}, status=503, headers={"Retry-After": "2"}),
            MidashengBusyError,
            "queue full",
        ),
        (
            web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "soon"}),
            MidashengBusyError,
            "busy",
        ),
        (web.Response(status=500, text="boom"), MidashengResponseError, "boom"),
        (web.Response(status=502), MidashengResponseError, "HTTP 502"),
        (web.Response(text="<html>"), MidashengResponseError, "not JSON"),
        (
            web.Response(text="{", content_type="application/json"),
            MidashengResponseError,
            "invalid JSON",
        ),
    ],
)
async def test_error_answers(service, session, response, error, match) -> None:
    """Error statuses and off-contract answers map to the exception hierarchy."""
    svc, server = service
    svc.override["/v1/describe"] = response
    with pytest.raises(error, match=match) as err:
        await make_client(server, session).describe(b"wav")
    if isinstance(err.value, MidashengBusyError):
        assert err.value.retry_after in (2.0, None)


@pytest.mark.parametrize(
    ("path", "body", "call"),
    [
        ("/v1/info", {"name": "no id"}, "info"),
        ("/v1/sources", {"items": []}, "sources"),
        ("/v1/events", {"events": [{"seq": 1}]}, "events"),
        ("/v1/describe", {"caption": "x"}, "describe"),
        ("/v1/transcribe", {"words": []}, "transcribe"),
    ],
)
async def test_malformed_answers(service, session, path, body, call) -> None:
    """JSON that is not the contract raises MidashengResponseError."""
    svc, server = service
    svc.override[path] = web.json_response(body)
    client = make_client(server, session)
    with pytest.raises(MidashengResponseError, match="unexpected"):
        if call in ("describe", "transcribe"):
            await getattr(client, call)(b"wav")
        else:
            await getattr(client, call)()


async def test_connection_errors(service, session) -> None:
    """Refused connections and timeouts raise MidashengConnectionError."""
    _, server = service
    port = server.port
    await server.close()
    client = MidashengClient(f"http://127.0.0.1:{port}", session=session)
    with pytest.raises(MidashengConnectionError, match="cannot reach"):
        await client.info()
    with pytest.raises(MidashengConnectionError, match="cannot reach"):
        async for _ in client.subscribe():
            pass


async def test_timeouts(service, session) -> None:
    """A service that does not answer in time raises MidashengConnectionError."""
    svc, server = service
    svc.delay = 1
    client = make_client(server, session, request_timeout=0.05)
    with pytest.raises(MidashengConnectionError, match="timeout"):
        await client.info()
    with pytest.raises(MidashengConnectionError, match="timeout"):
        async for _ in client.subscribe():
            pass


async def test_subscribe(service, session) -> None:
    """The WebSocket yields typed messages and raises when the service closes it."""
    svc, server = service
    replayed = event_message(42, ended=True, replay=True)
    svc.ws_script = [
        replayed,
        {"type": "source", "source": load_json("sources.json")["sources"][0]},
        {"type": "subscribed", "last_seq": 42},
        {"type": "level", "source": "kitchen", "dbfs": -41.7},
        {"type": "source_removed", "source": {"id": "hall"}},
        {"type": "error", "error": "bad message"},
        {"type": "something_new"},
        {"type": "level", "source": "kitchen"},
        "not json",
        b"\x00\x01",
        {"type": "overflow"},
    ]
    client = make_client(server, session)
    received: list = []
    with pytest.raises(MidashengConnectionError, match="closed the connection"):
        async for message in client.subscribe(after=41):
            received.append(message)  # noqa: PERF401 (the list must survive the raise)
    assert svc.ws_received == [{"type": "subscribe", "after": 41}]
    assert received == [
        EventMessage(event=SoundEvent.from_dict(replayed["event"]), replay=True),
        SourceMessage(source=Source.from_dict(load_json("sources.json")["sources"][0])),
        SubscribedMessage(last_seq=42),
        LevelMessage(source="kitchen", dbfs=-41.7),
        SourceRemovedMessage(source_id="hall"),
        ErrorMessage(error="bad message"),
        OverflowMessage(),
    ]

    svc.ws_script = []
    with pytest.raises(MidashengConnectionError):
        async for _ in client.subscribe():
            pass
    assert svc.ws_received[-1] == {"type": "subscribe"}


async def test_subscribe_send_fails() -> None:
    """A connection that breaks while subscribing raises MidashengConnectionError."""
    ws = MagicMock()
    ws.send_json = AsyncMock(side_effect=ConnectionResetError("reset"))
    ws.close = AsyncMock()
    session = MagicMock()
    session.ws_connect = AsyncMock(return_value=ws)
    client = MidashengClient("http://127.0.0.1:8765", session=session)
    with pytest.raises(MidashengConnectionError, match="reset"):
        async for _ in client.subscribe(after=1):
            pass
    ws.close.assert_awaited_once()
    assert str(session.ws_connect.await_args.args[0]) == "ws://127.0.0.1:8765/v1/ws"


async def test_subscribe_handshake_errors(service, session) -> None:
    """A rejected token raises MidashengAuthError; other refusals a connection error."""
    svc, server = service
    with pytest.raises(MidashengAuthError):
        async for _ in make_client(server, session, token="wrong").subscribe():
            pass
    svc.override["/v1/ws"] = web.json_response({"error": "nope"}, status=404)
    with pytest.raises(MidashengConnectionError, match="handshake"):
        async for _ in make_client(server, session).subscribe():
            pass


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nas.local", "http://nas.local:8765"),
        ("10.0.0.2:9000", "http://10.0.0.2:9000"),
        (" http://host/ ", "http://host"),
        ("https://host:443/midasheng/", "https://host/midasheng"),
        ("[::1]", "http://[::1]:8765"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    """What users type becomes a base URL."""
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url", ["", "ftp://host", "http://", "http://host/?a=1", "http://host#x", "http://[::1", "[::1"]
)
def test_normalize_url_invalid(url: str) -> None:
    """Unusable URLs raise MidashengInvalidURLError (a ValueError)."""
    with pytest.raises(MidashengInvalidURLError):
        normalize_url(url)


def test_parse_message() -> None:
    """Unknown types are skipped; malformed known ones raise."""
    assert parse_message({"type": "later"}) is None
    assert parse_message({"type": "subscribed"}) == SubscribedMessage(last_seq=0)
    with pytest.raises(MidashengResponseError, match="malformed event"):
        parse_message({"type": "event", "event": {"seq": "x"}})
    # Every event carries its rev (the service has always sent one).
    with pytest.raises(MidashengResponseError, match="malformed event"):
        parse_message({"type": "event", "event": {"seq": 3, "source": "a", "category": "cat"}})
    event = SoundEvent.from_dict({"seq": 3, "rev": 3, "source": "a", "category": "cat"})
    assert (event.id, event.start, event.label, event.ongoing) == ("3", None, "", True)
    event = SoundEvent.from_dict({"seq": 3, "rev": 5, "source": "a", "category": "cat"})
    assert event.rev == 5
    assert SoundEvent.from_dict(event.as_dict()) == event
    assert ModelInfo.from_dict(None) is None
