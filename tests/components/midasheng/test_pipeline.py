"""A full Assist pipeline run: audio in, this speech to text, this agent, the answer out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import MagicMock

from homeassistant.components import stt
from homeassistant.components.assist_pipeline import (
    PipelineEvent,
    PipelineEventType,
    async_get_pipelines,
    async_pipeline_from_audio_stream,
    async_update_pipeline,
)
from homeassistant.components.assist_pipeline.pipeline import PipelineStage
from homeassistant.core import Context, HomeAssistant
from homeassistant.setup import async_setup_component
import pytest

from custom_components.midasheng.api import Transcription

from .conftest import sound_event

CHUNK = b"\x00\x01" * 512  # 32 ms of 16 kHz 16-bit mono PCM


async def _audio(chunks: int) -> AsyncIterator[bytes]:
    for _ in range(chunks):
        yield CHUNK


@pytest.mark.usefixtures("init_integration")
async def test_voice_pipeline(
    hass: HomeAssistant, mock_client: MagicMock, service_events: list[dict[str, Any]]
) -> None:
    """Speech is transcribed by the service and answered by the agent from the event log."""
    assert await async_setup_component(hass, "assist_pipeline", {})
    pipeline = next(iter(async_get_pipelines(hass)))
    await async_update_pipeline(
        hass,
        pipeline,
        stt_engine="stt.midasheng_audio_speech_to_text",
        stt_language="en",
        conversation_engine="conversation.midasheng_audio",
        conversation_language="en",
        language="en",
        tts_engine=None,
    )
    mock_client.transcribe.return_value = Transcription(text="what did you hear", language="en")
    service_events.append(sound_event(42, minutes_ago=2, duration=40))

    events: list[PipelineEvent] = []
    await async_pipeline_from_audio_stream(
        hass,
        context=Context(),
        event_callback=events.append,
        stt_metadata=stt.SpeechMetadata(
            language="",
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
            channel=stt.AudioChannels.CHANNEL_MONO,
        ),
        stt_stream=_audio(20),
        pipeline_id=pipeline.id,
        end_stage=PipelineStage.INTENT,
    )
    by_type = {event.type: event.data for event in events}
    assert PipelineEventType.ERROR not in by_type, by_type.get(PipelineEventType.ERROR)
    assert by_type[PipelineEventType.STT_END]["stt_output"]["text"] == "what did you hear"
    speech = by_type[PipelineEventType.INTENT_END]["intent_output"]["response"]["speech"]
    assert speech["plain"]["speech"] == (
        "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds."
    )
    audio = mock_client.transcribe.await_args.args[0]
    assert audio[:4] == b"RIFF"
    assert len(audio) == 44 + 20 * len(CHUNK)
    assert mock_client.transcribe.await_args.kwargs["language"] == "en"
