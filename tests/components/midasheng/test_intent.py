"""The intents, called directly (as automations and other agents do)."""

from __future__ import annotations

import threading
from typing import Any
from unittest.mock import MagicMock, patch

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import intent
import pytest

from custom_components.midasheng import sounds
from custom_components.midasheng.api import MidashengConnectionError
from custom_components.midasheng.intent import parse_since, trigger_sentences
from custom_components.midasheng.sounds import DATA_SOUNDS

from .conftest import FakeService, event_message, sound_event


async def handle(hass: HomeAssistant, intent_type: str, **slots: Any) -> intent.IntentResponse:
    """Handle an intent with slot values."""
    return await intent.async_handle(
        hass, "test", intent_type, {name: {"value": value} for name, value in slots.items()}
    )


@pytest.mark.usefixtures("init_integration")
async def test_intents(
    hass: HomeAssistant, fake_service: FakeService, service_events: list[dict[str, Any]]
) -> None:
    """Each intent answers with a sentence and the events in the speech slots."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    heard = await handle(hass, "MidashengWhatDidYouHear", place="kitchen", category="smoke alarm")
    assert heard.speech["plain"]["speech"].startswith("I heard a smoke alarm in the kitchen")
    assert heard.speech_slots["events"][0]["seq"] == 42
    for slots in ({"minutes": 1}, {"hours": 1}, {"period": "today"}, {"since": "00:00"}):
        await handle(hass, "MidashengWhatDidYouHear", **slots)
    await fake_service.send(event_message(43))
    active = await handle(hass, "MidashengIsSoundActive", category="smoke_alarm")
    assert active.speech["plain"]["speech"].startswith("Yes, I hear a smoke alarm")
    described = await handle(hass, "MidashengDescribe", place="Hall")
    assert described.speech["plain"]["speech"].startswith("I can't describe sounds")
    that = await handle(hass, "MidashengWhatWasThat", category="smoke_alarm")
    assert that.speech["plain"]["speech"].startswith("That was a smoke alarm in the kitchen")


@pytest.mark.usefixtures("init_integration")
async def test_intent_errors(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """Unknown places and sounds, bad times and a down service are intent errors."""
    with pytest.raises(intent.IntentHandleError, match="called garage"):
        await handle(hass, "MidashengDescribe", place="garage")
    with pytest.raises(intent.IntentHandleError, match="sound called thunder"):
        await handle(hass, "MidashengIsSoundActive", category="thunder")
    with pytest.raises(intent.InvalidSlotInfo):
        await handle(hass, "MidashengWhatDidYouHear", since="teatime")
    with pytest.raises(intent.InvalidSlotInfo):
        await handle(hass, "MidashengWhatDidYouHear", period="forever")
    mock_client.events.side_effect = MidashengConnectionError("down")
    with pytest.raises(intent.IntentHandleError, match="not connected"):
        await handle(hass, "MidashengWhatDidYouHear")


def test_parse_since() -> None:
    """A clock time is the latest past one; a date and time is taken as is."""
    assert parse_since("2026-11-22T10:00:00+00:00").year == 2026
    assert parse_since("2026-11-22 10:00").tzinfo is not None
    assert parse_since("23:59").minute == 59


@pytest.mark.usefixtures("init_integration")
async def test_trigger_sentences(hass: HomeAssistant) -> None:
    """Triggers keep only the place and number ranges as lists (wildcards)."""
    lang = await hass.data[DATA_SOUNDS].async_language("en")
    sentences = trigger_sentences(lang)
    assert sentences
    for sentence in sentences:
        assert "<" not in sentence
        assert "{category}" not in sentence
        assert "{period}" not in sentence


async def test_sentences_read_off_the_event_loop(hass: HomeAssistant) -> None:
    """The sentences folder and files are read in the executor, once."""
    threads: list[str] = []
    available = sounds.available_languages

    def languages() -> list[str]:
        threads.append(threading.current_thread().name)
        return available()

    with patch.object(sounds, "available_languages", new=languages):
        assistant = sounds.SoundAssistant(hass)
        english = await assistant.async_language("en-GB")
        assert english.code == "en"
        assert await assistant.async_language("xx") is english
        assert await assistant.async_language(None) is english
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name


@pytest.mark.usefixtures("init_integration")
async def test_sentences_are_matched_off_the_event_loop(
    hass: HomeAssistant, service_events: list[dict[str, Any]]
) -> None:
    """hassil matching (the agent's questions, a spoken sound name in an intent slot) runs in
    the executor, as Home Assistant's own agent recognizes, never on the event loop."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    loop_thread = threading.current_thread().name
    threads: list[str] = []
    real = sounds.recognize_best

    def recognize(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    with patch.object(sounds, "recognize_best", new=recognize):
        answer = await conversation.async_converse(
            hass,
            "what did you hear in the kitchen",
            None,
            Context(),
            "en",
            agent_id="conversation.midasheng_audio",
        )
        assert "smoke alarm" in answer.response.speech["plain"]["speech"]
        # A sound named in words ("the smoke detector") goes through hassil too.
        heard = await handle(hass, "MidashengWhatDidYouHear", category="the smoke detector")
        assert heard.speech["plain"]["speech"].startswith("I heard a smoke alarm")
    assert len(threads) >= 2
    assert loop_thread not in threads
