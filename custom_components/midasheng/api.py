"""Async client for the MiDasheng Audio service, wire contract v1 (no Home Assistant imports)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
import json
import logging
from typing import Any, Final, Self

import aiohttp
from yarl import URL

_LOGGER = logging.getLogger(__name__)

API_VERSION: Final = 1
DEFAULT_PORT: Final = 8765
DEFAULT_TIMEOUT: Final = 10.0
# Captions, answers and transcripts run a model; on a CPU-only box that takes a while.
AUDIO_TIMEOUT: Final = 120.0
WS_HEARTBEAT: Final = 30.0

SENSITIVITIES: Final = ("low", "medium", "high")
# A source's mode on the service: away listens harder for intruders, night quiets all but
# the safety alarms and the baby monitor.
MODES: Final = ("home", "away", "night")
SOURCE_KINDS: Final = ("ffmpeg", "push", "device")
SOURCE_STATES: Final = (
    "connecting",
    "streaming",
    "retrying",
    "stopped",
    "idle",
    "stalled",
    "lost",
)
# The states in which a source is heard: streaming, or a push source idle by design (a voice
# satellite between utterances). In every other state no event can come from it.
HEARING_STATES: Final = frozenset({"streaming", "idle"})

# What this integration reads of each object of the service's wire contract, by the name
# of its schema in the service's OpenAPI document. tests/components/midasheng/test_contract.py
# fails when a field here is missing from the recorded contract (renamed or removed there) or
# when the contract requires a field not listed here.
_MODEL_FIELDS: Final = frozenset({"name", "backend", "device"})
WIRE_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "Info": frozenset(
        {"id", "name", "version", "api", "sample_rate", "categories", "models", "capabilities"}
    ),
    "Category": frozenset({"id", "name", "labels", "kind"}),
    # Model descriptions are kept whole (`ModelInfo.details`), whatever they hold.
    "TaggerInfo": _MODEL_FIELDS | {"window_seconds", "hop_seconds", "categories"},
    "LMInfo": _MODEL_FIELDS | {"family", "max_new_tokens"},
    "AsrInfo": _MODEL_FIELDS | {"languages", "phrases"},
    "Source": frozenset(
        {
            "id",
            "name",
            "kind",
            "url",
            "state",
            "error",
            "level_dbfs",
            "sensitivity",
            "mode",
            "persistent",
            "learned_hours",
        }
    ),
    "Event": frozenset(
        {
            "seq",
            "rev",
            "id",
            "source",
            "category",
            "label",
            "score",
            "start",
            "end",
            "duration",
            "level_dbfs",
            "has_clip",
            "mode",
            "intrusion",
        }
    ),
    "EventPage": frozenset({"events", "last_seq"}),
    "Transcription": frozenset({"text", "language"}),
    "Text": frozenset({"text"}),
    "Error": frozenset({"error"}),
    "WsEvent": frozenset({"type", "event", "replay"}),
    "WsSource": frozenset({"type", "source"}),
    "Sound": frozenset({"id", "name", "examples", "ready"}),
    "WsSounds": frozenset({"type", "sounds"}),
    "WsSourceRemoved": frozenset({"type", "source"}),
    "WsLevel": frozenset({"type", "source", "dbfs"}),
    "WsSubscribed": frozenset({"type", "last_seq"}),
    "WsOverflow": frozenset({"type"}),
    "WsStorage": frozenset({"type", "storage"}),
    "Storage": frozenset({"ok", "problem", "free_mb", "unsaved_events"}),
    "WsError": frozenset({"type", "error"}),
}


class MidashengError(Exception):
    """Base class for every error the client raises."""


class MidashengConnectionError(MidashengError):
    """The service could not be reached, timed out or dropped the connection."""


class MidashengAuthError(MidashengError):
    """The service rejected the token (or needs one)."""


class MidashengInvalidURLError(MidashengError, ValueError):
    """The given service URL is not a usable http(s) URL."""


class MidashengResponseError(MidashengError):
    """The service answered with an error or with something that is not the contract."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """Keep the HTTP status next to the service's message."""
        super().__init__(message)
        self.status = status


class MidashengNotFoundError(MidashengResponseError):
    """The source, event or clip does not exist (404)."""


class MidashengNotSupportedError(MidashengResponseError):
    """No model for this capability is loaded on the service (501)."""


class MidashengBusyError(MidashengResponseError):
    """The service's queue is full (503); retry after `retry_after` seconds."""

    def __init__(
        self, message: str, status: int | None = 503, retry_after: float | None = None
    ) -> None:
        """Keep the Retry-After hint."""
        super().__init__(message, status)
        self.retry_after = retry_after


def normalize_url(url: str) -> str:
    """Return the service base URL for what a user typed, or raise MidashengInvalidURLError.

    A bare host (``nas.local`` or ``10.0.0.2:9000``) gets ``http://`` and, without a port,
    the service's default port.
    """
    text = url.strip()
    if not text:
        raise MidashengInvalidURLError("empty URL")
    if "://" not in text:
        text = f"http://{text}"
        try:
            parsed = URL(text)
        except ValueError as err:
            raise MidashengInvalidURLError(str(err)) from err
        if parsed.explicit_port is None and parsed.host:
            parsed = parsed.with_port(DEFAULT_PORT)
    else:
        try:
            parsed = URL(text)
        except ValueError as err:
            raise MidashengInvalidURLError(str(err)) from err
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise MidashengInvalidURLError(f"not an http(s) URL: {url}")
    if parsed.query_string or parsed.fragment:
        raise MidashengInvalidURLError(f"a service URL has no query or fragment: {url}")
    return str(parsed.with_path(parsed.path.rstrip("/")))


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """A sound category the service can detect."""

    id: str
    name: str
    labels: tuple[str, ...] = ()
    # "sound" (heard while it lasts) or "gesture" (claps, snaps: a momentary trigger).
    kind: str = "sound"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from the wire format (services before gestures send no kind: sounds)."""
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            labels=tuple(data.get("labels") or ()),
            kind=str(data.get("kind") or "sound"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """One loaded model (tagger, audio LM or ASR) as `/v1/info` describes it."""

    name: str
    backend: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self | None:
        """Build from the wire format; None stays None."""
        if not data:
            return None
        return cls(
            name=str(data.get("name", "")),
            backend=str(data.get("backend", "")),
            details={k: v for k, v in data.items() if k not in ("name", "backend")},
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the wire format."""
        return {"name": self.name, "backend": self.backend, **self.details}


def _speech_model(data: Any) -> ModelInfo | None:
    """The speech model `models.tts` describes, or None when none speaks (or none is said)."""
    if not isinstance(data, Mapping) or not data.get("available"):
        return None
    return ModelInfo.from_dict({k: v for k, v in data.items() if k != "available"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """What `/v1/info` says about the service."""

    id: str
    name: str
    version: str
    api: int
    sample_rate: int
    # Sounds: binary sensors, the last sound, the sound event entity, the agent's answers.
    categories: tuple[Category, ...]
    tagger: ModelInfo | None
    lm: ModelInfo | None
    asr: ModelInfo | None
    capabilities: tuple[str, ...]
    # The speech model (MiMo-Audio) when one speaks, with its languages and voices.
    tts: ModelInfo | None = None
    # Gestures (double clap, triple clap, double snap): the gesture event entity and triggers.
    gestures: tuple[Category, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from the wire format."""
        models = data.get("models") or {}
        every = tuple(Category.from_dict(c) for c in data.get("categories") or ())
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or "MiDasheng Audio"),
            version=str(data.get("version", "")),
            api=int(data.get("api", API_VERSION)),
            sample_rate=int(data.get("sample_rate", 16000)),
            categories=tuple(c for c in every if c.kind != "gesture"),
            gestures=tuple(c for c in every if c.kind == "gesture"),
            tagger=ModelInfo.from_dict(models.get("tagger")),
            lm=ModelInfo.from_dict(models.get("lm")),
            asr=ModelInfo.from_dict(models.get("asr")),
            capabilities=tuple(data.get("capabilities") or ()),
            tts=_speech_model(models.get("tts")),
        )

    @property
    def compatible(self) -> bool:
        """Whether this client speaks the service's API version."""
        return self.api == API_VERSION

    @property
    def category_ids(self) -> tuple[str, ...]:
        """Ids of the categories the loaded tagger detects."""
        return tuple(c.id for c in self.categories)

    @property
    def gesture_ids(self) -> tuple[str, ...]:
        """Ids of the sound gestures the service recognises."""
        return tuple(c.id for c in self.gestures)

    def supports(self, capability: str) -> bool:
        """Whether the service offers a capability (classify, stream, describe, ask, transcribe)."""
        return capability in self.capabilities

    def as_dict(self) -> dict[str, Any]:
        """Return the wire format."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "api": self.api,
            "sample_rate": self.sample_rate,
            "categories": [
                {"id": c.id, "name": c.name, "labels": list(c.labels), "kind": c.kind}
                for c in (*self.categories, *self.gestures)
            ],
            "models": {
                "tagger": self.tagger.as_dict() if self.tagger else None,
                "lm": self.lm.as_dict() if self.lm else None,
                "asr": self.asr.as_dict() if self.asr else None,
                **({"tts": {"available": True, **self.tts.as_dict()}} if self.tts else {}),
            },
            "capabilities": list(self.capabilities),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A live audio source on the service (a stream, a pushed feed or a capture device)."""

    id: str
    name: str
    kind: str
    url: str | None = None
    state: str = "idle"
    error: str | None = None
    level_dbfs: float | None = None
    sensitivity: str = "medium"
    mode: str = "home"
    persistent: bool = False
    learned_hours: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from the wire format."""
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            kind=str(data.get("kind", "ffmpeg")),
            url=data.get("url"),
            state=str(data.get("state", "idle")),
            error=data.get("error"),
            level_dbfs=_float(data.get("level_dbfs")),
            sensitivity=str(data.get("sensitivity", "medium")),
            mode=str(data.get("mode", "home")),
            persistent=bool(data.get("persistent", False)),
            learned_hours=int(data.get("learned_hours") or 0),
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the wire format."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "state": self.state,
            "error": self.error,
            "level_dbfs": self.level_dbfs,
            "sensitivity": self.sensitivity,
            "mode": self.mode,
            "persistent": self.persistent,
            "learned_hours": self.learned_hours,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundEvent:
    """A detected sound event; `end` is None while it is ongoing."""

    seq: int
    id: str
    source: str
    category: str
    label: str
    score: float
    start: datetime | None
    end: datetime | None = None
    duration: float | None = None
    level_dbfs: float | None = None
    has_clip: bool = False
    # The source's mode when the event started; an intrusion is a sound an intruder makes,
    # heard in away mode.
    mode: str = "home"
    intrusion: bool = False
    # Counter value of the event's latest change: its start (= seq) or its end.
    rev: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from the wire format."""
        return cls(
            rev=int(data["rev"]),
            seq=int(data["seq"]),
            id=str(data.get("id") or data["seq"]),
            source=str(data["source"]),
            category=str(data["category"]),
            label=str(data.get("label", "")),
            score=float(data.get("score", 0.0)),
            start=_time(data.get("start")),
            end=_time(data.get("end")),
            duration=_float(data.get("duration")),
            level_dbfs=_float(data.get("level_dbfs")),
            has_clip=bool(data.get("has_clip", False)),
            mode=str(data.get("mode", "home")),
            intrusion=bool(data.get("intrusion", False)),
        )

    @property
    def ongoing(self) -> bool:
        """Whether the event has not ended yet."""
        return self.end is None

    def as_dict(self) -> dict[str, Any]:
        """Return the wire format."""
        return {
            "seq": self.seq,
            "rev": self.rev,
            "id": self.id,
            "source": self.source,
            "category": self.category,
            "label": self.label,
            "score": self.score,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "duration": self.duration,
            "level_dbfs": self.level_dbfs,
            "has_clip": self.has_clip,
            "mode": self.mode,
            "intrusion": self.intrusion,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPage:
    """A page of stored events and the newest seq the service has."""

    events: tuple[SoundEvent, ...]
    last_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcription:
    """Speech to text result."""

    text: str
    language: str | None = None


# Messages the WebSocket delivers after `subscribe`.


@dataclass(frozen=True, slots=True, kw_only=True)
class EventMessage:
    """An event started or ended (or was replayed on resume)."""

    event: SoundEvent
    replay: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelMessage:
    """A source's current level."""

    source: str
    dbfs: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceMessage:
    """A source was created or changed state."""

    source: Source


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRemovedMessage:
    """A source was deleted."""

    source_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribedMessage:
    """Replay and the source list are complete; live messages follow."""

    last_seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMessage:
    """The service did not understand something the client sent; the connection goes on."""

    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OverflowMessage:
    """The subscriber fell behind; the service closes and the client resumes with `after`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaughtSound:
    """A sound taught to the service by example; sources detect it once it is `ready`."""

    id: str
    name: str
    examples: int = 0
    ready: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from the wire format."""
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            examples=int(data.get("examples") or 0),
            ready=bool(data.get("ready", False)),
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the wire format."""
        return {"id": self.id, "name": self.name, "examples": self.examples, "ready": self.ready}


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundsMessage:
    """The taught sounds changed (one was made, taught, renamed, cleared or deleted)."""

    sounds: tuple[TaughtSound, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageMessage:
    """Whether the service can store events; when not, what is wrong (sent on subscribe and
    on every change). Events are delivered live either way."""

    ok: bool
    problem: str | None
    unsaved_events: int


type WsMessage = (
    EventMessage
    | LevelMessage
    | SourceMessage
    | SourceRemovedMessage
    | SubscribedMessage
    | ErrorMessage
    | OverflowMessage
    | StorageMessage
    | SoundsMessage
)


def parse_message(data: Mapping[str, Any]) -> WsMessage | None:
    """Turn one JSON WebSocket message into a typed message; None for unknown types.

    Raises MidashengResponseError when a known message is malformed.
    """
    kind = data.get("type")
    try:
        match kind:
            case "event":
                return EventMessage(
                    event=SoundEvent.from_dict(data["event"]), replay=bool(data.get("replay"))
                )
            case "level":
                return LevelMessage(source=str(data["source"]), dbfs=float(data["dbfs"]))
            case "source":
                return SourceMessage(source=Source.from_dict(data["source"]))
            case "source_removed":
                return SourceRemovedMessage(source_id=str(data["source"]["id"]))
            case "subscribed":
                return SubscribedMessage(last_seq=int(data.get("last_seq") or 0))
            case "error":
                return ErrorMessage(error=str(data.get("error", "")))
            case "overflow":
                return OverflowMessage()
            case "sounds":
                return SoundsMessage(
                    sounds=tuple(TaughtSound.from_dict(sound) for sound in data["sounds"])
                )
            case "storage":
                storage = data["storage"]
                return StorageMessage(
                    ok=bool(storage["ok"]),
                    problem=None if storage.get("problem") is None else str(storage["problem"]),
                    unsaved_events=int(storage.get("unsaved_events") or 0),
                )
    except (KeyError, TypeError, ValueError) as err:
        raise MidashengResponseError(f"malformed {kind} message: {err!r}") from err
    return None


class MidashengClient:
    """Client for one MiDasheng Audio service: REST endpoints and the push WebSocket."""

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession,
        token: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        audio_timeout: float = AUDIO_TIMEOUT,
    ) -> None:
        """Use `session` (owned by the caller) to talk to the service at `url`."""
        self._base = URL(normalize_url(url))
        self._session = session
        self._token = token or None
        self._request_timeout = request_timeout
        self._audio_timeout = audio_timeout

    @property
    def url(self) -> str:
        """The service's base URL."""
        return str(self._base)

    def _url(self, *parts: str | int) -> URL:
        url = self._base
        for part in ("v1", *parts):
            url = url / str(part)
        return url

    @property
    def _headers(self) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"Authorization": f"Bearer {self._token}"}

    async def _request(
        self,
        method: str,
        *parts: str | int,
        params: Mapping[str, str | int | float] | None = None,
        json_body: Any = None,
        data: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> Any:
        """Send a request; return decoded JSON (None for 204), mapping every failure."""
        headers = self._headers
        if content_type is not None:
            headers["Content-Type"] = content_type
        url = self._url(*parts)
        try:
            async with asyncio.timeout(request_timeout or self._request_timeout):
                async with self._session.request(
                    method, url, params=params, json=json_body, data=data, headers=headers
                ) as response:
                    body = await response.read()
                    status = response.status
                    resp_headers = response.headers
                    resp_type = response.content_type
        except TimeoutError as err:
            raise MidashengConnectionError(f"timeout talking to {self._base}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise MidashengConnectionError(f"cannot reach {self._base}: {err}") from err

        if status >= 400:
            raise self._error_for(status, body, resp_headers)
        if status == 204:
            return None
        if resp_type != "application/json":
            raise MidashengResponseError(
                f"{url.path} answered {resp_type or 'no content type'}, not JSON", status
            )
        try:
            return json.loads(body)
        except ValueError as err:
            raise MidashengResponseError(f"{url.path} answered invalid JSON", status) from err

    @staticmethod
    def _error_for(status: int, body: bytes, headers: Mapping[str, str]) -> MidashengError:
        try:
            message = str(json.loads(body)["error"])
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace")[:200] or f"HTTP {status}"
        if status in (401, 403):
            return MidashengAuthError(message)
        if status == 404:
            return MidashengNotFoundError(message, status)
        if status == 501:
            return MidashengNotSupportedError(message, status)
        if status == 503:
            try:
                retry_after: float | None = float(headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
            return MidashengBusyError(message, status, retry_after)
        return MidashengResponseError(message, status)

    # REST

    async def info(self) -> ServiceInfo:
        """The service's id, version, categories, models and capabilities."""
        data = await self._request("GET", "info")
        try:
            return ServiceInfo.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise MidashengResponseError(f"unexpected /v1/info answer: {err!r}") from err

    async def sources(self) -> list[Source]:
        """All live sources."""
        data = await self._request("GET", "sources")
        try:
            return [Source.from_dict(s) for s in data["sources"]]
        except (KeyError, TypeError, ValueError) as err:
            raise MidashengResponseError(f"unexpected /v1/sources answer: {err!r}") from err

    async def source(self, source_id: str) -> Source:
        """One source."""
        return Source.from_dict(await self._request("GET", "sources", source_id))

    async def create_source(
        self,
        name: str,
        *,
        url: str | None = None,
        kind: str | None = None,
        sensitivity: str | None = None,
        mode: str | None = None,
    ) -> Source:
        """Create an ffmpeg source (`url`) or a push source (`kind="push"`)."""
        body: dict[str, Any] = {"name": name}
        if url is not None:
            body["url"] = url
        if kind is not None:
            body["kind"] = kind
        if sensitivity is not None:
            body["sensitivity"] = sensitivity
        if mode is not None:
            body["mode"] = mode
        return Source.from_dict(await self._request("POST", "sources", json_body=body))

    async def update_source(
        self,
        source_id: str,
        *,
        name: str | None = None,
        sensitivity: str | None = None,
        mode: str | None = None,
    ) -> Source:
        """Change a source's name, sensitivity and/or mode."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if sensitivity is not None:
            body["sensitivity"] = sensitivity
        if mode is not None:
            body["mode"] = mode
        return Source.from_dict(await self._request("PATCH", "sources", source_id, json_body=body))

    async def delete_source(self, source_id: str) -> None:
        """Stop and remove a source."""
        await self._request("DELETE", "sources", source_id)

    async def sounds(self) -> list[TaughtSound]:
        """Every taught sound."""
        data = await self._request("GET", "sounds")
        return [TaughtSound.from_dict(sound) for sound in data["sounds"]]

    async def create_sound(self, name: str) -> TaughtSound:
        """Make a sound to teach."""
        return TaughtSound.from_dict(
            await self._request("POST", "sounds", json_body={"name": name})
        )

    async def add_sound_example(self, sound_id: str, *, source: str, seconds: float) -> TaughtSound:
        """Teach a sound the last `seconds` a source heard."""
        return TaughtSound.from_dict(
            await self._request(
                "POST",
                "sounds",
                sound_id,
                "examples",
                json_body={"source": source, "seconds": seconds},
            )
        )

    async def delete_sound(self, sound_id: str) -> None:
        """Forget a taught sound."""
        await self._request("DELETE", "sounds", sound_id)

    async def rename_sound(self, sound_id: str, name: str) -> TaughtSound:
        """Rename a taught sound (its id stays)."""
        return TaughtSound.from_dict(
            await self._request("PATCH", "sounds", sound_id, json_body={"name": name})
        )

    async def clear_sound_examples(self, sound_id: str) -> TaughtSound:
        """Forget a taught sound's examples, to teach it again."""
        return TaughtSound.from_dict(await self._request("DELETE", "sounds", sound_id, "examples"))

    async def events(
        self,
        *,
        after: int | None = None,
        limit: int | None = None,
        source: str | None = None,
        category: str | None = None,
    ) -> EventPage:
        """Stored events after a seq, ordered by seq."""
        params: dict[str, str | int] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        if source is not None:
            params["source"] = source
        if category is not None:
            params["category"] = category
        data = await self._request("GET", "events", params=params)
        try:
            return EventPage(
                events=tuple(SoundEvent.from_dict(e) for e in data["events"]),
                last_seq=int(data.get("last_seq") or 0),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MidashengResponseError(f"unexpected /v1/events answer: {err!r}") from err

    async def _lm_request(
        self,
        endpoint: str,
        *,
        question: str | None,
        audio: bytes | None,
        content_type: str,
        source: str | None,
        seconds: float | None,
        event: int | None,
    ) -> str:
        if audio is not None:
            form = aiohttp.FormData()
            form.add_field("audio", audio, content_type=content_type, filename="audio")
            if question is not None:
                form.add_field("question", question)
            data = await self._request(
                "POST", endpoint, data=form, request_timeout=self._audio_timeout
            )
        else:
            if source is None and event is None:
                raise ValueError("give audio, a source or an event")
            body: dict[str, Any] = {}
            if source is not None:
                body["source"] = source
            if seconds is not None:
                body["seconds"] = seconds
            if event is not None:
                body["event"] = event
            if question is not None:
                body["question"] = question
            data = await self._request(
                "POST", endpoint, json_body=body, request_timeout=self._audio_timeout
            )
        try:
            return str(data["text"])
        except (KeyError, TypeError) as err:
            raise MidashengResponseError(f"unexpected /v1/{endpoint} answer: {err!r}") from err

    async def describe(
        self,
        audio: bytes | None = None,
        *,
        content_type: str = "audio/wav",
        source: str | None = None,
        seconds: float | None = None,
        event: int | None = None,
    ) -> str:
        """Caption audio: an upload, a live source's last `seconds`, or a stored event's clip."""
        return await self._lm_request(
            "describe",
            question=None,
            audio=audio,
            content_type=content_type,
            source=source,
            seconds=seconds,
            event=event,
        )

    async def ask(
        self,
        question: str,
        audio: bytes | None = None,
        *,
        content_type: str = "audio/wav",
        source: str | None = None,
        seconds: float | None = None,
        event: int | None = None,
    ) -> str:
        """Answer a question about audio (an upload, a live source or a stored event)."""
        return await self._lm_request(
            "ask",
            question=question,
            audio=audio,
            content_type=content_type,
            source=source,
            seconds=seconds,
            event=event,
        )

    async def transcribe(
        self,
        audio: bytes,
        *,
        content_type: str = "audio/wav",
        language: str | None = None,
        phrases: Iterable[str] | None = None,
    ) -> Transcription:
        """Speech to text; `phrases` are sentences the speaker is expected to say."""
        form = aiohttp.FormData()
        form.add_field("audio", audio, content_type=content_type, filename="audio")
        if language is not None:
            form.add_field("language", language)
        if phrases is not None:
            form.add_field("phrases", json.dumps(list(phrases)))
        data = await self._request(
            "POST", "transcribe", data=form, request_timeout=self._audio_timeout
        )
        try:
            return Transcription(text=str(data["text"]), language=data.get("language"))
        except (KeyError, TypeError) as err:
            raise MidashengResponseError(f"unexpected /v1/transcribe answer: {err!r}") from err

    async def speak_stream(
        self,
        text: str,
        *,
        language: str | None = None,
        voice: str | None = None,
        instruction: str | None = None,
    ) -> AsyncIterator[bytes]:
        """Text to speech, streamed: a WAV header (sizes unknown), then the speech as the
        model makes it. A refused request raises here, before the first byte is awaited."""
        body: dict[str, Any] = {"text": text, "stream": True}
        if language:
            body["language"] = language
        if voice:
            body["voice"] = voice
        if instruction:
            body["instruction"] = instruction
        url = self._url("speak")
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self._audio_timeout):
                response = await stack.enter_async_context(
                    self._session.post(url, json=body, headers=self._headers)
                )
                if response.status >= 400:
                    raise self._error_for(response.status, await response.read(), response.headers)
                if response.content_type != "audio/wav":
                    raise MidashengResponseError(
                        f"{url.path} answered {response.content_type}, not speech",
                        response.status,
                    )
        except TimeoutError as err:
            await stack.aclose()
            raise MidashengConnectionError(f"timeout talking to {self._base}") from err
        except (aiohttp.ClientError, OSError) as err:
            await stack.aclose()
            raise MidashengConnectionError(f"cannot reach {self._base}: {err}") from err
        except BaseException:
            await stack.aclose()
            raise
        return self._speech_blocks(stack, response)

    async def _speech_blocks(
        self, stack: contextlib.AsyncExitStack, response: aiohttp.ClientResponse
    ) -> AsyncIterator[bytes]:
        """The body of a streamed answer as it arrives; each block within the audio timeout."""
        async with stack:
            try:
                while True:
                    async with asyncio.timeout(self._audio_timeout):
                        block = await response.content.readany()
                    if not block:
                        return
                    yield block
            except TimeoutError as err:
                raise MidashengConnectionError(f"{self._base} stopped sending speech") from err
            except (aiohttp.ClientError, OSError) as err:
                raise MidashengConnectionError(
                    f"speech from {self._base} broke off: {err}"
                ) from err

    # WebSocket

    async def _ws_connect(self) -> aiohttp.ClientWebSocketResponse:
        url = self._url("ws")
        url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        try:
            async with asyncio.timeout(self._request_timeout):
                return await self._session.ws_connect(
                    url, headers=self._headers, heartbeat=WS_HEARTBEAT
                )
        except aiohttp.WSServerHandshakeError as err:
            if err.status in (401, 403):
                raise MidashengAuthError(err.message) from err
            raise MidashengConnectionError(
                f"WebSocket handshake with {self._base} failed: {err.status} {err.message}"
            ) from err
        except TimeoutError as err:
            raise MidashengConnectionError(f"timeout connecting to {self._base}") from err
        except (aiohttp.ClientError, OSError) as err:
            raise MidashengConnectionError(f"cannot reach {self._base}: {err}") from err

    async def subscribe(self, after: int | None = None) -> AsyncIterator[WsMessage]:
        """Subscribe to events, levels and sources; yield messages until the connection ends.

        With `after`, every stored event with a larger seq is replayed first. The iterator
        never ends quietly: a closed or broken connection raises MidashengConnectionError,
        so a caller resumes with the last seq it saw.
        """
        ws = await self._ws_connect()
        try:
            request: dict[str, Any] = {"type": "subscribe"}
            if after is not None:
                request["after"] = after
            try:
                await ws.send_json(request)
                async for frame in ws:
                    if frame.type is not aiohttp.WSMsgType.TEXT:
                        # Binary frames only flow client to server; aiohttp answers pings.
                        continue
                    try:
                        message = parse_message(json.loads(frame.data))
                    except (ValueError, MidashengResponseError) as err:
                        _LOGGER.warning("Ignoring a malformed message from the service: %s", err)
                        continue
                    if message is None:
                        _LOGGER.debug("Ignoring an unknown message: %s", frame.data[:200])
                        continue
                    yield message
            except (aiohttp.ClientError, ConnectionError) as err:
                raise MidashengConnectionError(f"connection to {self._base} failed: {err}") from err
            raise MidashengConnectionError(
                f"the service closed the connection (code {ws.close_code})"
            )
        finally:
            await ws.close()
