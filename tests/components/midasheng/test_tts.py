"""Text to speech: the entity exists only when the service has a model that speaks, offers
its voices, and hands Home Assistant the service's WAV (through `tts.speak` to a player)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import struct
import subprocess
from typing import Any
from unittest.mock import MagicMock

from homeassistant.components import tts
from homeassistant.components.media_player import ATTR_MEDIA_CONTENT_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.midasheng.api import (
    MidashengConnectionError,
    MidashengResponseError,
    ServiceInfo,
)

from .conftest import load_json

ENTITY_ID = "tts.midasheng_audio_text_to_speech"
VOICES = [
    {"id": "default", "name": "Default", "instruction": None},
    {"id": "calm", "name": "Calm", "instruction": "Speak calmly and slowly, in a soft voice."},
]


RATE = 24000
# What `/v1/speak` streams: a WAV header whose sizes are unknown (0xFFFFFFFF), then the PCM in
# the pieces the model makes (here 0.25 s each, 0.5 s in all).
HEADER = (
    b"RIFF\xff\xff\xff\xffWAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
    + b"data\xff\xff\xff\xff"
)
PIECES = [HEADER, b"\x01\x00" * (RATE // 4), b"\x02\x00" * (RATE // 4)]


def _streamed(*pieces: bytes, error: Exception | None = None) -> Any:
    """A `speak_stream` stand-in: the blocks as an async iterator, maybe failing after them."""

    async def blocks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        if error is not None:
            raise error

    async def speak_stream(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        return blocks()

    return speak_stream


@pytest.fixture
def speaking_client(mock_client: MagicMock) -> MagicMock:
    """The service has MiMo-Audio as its speech model (a double at the client boundary)."""
    info = load_json("info.json")
    info["models"]["tts"] = {
        "available": True,
        "name": "MiMo-Audio-7B-Instruct",
        "backend": "openai",
        "languages": ["en", "zh"],
        "voices": VOICES,
        "reference_voice": True,
    }
    info["capabilities"] = [*info["capabilities"], "speak"]
    mock_client.info.return_value = ServiceInfo.from_dict(info)
    mock_client.speak_stream.side_effect = _streamed(*PIECES)
    return mock_client


def _seconds_of(audio: bytes) -> float:
    """How long a media file plays, decoded by ffmpeg (as a player would)."""
    pcm = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:", "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
        input=audio,
        capture_output=True,
        check=True,
    ).stdout
    return len(pcm) / 2 / 16000


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await async_setup_component(hass, "media_source", {})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_speak_to_a_player(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    speaking_client: MagicMock,
    entity_registry: er.EntityRegistry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """`tts.speak` hands a player a media source whose audio is the service's WAV, spoken
    in the voice and language asked for."""
    await _setup(hass, mock_config_entry)
    entity = entity_registry.async_get(ENTITY_ID)
    assert entity is not None and entity.translation_key == "text_to_speech"
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "tts/engine/get", "engine_id": ENTITY_ID})
    provider = (await client.receive_json())["result"]["provider"]
    assert provider["supported_languages"] == ["en", "zh"]
    await client.send_json_auto_id(
        {"type": "tts/engine/voices", "engine_id": ENTITY_ID, "language": "en"}
    )
    voices = (await client.receive_json())["result"]["voices"]
    assert [v["voice_id"] for v in voices] == ["default", "calm"]

    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        tts.DOMAIN,
        "speak",
        {
            "entity_id": ENTITY_ID,
            "media_player_entity_id": "media_player.kitchen",
            "message": "The washing machine has finished",
            "language": "en",
            "options": {"voice": "calm"},
            "cache": False,
        },
        blocking=True,
    )
    assert len(calls) == 1
    # Home Assistant hands players MP3 by default, converted from the service's WAV by ffmpeg.
    extension, data = await tts.async_get_media_source_audio(
        hass, calls[0].data[ATTR_MEDIA_CONTENT_ID]
    )
    assert extension == "mp3"
    assert abs(_seconds_of(data) - 0.5) < 0.1  # a playable MP3 of the service's 0.5 s
    speaking_client.speak_stream.assert_awaited_once_with(
        "The washing machine has finished", language="en", voice="calm", instruction=None
    )


async def _speak(hass: HomeAssistant, options: dict[str, Any]) -> tuple[str | None, bytes]:
    """`tts.speak` to a player stand-in, and the audio the player would fetch."""
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        tts.DOMAIN,
        "speak",
        {
            "entity_id": ENTITY_ID,
            "media_player_entity_id": "media_player.kitchen",
            "message": "hello",
            "language": "zh",
            # A player that takes WAV (as Assist satellites do) gets the service's file as is.
            "options": {**options, "preferred_format": "wav"},
            "cache": False,
        },
        blocking=True,
    )
    return await tts.async_get_media_source_audio(hass, calls[-1].data[ATTR_MEDIA_CONTENT_ID])


async def test_an_instruction_and_failures(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, speaking_client: MagicMock
) -> None:
    """A free-text instruction reaches the service; a refused request and speech that breaks
    off are errors, not silence."""
    await _setup(hass, mock_config_entry)
    assert await _speak(hass, {"instruction": "whisper it"}) == ("wav", b"".join(PIECES))
    speaking_client.speak_stream.assert_awaited_with(
        "hello", language="zh", voice="default", instruction="whisper it"
    )
    speaking_client.speak_stream.side_effect = MidashengResponseError(
        "the speech server failed", 502
    )
    with pytest.raises(HomeAssistantError, match="the speech server failed"):
        await _speak(hass, {})
    speaking_client.speak_stream.side_effect = _streamed(
        *PIECES[:2], error=MidashengConnectionError("speech broke off")
    )
    with pytest.raises(HomeAssistantError, match="stopped speaking: speech broke off"):
        await _speak(hass, {"voice": "calm"})


async def test_no_entity_without_a_speech_model(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    entity_registry: er.EntityRegistry,
) -> None:
    """A service whose info says no model speaks gets no text-to-speech entity."""
    info = load_json("info.json")
    info["models"]["tts"] = {"available": False, "reason": "no speech model is loaded"}
    mock_client.info.return_value = ServiceInfo.from_dict(info)
    await _setup(hass, mock_config_entry)
    assert entity_registry.async_get(ENTITY_ID) is None
    assert mock_client.info.return_value.tts is None
