"""Text to speech through the service's speech model (MiMo-Audio; `POST /v1/speak`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from homeassistant.components.tts import ATTR_VOICE, TextToSpeechEntity, Voice

# From the entity module: Home Assistant 2025.4 does not export TTSAudioResponse from the package.
from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import MidashengError
from .const import DOMAIN, LOGGER
from .coordinator import MidashengConfigEntry

PARALLEL_UPDATES = 0
# A free-text speaking style ("slowly, in a warm voice") on top of, or instead of, a voice.
ATTR_INSTRUCTION = "instruction"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the text-to-speech entity when the service has a model that speaks."""
    info = entry.runtime_data.coordinator.info
    if info.supports("speak") and info.tts is not None:
        async_add_entities([MidashengTextToSpeechEntity(entry)])


class MidashengTextToSpeechEntity(TextToSpeechEntity):
    """The service's speech model, with its voices (speaking styles) as options."""

    _attr_has_entity_name = True
    _attr_translation_key = "text_to_speech"

    def __init__(self, entry: MidashengConfigEntry) -> None:
        """Languages and voices come from the service's `/v1/info`."""
        self._entry = entry
        coordinator = entry.runtime_data.coordinator
        tts = coordinator.info.tts
        details = tts.details if tts else {}
        self._languages = [str(lang) for lang in details.get("languages") or ["en"]]
        self._voices = [
            Voice(str(v["id"]), str(v.get("name") or v["id"]))
            for v in details.get("voices") or ()
            if isinstance(v, dict) and v.get("id")
        ]
        self._attr_unique_id = f"{coordinator.unique_id}_tts"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, coordinator.unique_id)})

    @property
    def supported_languages(self) -> list[str]:
        """Languages of the speech model."""
        return self._languages

    @property
    def default_language(self) -> str:
        """Home Assistant's language when the model speaks it, else the model's first."""
        language = self.hass.config.language.split("-")[0] if self.hass else ""
        return language if language in self._languages else self._languages[0]

    @property
    def supported_options(self) -> list[str]:
        """A voice (speaking style) and a free-text instruction."""
        return [ATTR_VOICE, ATTR_INSTRUCTION]

    @property
    def default_options(self) -> dict[str, Any]:
        """The model's own voice."""
        return {ATTR_VOICE: self._voices[0].voice_id} if self._voices else {}

    def async_get_supported_voices(self, language: str) -> list[Voice] | None:
        """The speaking styles the service offers (the same in every language)."""
        return self._voices or None

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Speech streamed as the model makes it, so playback starts with the first words.

        The message is collected first (the model speaks a whole text); a refused request
        fails here, and speech that breaks off ends the stream with an error.
        """
        message = "".join([chunk async for chunk in request.message_gen])
        try:
            blocks = await self._entry.runtime_data.client.speak_stream(
                message,
                language=request.language,
                voice=request.options.get(ATTR_VOICE),
                instruction=request.options.get(ATTR_INSTRUCTION),
            )
        except MidashengError as err:
            LOGGER.warning("Text to speech failed: %s", err)
            raise HomeAssistantError(f"MiDasheng Audio could not speak: {err}") from err
        return TTSAudioResponse("wav", _relayed(blocks))


async def _relayed(blocks: AsyncIterator[bytes]) -> AsyncGenerator[bytes]:
    """The service's blocks, with a failure part way said as Home Assistant's error."""
    try:
        async for block in blocks:
            yield block
    except MidashengError as err:
        LOGGER.warning("Text to speech broke off: %s", err)
        raise HomeAssistantError(f"MiDasheng Audio stopped speaking: {err}") from err
