"""The speech-to-text entity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from unittest.mock import MagicMock

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.midasheng.api import MidashengConnectionError, ServiceInfo, Transcription

from .conftest import FakeService, handshake, load_json

ENTITY_ID = "stt.midasheng_audio_speech_to_text"
METADATA = stt.SpeechMetadata(
    language="en-US",
    format=stt.AudioFormats.WAV,
    codec=stt.AudioCodecs.PCM,
    bit_rate=stt.AudioBitRates.BITRATE_16,
    sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
    channel=stt.AudioChannels.CHANNEL_MONO,
)


async def _stream() -> AsyncIterator[bytes]:
    yield b"\x00\x00" * 160
    yield b"\x01\x00" * 160


def _info(**asr: object) -> ServiceInfo:
    info = load_json("info.json")
    info["models"]["asr"].update(asr)
    return ServiceInfo.from_dict(info)


async def _setup(hass: HomeAssistant, entry: MockConfigEntry, fake_service: FakeService) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()


async def test_entity(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    entity_registry: er.EntityRegistry,
) -> None:
    """The entity takes 16 kHz 16-bit mono WAV in the service's languages."""
    # A recognizer that takes no phrase lists (Whisper, say).
    mock_client.info.return_value = _info(languages=["en", "de"], phrases=False)
    await _setup(hass, mock_config_entry, fake_service)
    entity = stt.async_get_speech_to_text_entity(hass, ENTITY_ID)
    assert entity is not None
    assert entity.supported_languages == ["en", "de"]
    assert entity.supported_formats == [stt.AudioFormats.WAV]
    assert entity.supported_codecs == [stt.AudioCodecs.PCM]
    assert entity.supported_bit_rates == [stt.AudioBitRates.BITRATE_16]
    assert entity.supported_sample_rates == [stt.AudioSampleRates.SAMPLERATE_16000]
    assert entity.supported_channels == [stt.AudioChannels.CHANNEL_MONO]
    entry = entity_registry.async_get(ENTITY_ID)
    assert entry is not None
    assert entry.unique_id.endswith("_stt")

    mock_client.transcribe.return_value = Transcription(text="turn on the light", language="en")
    result = await entity.internal_async_process_audio_stream(METADATA, _stream())
    assert result == stt.SpeechResult("turn on the light", stt.SpeechResultState.SUCCESS)
    audio = mock_client.transcribe.await_args.args[0]
    assert audio.startswith(b"RIFF") and len(audio) == 44 + 640
    # This recognizer takes no phrases.
    assert mock_client.transcribe.await_args.kwargs == {"language": "en", "phrases": None}

    mock_client.transcribe.side_effect = MidashengConnectionError("down")
    result = await entity.internal_async_process_audio_stream(METADATA, _stream())
    assert result.result is stt.SpeechResultState.ERROR


async def test_phrases_sent(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """With the embedded recognizer the home's sentences go with every request."""
    mock_client.info.return_value = _info(phrases=True)
    await _setup(hass, mock_config_entry, fake_service)
    entity = stt.async_get_speech_to_text_entity(hass, ENTITY_ID)
    assert entity is not None
    mock_client.transcribe.return_value = Transcription(text="what did you hear", language="en")
    await entity.internal_async_process_audio_stream(METADATA, _stream())
    phrases = mock_client.transcribe.await_args.kwargs["phrases"]
    assert "what did you hear in the kitchen" in phrases
    assert "is the smoke alarm going off in the hall" in phrases


async def test_no_asr(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """Without a transcribe capability there is no speech-to-text entity."""
    info = load_json("info.json")
    info["models"]["asr"] = None
    info["capabilities"] = ["classify", "stream"]
    mock_client.info.return_value = ServiceInfo.from_dict(info)
    await _setup(hass, mock_config_entry, fake_service)
    assert hass.states.get(ENTITY_ID) is None
    assert hass.states.get("conversation.midasheng_audio") is not None
