"""Actions with response data: describe, ask, transcribe and recent_events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
import mimetypes
from pathlib import Path
from typing import Any

from homeassistant.components import media_source
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.util import dt as dt_util, raise_if_invalid_path
import voluptuous as vol

from .api import (
    MidashengBusyError,
    MidashengClient,
    MidashengConnectionError,
    MidashengError,
    MidashengNotFoundError,
    MidashengNotSupportedError,
    TaughtSound,
)
from .const import DOMAIN
from .coordinator import MidashengConfigEntry
from .sounds import DATA_SOUNDS, FoundEvent

ATTR_CONFIG_ENTRY_ID = "config_entry_id"
SERVICE_DESCRIBE = "describe"
SERVICE_ASK = "ask"
SERVICE_TRANSCRIBE = "transcribe"
SERVICE_RECENT_EVENTS = "recent_events"
SERVICE_TEACH_SOUND = "teach_sound"
SERVICE_FORGET_SOUND = "forget_sound"
SERVICE_RENAME_SOUND = "rename_sound"
SERVICE_TAUGHT_SOUNDS = "taught_sounds"

ATTR_SOURCE = "source"
ATTR_EVENT = "event"
ATTR_MEDIA = "media"
ATTR_FILE = "file"
ATTR_SECONDS = "seconds"
ATTR_QUESTION = "question"
ATTR_LANGUAGE = "language"
ATTR_CATEGORY = "category"
ATTR_SINCE = "since"
ATTR_LIMIT = "limit"
ATTR_NAME = "name"
ATTR_SOUND = "sound"

MEDIA_SOURCE_PREFIX = "media-source://media_source/"
# Uploads larger than this are refused before reading them (the service's default limit).
MAX_FILE_BYTES = 50 * 1024 * 1024

_ENTRY: dict[vol.Marker, Any] = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}
_AUDIO: dict[vol.Marker, Any] = {
    vol.Exclusive(ATTR_SOURCE, "audio"): cv.string,
    vol.Exclusive(ATTR_EVENT, "audio"): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Exclusive(ATTR_MEDIA, "audio"): vol.Any(
        cv.string,
        vol.Schema({vol.Required("media_content_id"): cv.string}, extra=vol.ALLOW_EXTRA),
    ),
    vol.Exclusive(ATTR_FILE, "audio"): cv.string,
    vol.Optional(ATTR_SECONDS): vol.All(vol.Coerce(float), vol.Range(min=1, max=60)),
}
DESCRIBE_SCHEMA = vol.Schema({**_ENTRY, **_AUDIO})
ASK_SCHEMA = vol.Schema({**_ENTRY, **_AUDIO, vol.Required(ATTR_QUESTION): cv.string})
TRANSCRIBE_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Exclusive(ATTR_MEDIA, "audio"): _AUDIO[vol.Exclusive(ATTR_MEDIA, "audio")],
        vol.Exclusive(ATTR_FILE, "audio"): cv.string,
        vol.Optional(ATTR_LANGUAGE): cv.string,
    }
)
RECENT_EVENTS_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Optional(ATTR_SOURCE): cv.string,
        vol.Optional(ATTR_CATEGORY): cv.string,
        vol.Optional(ATTR_SINCE): cv.datetime,
        vol.Optional(ATTR_LIMIT, default=20): vol.All(vol.Coerce(int), vol.Range(min=1, max=1000)),
    }
)


TEACH_SOUND_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_NAME): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=100)),
        vol.Required(ATTR_SOURCE): cv.string,
        vol.Optional(ATTR_SECONDS, default=5.0): vol.All(
            vol.Coerce(float), vol.Range(min=0.5, max=10)
        ),
    }
)
FORGET_SOUND_SCHEMA = vol.Schema({**_ENTRY, vol.Required(ATTR_SOUND): cv.string})
RENAME_SOUND_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required(ATTR_SOUND): cv.string,
        vol.Required(ATTR_NAME): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=100)),
    }
)
TAUGHT_SOUNDS_SCHEMA = vol.Schema(_ENTRY)


def _error(key: str, **placeholders: Any) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _entry(hass: HomeAssistant, call: ServiceCall) -> MidashengConfigEntry:
    """The entry named by the call, or the only loaded one."""
    if entry_id := call.data.get(ATTR_CONFIG_ENTRY_ID):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise _error("unknown_entry", entry_id=entry_id)
        if entry.state is not ConfigEntryState.LOADED:
            raise _error("entry_not_loaded", title=entry.title)
        return entry
    entries = hass.config_entries.async_loaded_entries(DOMAIN)
    if not entries:
        raise _error("no_loaded_entry")
    if len(entries) > 1:
        raise _error("entry_required")
    return entries[0]


def _map_error(err: MidashengError, entry: MidashengConfigEntry) -> HomeAssistantError:
    """A translated error for a failed request."""
    if isinstance(err, MidashengNotSupportedError):
        return _error("not_supported", error=str(err))
    if isinstance(err, MidashengNotFoundError):
        return _error("not_found", error=str(err))
    if isinstance(err, MidashengBusyError):
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="busy")
    if isinstance(err, MidashengConnectionError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="service_unavailable",
            translation_placeholders={"title": entry.title, "error": str(err)},
        )
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="service_error",
        translation_placeholders={"error": str(err)},
    )


async def _async_media_path(hass: HomeAssistant, media: Any) -> Path:
    """The local file behind a media-source id, resolved by the media source integration
    (the id of any source that plays a local file); without it loaded, or on a Home
    Assistant whose resolved media carries no path (before 2025.7), the id of a local media
    folder is read directly."""
    media_id = media["media_content_id"] if isinstance(media, dict) else str(media)
    if "media_source" in hass.config.components:
        try:
            play = await media_source.async_resolve_media(hass, media_id, None)
        except HomeAssistantError as err:
            raise _error("unsupported_media", media=media_id) from err
        if (path := getattr(play, "path", None)) is not None:
            return Path(path)
        if not media_id.startswith(MEDIA_SOURCE_PREFIX):
            # Resolved to a URL only (a camera, a TTS message): nothing to read here.
            raise _error("unsupported_media", media=media_id)
    return _media_path(media_id, hass)


def _media_path(media_id: str, hass: HomeAssistant) -> Path:
    """The local file behind a media-source id of a local media folder."""
    if not media_id.startswith(MEDIA_SOURCE_PREFIX):
        raise _error("unsupported_media", media=media_id)
    source_dir_id, _, location = media_id.removeprefix(MEDIA_SOURCE_PREFIX).partition("/")
    if source_dir_id not in hass.config.media_dirs or not location:
        raise _error("unsupported_media", media=media_id)
    try:
        raise_if_invalid_path(location)
    except ValueError as err:
        raise _error("unsupported_media", media=media_id) from err
    return Path(hass.config.media_dirs[source_dir_id]) / location


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return path.read_bytes()


async def _async_audio(hass: HomeAssistant, data: dict[str, Any]) -> tuple[bytes, str] | None:
    """The audio file given by `media` or `file`, with its content type; None without."""
    if ATTR_MEDIA in data:
        path = await _async_media_path(hass, data[ATTR_MEDIA])
    elif ATTR_FILE in data:
        path = Path(data[ATTR_FILE])
        if not hass.config.is_allowed_path(str(path)):
            raise _error("file_not_allowed", file=str(path))
    else:
        return None
    try:
        audio = await hass.async_add_executor_job(_read, path)
    except (OSError, ValueError) as err:
        raise _error("file_unreadable", file=str(path), error=str(err)) from err
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return audio, content_type


def _check_target(entry: MidashengConfigEntry, data: dict[str, Any]) -> None:
    if not any(key in data for key in (ATTR_SOURCE, ATTR_EVENT, ATTR_MEDIA, ATTR_FILE)):
        raise _error("no_audio")
    source = data.get(ATTR_SOURCE)
    if source is not None and source not in entry.runtime_data.coordinator.sources:
        raise _error("unknown_source", source=source)


async def _async_lm(hass: HomeAssistant, call: ServiceCall, capability: str) -> ServiceResponse:
    entry = _entry(hass, call)
    data = dict(call.data)
    _check_target(entry, data)
    if not entry.runtime_data.coordinator.info.supports(capability):
        raise _error("no_lm", title=entry.title)
    audio = await _async_audio(hass, data)
    client = entry.runtime_data.client
    kwargs: dict[str, Any] = {}
    if audio is not None:
        kwargs = {"audio": audio[0], "content_type": audio[1]}
    else:
        kwargs = {
            "source": data.get(ATTR_SOURCE),
            "event": data.get(ATTR_EVENT),
            "seconds": data.get(ATTR_SECONDS),
        }
    try:
        if capability == SERVICE_ASK:
            text = await client.ask(data[ATTR_QUESTION], **kwargs)
        else:
            text = await client.describe(**kwargs)
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return {"text": text}


async def _async_describe(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    return await _async_lm(hass, call, SERVICE_DESCRIBE)


async def _async_ask(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    return await _async_lm(hass, call, SERVICE_ASK)


async def _async_transcribe(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    entry = _entry(hass, call)
    if not entry.runtime_data.coordinator.info.supports(SERVICE_TRANSCRIBE):
        raise _error("no_asr", title=entry.title)
    audio = await _async_audio(hass, dict(call.data))
    if audio is None:
        raise _error("no_audio")
    try:
        result = await entry.runtime_data.client.transcribe(
            audio[0], content_type=audio[1], language=call.data.get(ATTR_LANGUAGE)
        )
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return {"text": result.text, "language": result.language}


async def _async_recent_events(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    entry = _entry(hass, call)
    coordinator = entry.runtime_data.coordinator
    source = call.data.get(ATTR_SOURCE)
    if source is not None and source not in coordinator.sources:
        raise _error("unknown_source", source=source)
    category = call.data.get(ATTR_CATEGORY)
    if category is not None and category not in coordinator.info.category_ids:
        raise _error("unknown_category", category=category)
    since: datetime | None = call.data.get(ATTR_SINCE)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt_util.get_default_time_zone())
    limit: int = call.data[ATTR_LIMIT]
    after = max(0, (coordinator.resume.last_seq or 0) - 1000)
    try:
        page = await entry.runtime_data.client.events(
            after=after, limit=1000, source=source, category=category
        )
    except MidashengError as err:
        raise _map_error(err, entry) from err
    assistant = hass.data[DATA_SOUNDS]
    events = [
        FoundEvent(
            entry_id=entry.entry_id,
            event=event,
            place=assistant.source_place(entry, event.source),
        )
        for event in page.events
        if event.start is not None and (since is None or event.start >= since)
    ]
    events.sort(key=lambda found: found.event.seq, reverse=True)
    return {"events": [found.as_dict() for found in events[:limit]]}


async def _async_teach_sound(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """ "That was it": the source's last seconds become one more example of the named sound
    (made the first time); from three examples on the service detects it."""
    entry = _entry(hass, call)
    source = call.data[ATTR_SOURCE]
    if source not in entry.runtime_data.coordinator.sources:
        raise _error("unknown_source", source=source)
    name: str = call.data[ATTR_NAME]
    client = entry.runtime_data.client
    try:
        sound = next(
            (s for s in await client.sounds() if s.name.casefold() == name.casefold()), None
        )
        if sound is None:
            sound = await client.create_sound(name)
        sound = await client.add_sound_example(
            sound.id, source=source, seconds=call.data[ATTR_SECONDS]
        )
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return sound.as_dict()


async def _find_sound(client: MidashengClient, wanted: str) -> TaughtSound:
    """A taught sound by its id or name (any case); ServiceValidationError when none."""
    for sound in await client.sounds():
        if sound.id == wanted or sound.name.casefold() == wanted.casefold():
            return sound
    raise _error("unknown_sound", sound=wanted)


async def _async_forget_sound(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Forget a taught sound, by its name or id."""
    entry = _entry(hass, call)
    client = entry.runtime_data.client
    try:
        sound = await _find_sound(client, call.data[ATTR_SOUND])
        await client.delete_sound(sound.id)
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return {"id": sound.id, "name": sound.name}


async def _async_rename_sound(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """Give a taught sound another name (its id, sensors and history stay)."""
    entry = _entry(hass, call)
    client = entry.runtime_data.client
    try:
        sound = await _find_sound(client, call.data[ATTR_SOUND])
        renamed = await client.rename_sound(sound.id, call.data[ATTR_NAME])
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return renamed.as_dict()


async def _async_taught_sounds(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    """The sounds taught by example: name, id, examples, and whether sources detect them."""
    entry = _entry(hass, call)
    try:
        sounds = await entry.runtime_data.client.sounds()
    except MidashengError as err:
        raise _map_error(err, entry) from err
    return {"sounds": [sound.as_dict() for sound in sounds]}


type Handler = Callable[[HomeAssistant, ServiceCall], Awaitable[ServiceResponse]]

SERVICES: dict[
    str, tuple[vol.Schema, Callable[[HomeAssistant, ServiceCall], Awaitable[ServiceResponse]]]
] = {
    SERVICE_DESCRIBE: (DESCRIBE_SCHEMA, _async_describe),
    SERVICE_ASK: (ASK_SCHEMA, _async_ask),
    SERVICE_TRANSCRIBE: (TRANSCRIBE_SCHEMA, _async_transcribe),
    SERVICE_RECENT_EVENTS: (RECENT_EVENTS_SCHEMA, _async_recent_events),
    SERVICE_TAUGHT_SOUNDS: (TAUGHT_SOUNDS_SCHEMA, _async_taught_sounds),
}
# Actions that change something: a response is there for whoever wants it.
CHANGING: dict[
    str, tuple[vol.Schema, Callable[[HomeAssistant, ServiceCall], Awaitable[ServiceResponse]]]
] = {
    SERVICE_TEACH_SOUND: (TEACH_SOUND_SCHEMA, _async_teach_sound),
    SERVICE_FORGET_SOUND: (FORGET_SOUND_SCHEMA, _async_forget_sound),
    SERVICE_RENAME_SOUND: (RENAME_SOUND_SCHEMA, _async_rename_sound),
}


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, in async_setup)."""
    for name, (schema, handler) in SERVICES.items():

        async def service(call: ServiceCall, handler: Handler = handler) -> ServiceResponse:
            return await handler(hass, call)

        hass.services.async_register(
            DOMAIN, name, service, schema=schema, supports_response=SupportsResponse.ONLY
        )
    for name, (schema, handler) in CHANGING.items():

        async def changing(call: ServiceCall, handler: Handler = handler) -> ServiceResponse:
            response = await handler(hass, call)
            return response if call.return_response else None

        hass.services.async_register(
            DOMAIN, name, changing, schema=schema, supports_response=SupportsResponse.OPTIONAL
        )
