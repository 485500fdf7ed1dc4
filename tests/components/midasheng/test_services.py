"""The actions: describe, ask, transcribe, recent_events and the taught sounds'."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import MagicMock, patch

from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.midasheng.api import (
    MidashengBusyError,
    MidashengConnectionError,
    MidashengNotFoundError,
    MidashengNotSupportedError,
    MidashengResponseError,
    Transcription,
)
from custom_components.midasheng.const import DOMAIN

from .conftest import sound_event


async def call(hass: HomeAssistant, service: str, **data: Any) -> dict[str, Any]:
    """Call an action and return its response."""
    response = await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True
    )
    assert response is not None
    return dict(response)


@pytest.mark.usefixtures("lm_client", "init_integration")
async def test_describe_and_ask(
    hass: HomeAssistant, mock_client: MagicMock, tmp_path: Path
) -> None:
    """A source, an event or a file is described or asked about."""
    assert await call(hass, "describe", source="kitchen", seconds=5) == {
        "text": "A smoke alarm beeps in a quiet room."
    }
    mock_client.describe.assert_awaited_with(source="kitchen", event=None, seconds=5.0)
    assert await call(hass, "ask", event=42, question="Is it an alarm?") == {
        "text": "Yes, it is a smoke alarm."
    }
    mock_client.ask.assert_awaited_with("Is it an alarm?", source=None, event=42, seconds=None)

    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF0000WAVE")
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    await call(hass, "describe", file=str(clip))
    mock_client.describe.assert_awaited_with(audio=b"RIFF0000WAVE", content_type="audio/x-wav")
    hass.config.media_dirs = {"local": str(tmp_path)}
    await call(
        hass,
        "ask",
        media={"media_content_id": "media-source://media_source/local/clip.wav"},
        question="What is it?",
    )
    mock_client.ask.assert_awaited_with(
        "What is it?", audio=b"RIFF0000WAVE", content_type="audio/x-wav"
    )


@pytest.mark.usefixtures("lm_client", "init_integration")
@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({}, "no_audio"),
        ({"source": "garage"}, "unknown_source"),
        ({"file": "/etc/passwd"}, "file_not_allowed"),
        ({"media": "media-source://camera/camera.door"}, "unsupported_media"),
        ({"media": "media-source://media_source/other/x.wav"}, "unsupported_media"),
        ({"media": "media-source://media_source/local/../x.wav"}, "unsupported_media"),
        ({"media": "media-source://media_source/local/missing.wav"}, "file_unreadable"),
        ({"source": "kitchen", "config_entry_id": "nope"}, "unknown_entry"),
    ],
)
async def test_describe_invalid(
    hass: HomeAssistant, tmp_path: Path, data: dict[str, Any], key: str
) -> None:
    """Bad input is a translated validation error."""
    hass.config.media_dirs = {"local": str(tmp_path)}
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "describe", **data)
    assert err.value.translation_key == key


@pytest.mark.usefixtures("lm_client", "init_integration")
@pytest.mark.parametrize(
    ("error", "kind", "key"),
    [
        (MidashengNotSupportedError("no LM", 501), ServiceValidationError, "not_supported"),
        (MidashengNotFoundError("no clip", 404), ServiceValidationError, "not_found"),
        (MidashengBusyError("busy"), HomeAssistantError, "busy"),
        (MidashengConnectionError("down"), HomeAssistantError, "service_unavailable"),
        (MidashengResponseError("bad", 500), HomeAssistantError, "service_error"),
    ],
)
async def test_service_errors(
    hass: HomeAssistant,
    mock_client: MagicMock,
    error: Exception,
    kind: type[Exception],
    key: str,
) -> None:
    """Errors of the service are translated."""
    mock_client.describe.side_effect = error
    with pytest.raises(kind) as err:
        await call(hass, "describe", event=42)
    assert err.value.translation_key == key


@pytest.mark.usefixtures("init_integration")
async def test_no_lm(hass: HomeAssistant) -> None:
    """Without an audio LM describe and ask say so."""
    for service, extra in (("describe", {}), ("ask", {"question": "What is it?"})):
        with pytest.raises(ServiceValidationError) as err:
            await call(hass, service, source="kitchen", **extra)
        assert err.value.translation_key == "no_lm"
    with pytest.raises(vol.Invalid):
        await call(hass, "ask", source="kitchen")
    with pytest.raises(vol.Invalid):
        await call(hass, "describe", source="kitchen", event=3)


@pytest.mark.usefixtures("init_integration")
async def test_transcribe(hass: HomeAssistant, mock_client: MagicMock, tmp_path: Path) -> None:
    """A file is transcribed; without audio or ASR it is refused."""
    clip = tmp_path / "command.wav"
    clip.write_bytes(b"RIFF")
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    mock_client.transcribe.return_value = Transcription(text="hello", language="en")
    assert await call(hass, "transcribe", file=str(clip), language="en") == {
        "text": "hello",
        "language": "en",
    }
    mock_client.transcribe.assert_awaited_with(b"RIFF", content_type="audio/x-wav", language="en")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "transcribe")
    assert err.value.translation_key == "no_audio"
    mock_client.transcribe.side_effect = MidashengConnectionError("down")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "transcribe", file=str(clip))
    assert err.value.translation_key == "service_unavailable"
    mock_client.info.return_value = mock_client.info.return_value.__class__.from_dict(
        {**mock_client.info.return_value.as_dict(), "capabilities": ["classify"]}
    )
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "transcribe", file=str(clip))
    assert err.value.translation_key == "no_asr"


@pytest.mark.usefixtures("init_integration")
async def test_recent_events(
    hass: HomeAssistant, mock_client: MagicMock, service_events: list[dict[str, Any]]
) -> None:
    """Events come newest first, filtered by source, category, time and count."""
    service_events.extend(
        [
            sound_event(40, "dog_bark", source="hall", minutes_ago=120),
            sound_event(41, "dog_bark", source="hall", minutes_ago=20),
            sound_event(42, minutes_ago=2),
        ]
    )
    everything = await call(hass, "recent_events")
    assert [e["seq"] for e in everything["events"]] == [42, 41, 40]
    assert everything["events"][0]["place"] == "Kitchen"
    dogs = await call(hass, "recent_events", source="hall", category="dog_bark", limit=1)
    assert [e["seq"] for e in dogs["events"]] == [41]
    recent = await call(hass, "recent_events", since="2000-01-01T00:00:00")
    assert len(recent["events"]) == 3
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "recent_events", source="garage")
    assert err.value.translation_key == "unknown_source"
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "recent_events", category="thunder")
    assert err.value.translation_key == "unknown_category"
    mock_client.events.side_effect = MidashengConnectionError("down")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "recent_events")
    assert err.value.translation_key == "service_unavailable"


async def test_entry_selection(
    hass: HomeAssistant, init_integration: MockConfigEntry, service_events: list[dict[str, Any]]
) -> None:
    """One loaded entry answers alone; two need config_entry_id; none is an error."""
    other = MockConfigEntry(domain=DOMAIN, title="Other", unique_id="other", data={})
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "recent_events", config_entry_id=other.entry_id)
    assert err.value.translation_key == "entry_not_loaded"
    assert await call(hass, "recent_events", config_entry_id=init_integration.entry_id)
    await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "recent_events")
    assert err.value.translation_key == "no_loaded_entry"


@pytest.mark.usefixtures("lm_client", "init_integration")
async def test_media_resolved_by_the_media_source_integration(
    hass: HomeAssistant, mock_client: MagicMock, tmp_path: Path
) -> None:
    """With the media source integration loaded, a media id is resolved through it (not
    parsed), so whatever it allows is what the action reads; what it refuses is refused."""
    hass.config.media_dirs = {"recordings": str(tmp_path)}
    (tmp_path / "doorbell.wav").write_bytes(b"RIFF1111WAVE")
    assert await async_setup_component(hass, "media_source", {})
    resolved: list[str] = []
    real = media_source.async_resolve_media

    async def resolve(hass: HomeAssistant, media_id: str, player: Any) -> Any:
        resolved.append(media_id)
        return await real(hass, media_id, player)

    doorbell = "media-source://media_source/recordings/doorbell.wav"
    with patch.object(media_source, "async_resolve_media", resolve):
        await call(hass, "describe", media={"media_content_id": doorbell})
    assert resolved == [doorbell]
    mock_client.describe.assert_awaited_with(audio=b"RIFF1111WAVE", content_type="audio/x-wav")
    for refused in (
        "media-source://media_source/recordings/../../etc/passwd",
        "media-source://media_source/nowhere/doorbell.wav",
        "media-source://no_such_integration/x",
    ):
        with pytest.raises(ServiceValidationError) as err:
            await call(hass, "describe", media=refused)
        assert err.value.translation_key in ("unsupported_media", "file_unreadable"), refused


@pytest.mark.usefixtures("init_integration")
async def test_teach_and_forget_a_sound(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """ "That was it": the first call makes the sound, each call adds the source's last
    seconds as an example; forgetting finds it by name or id. Unknown sources and sounds,
    and service errors, say so."""
    from custom_components.midasheng.api import TaughtSound

    taught: dict[str, TaughtSound] = {}

    async def create_sound(name: str) -> TaughtSound:
        taught[name] = TaughtSound(id=f"custom:{name.lower()}", name=name)
        return taught[name]

    async def add_example(sound_id: str, *, source: str, seconds: float) -> TaughtSound:
        sound = next(s for s in taught.values() if s.id == sound_id)
        examples = sound.examples + 1
        taught[sound.name] = TaughtSound(
            id=sound.id, name=sound.name, examples=examples, ready=examples >= 3
        )
        return taught[sound.name]

    mock_client.sounds.side_effect = lambda: list(taught.values())
    mock_client.create_sound.side_effect = create_sound
    mock_client.add_sound_example.side_effect = add_example

    for examples in (1, 2, 3):
        answer = await call(hass, "teach_sound", name="Doorbell", source="hall", seconds=4)
        assert answer == {
            "id": "custom:doorbell",
            "name": "Doorbell",
            "examples": examples,
            "ready": examples == 3,
        }
    mock_client.create_sound.assert_awaited_once_with("Doorbell")
    mock_client.add_sound_example.assert_awaited_with("custom:doorbell", source="hall", seconds=4.0)
    # Without asking for a response, the action still teaches.
    await hass.services.async_call(
        DOMAIN, "teach_sound", {"name": "doorbell", "source": "hall"}, blocking=True
    )
    mock_client.add_sound_example.assert_awaited_with("custom:doorbell", source="hall", seconds=5.0)

    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "teach_sound", name="Doorbell", source="garage")
    assert err.value.translation_key == "unknown_source"
    with pytest.raises(vol.Invalid):
        await call(hass, "teach_sound", name="Doorbell", source="hall", seconds=60)

    listed = await call(hass, "taught_sounds")
    assert listed == {
        "sounds": [{"id": "custom:doorbell", "name": "Doorbell", "examples": 4, "ready": True}]
    }

    async def rename_sound(sound_id: str, name: str) -> TaughtSound:
        return TaughtSound(id=sound_id, name=name, examples=4, ready=True)

    mock_client.rename_sound.side_effect = rename_sound
    renamed = await call(hass, "rename_sound", sound="custom:doorbell", name="Front door")
    assert renamed == {"id": "custom:doorbell", "name": "Front door", "examples": 4, "ready": True}
    mock_client.rename_sound.assert_awaited_once_with("custom:doorbell", "Front door")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "rename_sound", sound="Kettle", name="x")
    assert err.value.translation_key == "unknown_sound"

    assert await call(hass, "forget_sound", sound="DOORBELL") == {
        "id": "custom:doorbell",
        "name": "Doorbell",
    }
    mock_client.delete_sound.assert_awaited_once_with("custom:doorbell")
    taught.clear()
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "forget_sound", sound="Doorbell")
    assert err.value.translation_key == "unknown_sound"
    mock_client.sounds.side_effect = MidashengConnectionError("down")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "teach_sound", name="Doorbell", source="hall")
    assert err.value.translation_key == "service_unavailable"
