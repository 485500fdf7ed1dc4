"""Speech to text through the service's ASR model (`POST /v1/transcribe`)."""

from __future__ import annotations

from collections.abc import AsyncIterable
import io
import wave

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import MidashengError
from .const import DOMAIN, LOGGER
from .coordinator import MidashengConfigEntry
from .phrases import DATA_PHRASES

PARALLEL_UPDATES = 0
SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2
CHANNELS = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the speech-to-text entity when the service has an ASR model."""
    info = entry.runtime_data.coordinator.info
    if info.supports("transcribe"):
        async_add_entities([MidashengSpeechToTextEntity(entry)])


def to_wav(pcm: bytes) -> bytes:
    """Wrap 16 kHz 16-bit mono PCM in a WAV header."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(CHANNELS)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


class MidashengSpeechToTextEntity(stt.SpeechToTextEntity):
    """The service's recognizer; sends the home's expected sentences when it takes them."""

    _attr_has_entity_name = True
    _attr_translation_key = "speech_to_text"

    def __init__(self, entry: MidashengConfigEntry) -> None:
        """Languages and phrase support come from the service's `/v1/info`."""
        self._entry = entry
        coordinator = entry.runtime_data.coordinator
        asr = coordinator.info.asr
        details = asr.details if asr else {}
        self._languages = [str(lang) for lang in details.get("languages") or ["en"]]
        self._phrases = bool(details.get("phrases"))
        self._attr_unique_id = f"{coordinator.unique_id}_stt"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.unique_id)})

    @property
    def supported_languages(self) -> list[str]:
        """Languages of the service's ASR model."""
        return self._languages

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        """WAV (the pipeline sends raw PCM; it is wrapped here)."""
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        """PCM."""
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        """16-bit."""
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        """16 kHz."""
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        """Mono."""
        return [stt.AudioChannels.CHANNEL_MONO]

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Collect the pipeline's audio (it ends at the end of speech) and transcribe it."""
        pcm = bytearray()
        async for chunk in stream:
            pcm.extend(chunk)
        phrases = None
        if self._phrases:
            phrases = await self.hass.data[DATA_PHRASES].async_phrases(metadata.language)
        try:
            result = await self._entry.runtime_data.client.transcribe(
                to_wav(bytes(pcm)),
                language=metadata.language.split("-")[0] if metadata.language else None,
                phrases=phrases,
            )
        except MidashengError as err:
            LOGGER.warning("Speech to text failed: %s", err)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
        return stt.SpeechResult(result.text, stt.SpeechResultState.SUCCESS)
