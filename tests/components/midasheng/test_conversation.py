"""The conversation agent: answers about sounds from the event log, hands off the rest."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar, device_registry as dr, intent
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.midasheng.api import MidashengConnectionError

from .conftest import (
    SERVICE_ID,
    FakeService,
    event_message,
    get_device,
    load_json,
    sound_event,
)

AGENT = "conversation.midasheng_audio"


async def ask(
    hass: HomeAssistant,
    text: str,
    conversation_id: str | None = None,
    agent_id: str = AGENT,
) -> conversation.ConversationResult:
    """Ask an agent a question."""
    return await conversation.async_converse(
        hass, text, conversation_id, Context(), "en", agent_id=agent_id
    )


def speech(result: conversation.ConversationResult) -> str:
    """The answer's text."""
    return result.response.speech["plain"]["speech"]


@pytest.mark.usefixtures("init_integration")
async def test_what_did_you_hear(hass: HomeAssistant, service_events: list[dict[str, Any]]) -> None:
    """With no place or time, the agent names what it heard, where, when and how long."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    result = await ask(hass, "What did you hear?")
    assert speech(result) == (
        "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds."
    )
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert result.conversation_id


def _assign_area(hass: HomeAssistant, source_id: str, area_name: str) -> None:
    area = ar.async_get(hass).async_get_or_create(area_name)
    device = get_device(hass, ("midasheng", f"{SERVICE_ID}_{source_id}"))
    assert device is not None
    dr.async_get(hass).async_update_device(device.id, area_id=area.id)


@pytest.mark.usefixtures("init_integration")
async def test_newest_then_count_and_before_that(
    hass: HomeAssistant, service_events: list[dict[str, Any]]
) -> None:
    """An answer a voice can say: the newest sound, then how many in all; "and before that?"
    goes back one sound at a time."""
    service_events.extend(
        [
            sound_event(40, "knock", source="hall", minutes_ago=300, duration=1),
            sound_event(41, "glass_break", minutes_ago=180, duration=3),
            sound_event(43, "doorbell", source="hall", minutes_ago=30, duration=None),
            sound_event(44, "dog_bark", source="hall", minutes_ago=12, duration=1),
            sound_event(45, "dog_bark", source="hall", minutes_ago=11, duration=1),
            sound_event(46, "dog_bark", source="hall", minutes_ago=10, duration=1),
            sound_event(47, minutes_ago=2, duration=40),
            sound_event(39, "cat", source="hall", minutes_ago=60 * 30, duration=5),
        ]
    )
    first = await ask(hass, "what did you hear")
    assert speech(first) == (
        "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds. "
        "That makes 7 sounds in the last 24 hours."
    )
    assert [e["seq"] for e in first.response.speech_slots["events"]] == [47]
    cid = first.conversation_id
    second = await ask(hass, "and before that?", cid)
    assert second.conversation_id == cid
    assert speech(second) == ("I heard a dog barking in the hall 10 minutes ago.")
    barks = await ask(hass, "did you hear a dog in the hall")
    assert speech(barks) == (
        "I heard a dog barking in the hall 10 minutes ago. I heard it 3 times in the last 24 hours."
    )
    for _ in range(5):
        last = await ask(hass, "and before that?", cid)
    assert speech(last) == "I heard a knock in the hall 5 hours ago."
    third = await ask(hass, "anything earlier?", cid)
    assert speech(third) == "I didn't hear anything before that in the last 24 hours."
    # Another conversation has no "before that": Home Assistant's agent does not know it.
    other = await ask(hass, "and before that?")
    assert other.response.response_type is intent.IntentResponseType.ERROR


@pytest.mark.usefixtures("init_integration")
@pytest.mark.parametrize(
    ("sentence", "answer"),
    [
        (
            "what did you hear in the hall in the last 15 minutes",
            "I heard a dog barking in the hall 10 minutes ago.",
        ),
        (
            "What did you hear in the kitchen in the last hour?",
            "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds.",
        ),
        (
            "did you hear glass breaking in the kitchen",
            "I didn't hear glass breaking in the kitchen in the last 24 hours.",
        ),
        (
            "did anything happen in the hall in the last 5 minutes",
            "I didn't hear anything in the hall in the last 5 minutes.",
        ),
        (
            "have you heard a dog in the past 2 hours",
            "I heard a dog barking in the hall 10 minutes ago.",
        ),
        ("what did you hear in the last week", None),
    ],
)
async def test_places_and_times(
    hass: HomeAssistant,
    service_events: list[dict[str, Any]],
    sentence: str,
    answer: str | None,
) -> None:
    """A source and a time span narrow the answer."""
    service_events.extend(
        [
            sound_event(44, "dog_bark", source="hall", minutes_ago=10, duration=1),
            sound_event(45, minutes_ago=2, duration=40),
            sound_event(30, "cough", source="hall", minutes_ago=60 * 24 * 3, duration=1),
        ]
    )
    result = speech(await ask(hass, sentence))
    if answer is None:
        assert result == (
            "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds. "
            "That makes 3 sounds in the last week."
        )
    else:
        assert result == answer


@pytest.mark.usefixtures("init_integration")
async def test_area(hass: HomeAssistant, service_events: list[dict[str, Any]]) -> None:
    """An area names the sources in it; events are told by their area."""
    _assign_area(hass, "hall", "Living Room")
    service_events.extend(
        [
            sound_event(44, "baby_cry", source="hall", minutes_ago=5, duration=120),
            sound_event(45, minutes_ago=2, duration=40),
        ]
    )
    result = await ask(hass, "what did you hear in the living room")
    assert speech(result) == (
        "I heard a baby crying in Living Room 5 minutes ago; it went on for 2 minutes."
    )


@pytest.mark.usefixtures("init_integration")
async def test_while_i_was_out(
    hass: HomeAssistant,
    service_events: list[dict[str, Any]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """ "While I was out" starts when the last person left; else the last 8 hours."""
    service_events.append(sound_event(40, "dog_bark", source="hall", minutes_ago=6 * 60))
    fallback = await ask(hass, "did anything happen while I was out?")
    assert speech(fallback) == (
        "I heard a dog barking in the hall 6 hours ago; it went on for 40 seconds."
    )

    hass.states.async_set("person.alex", "home")
    hass.states.async_set("person.sam", "not_home")
    hass.states.async_set("zone.home", "1")
    await hass.async_block_till_done()
    freezer.tick(60)
    hass.states.async_set("person.alex", "not_home")
    hass.states.async_set("zone.home", "0")
    await hass.async_block_till_done()
    freezer.tick(30 * 60)
    service_events.extend(
        [
            sound_event(41, "glass_break", minutes_ago=10, duration=2),
            sound_event(39, "doorbell", source="hall", minutes_ago=45, duration=3),
        ]
    )
    away = await ask(hass, "what did you hear while I was away")
    assert speech(away) == (
        "I heard glass breaking in the kitchen 10 minutes ago; it went on for 2 seconds."
    )
    # Back home: the span ends when someone came back.
    freezer.tick(60)
    hass.states.async_set("person.alex", "home")
    hass.states.async_set("zone.home", "1")
    await hass.async_block_till_done()
    freezer.tick(5 * 60)
    service_events.append(sound_event(42, "speech", minutes_ago=1, duration=5))
    back = await ask(hass, "did anything happen while we were out")
    assert speech(back) == (
        "I heard glass breaking in the kitchen 16 minutes ago; it went on for 2 seconds."
    )


@pytest.mark.usefixtures("init_integration")
async def test_is_going_off(hass: HomeAssistant, fake_service: FakeService) -> None:
    """Ongoing events come from the push connection; ended ones say when they were."""
    none = await ask(hass, "is the glass breaking going off?")
    assert speech(none) == "No, I don't hear glass breaking right now."
    await fake_service.send(event_message(42))
    yes = await ask(hass, "Is the smoke alarm going off?")
    assert speech(yes).startswith("Yes, I hear a smoke alarm in the kitchen right now;")
    in_hall = await ask(hass, "is the smoke alarm going off in the hall")
    assert speech(in_hall) == "No, I don't hear a smoke alarm in the hall right now."
    # An area called Kitchen with nothing in it (onboarding makes one) is not the Kitchen
    # source: the answer must agree with binary_sensor.kitchen_smoke_alarm, which is on.
    ar.async_get(hass).async_get_or_create("Kitchen")
    in_kitchen = await ask(hass, "is the smoke alarm going off in the kitchen")
    assert speech(in_kitchen).startswith("Yes, I hear a smoke alarm in the kitchen right now;")
    assert hass.states.get("binary_sensor.kitchen_smoke_alarm").state == "on"
    await fake_service.send(event_message(42, ended=True))
    ended = await ask(hass, "do you hear a smoke detector")
    assert speech(ended).startswith("No, I don't hear a smoke alarm right now. The last time was")
    assert speech(ended).endswith(" in the kitchen.")

    await fake_service.drop()
    await hass.async_block_till_done()
    down = await ask(hass, "is the smoke alarm going off")
    assert speech(down) == "The MiDasheng Audio service is not connected right now."


@pytest.mark.usefixtures("init_integration")
async def test_describe_without_lm(hass: HomeAssistant, fake_service: FakeService) -> None:
    """Without an audio LM the agent says so and tells what is going on from the events."""
    quiet = await ask(hass, "describe what is happening in the kitchen")
    assert speech(quiet) == (
        "I can't describe sounds without an audio language model on the MiDasheng service. "
        "It is quiet in the kitchen right now."
    )
    await fake_service.send(event_message(42, "dog_bark", source="hall"))
    busy = await ask(hass, "what's happening right now")
    assert speech(busy).endswith("Right now I hear a dog barking in the hall.")


@pytest.mark.usefixtures("lm_client", "init_integration")
async def test_describe_with_lm(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """With an audio LM the live audio of the place's sources is described."""
    one = await ask(hass, "describe what is happening in the kitchen")
    assert speech(one) == "A smoke alarm beeps in a quiet room."
    mock_client.describe.assert_awaited_with(source="kitchen", seconds=10.0)
    mock_client.describe.side_effect = ["Water is running.", MidashengConnectionError("down")]
    every = await ask(hass, "what can you hear")
    assert speech(every) == (
        "In the kitchen: Water is running. In the hall: I couldn't describe it: down"
    )


@pytest.mark.usefixtures("lm_client", "init_integration")
async def test_what_was_that(
    hass: HomeAssistant, mock_client: MagicMock, service_events: list[dict[str, Any]]
) -> None:
    """ "What was that?" names the latest sound and describes its clip with an LM."""
    none = await ask(hass, "what was that noise?")
    assert speech(none) == "I haven't heard anything in the last 24 hours."
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    result = await ask(hass, "what was that noise in the kitchen")
    assert speech(result) == (
        "That was a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds. "
        "It sounded like this: A smoke alarm beeps in a quiet room."
    )
    mock_client.describe.assert_awaited_with(event=42)
    mock_client.describe.side_effect = MidashengConnectionError("down")
    plain = await ask(hass, "what did that sound like")
    assert speech(plain) == (
        "That was a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds."
    )


@pytest.mark.usefixtures("init_integration")
async def test_hands_off_to_home_assistant(hass: HomeAssistant) -> None:
    """Device commands go to Home Assistant's own agent; its answer comes back."""
    hass.states.async_set("light.kitchen_light", "off", {"friendly_name": "Kitchen light"})
    calls = async_mock_service(hass, "light", "turn_on")
    result = await ask(hass, "turn on the kitchen light", "conv-1")
    assert speech(result) == "Turned on the light"
    assert result.conversation_id == "conv-1"
    assert len(calls) == 1
    assert calls[0].data["entity_id"] == ["light.kitchen_light"]


@pytest.mark.usefixtures("init_integration")
async def test_home_assistant_agent_answers_too(
    hass: HomeAssistant, service_events: list[dict[str, Any]]
) -> None:
    """Home Assistant's own agent knows the questions (conversation triggers)."""
    service_events.append(sound_event(42, minutes_ago=2, duration=40))
    result = await ask(
        hass, "what did you hear in the kitchen", agent_id="conversation.home_assistant"
    )
    assert speech(result) == (
        "I heard a smoke alarm in the kitchen 2 minutes ago; it went on for 40 seconds."
    )
    unknown = await ask(hass, "what did you hear in the garage")
    assert speech(unknown) == "I don't know a room or sound source called garage."
    numbers = await ask(hass, "what did you hear since noon")
    assert speech(numbers) == "Sorry, I didn't understand that question about sounds."


@pytest.mark.usefixtures("init_integration")
async def test_service_down(hass: HomeAssistant, mock_client: MagicMock) -> None:
    """A failing event query is answered, not raised."""
    mock_client.events.side_effect = MidashengConnectionError("down")
    result = await ask(hass, "what did you hear")
    assert speech(result) == "The MiDasheng Audio service is not connected right now."


async def test_no_service_loaded(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Once the entry is unloaded Home Assistant's agent says no service is set up."""
    await hass.config_entries.async_unload(init_integration.entry_id)
    result = await ask(hass, "what did you hear", agent_id="conversation.home_assistant")
    assert speech(result) == "No MiDasheng Audio service is set up."
    result = await ask(hass, "is the smoke alarm going off", agent_id="conversation.home_assistant")
    assert speech(result) == "No MiDasheng Audio service is set up."


async def test_is_active_says_what_it_cannot_hear(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A source that is not heard gives no "no": its detectors are unavailable, and the
    agent says it cannot hear there, as the entities do."""
    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send(
        {"type": "source", "source": {**kitchen, "state": "retrying", "error": "refused"}}
    )
    await hass.async_block_till_done()
    assert speech(await ask(hass, "is the smoke alarm going off in the kitchen")) == (
        "I can't tell: I can't hear anything in the kitchen right now."
    )
    assert speech(await ask(hass, "is the smoke alarm going off")) == (
        "No, I don't hear a smoke alarm right now. "
        "But I can't hear anything in the kitchen right now."
    )
    await fake_service.send({"type": "source", "source": kitchen})
    await hass.async_block_till_done()
    assert speech(await ask(hass, "is the smoke alarm going off in the kitchen")) == (
        "No, I don't hear a smoke alarm in the kitchen right now."
    )
