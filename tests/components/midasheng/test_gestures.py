"""Sound gestures in Home Assistant: a Gesture event entity and device triggers per source,
fired once when a gesture is made, never for a replayed or late one, and never as a sound."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.midasheng.api import ServiceInfo
from custom_components.midasheng.const import DOMAIN, EVENT_GESTURE, EVENT_SOUND

from .conftest import SERVICE_ID, FakeService, event_message, get_device, load_json

GESTURES = [
    {"id": "double_clap", "name": "Double clap", "labels": [], "kind": "gesture"},
    {"id": "triple_clap", "name": "Triple clap", "labels": [], "kind": "gesture"},
    {"id": "double_snap", "name": "Double finger snap", "labels": [], "kind": "gesture"},
]


@pytest.fixture
def mock_client(mock_client: MagicMock) -> MagicMock:
    """A service that recognises the three gestures."""
    info = load_json("info.json")
    known = {c["id"] for c in info["categories"]}
    info["categories"] += [g for g in GESTURES if g["id"] not in known]
    mock_client.info.return_value = ServiceInfo.from_dict(info)
    return mock_client


def gesture_message(seq: int, gesture: str, *, source: str = "kitchen", **kwargs: Any) -> dict:
    """A gesture's start as the service sends it, made now."""
    message = event_message(seq, gesture, source=source, **kwargs)
    message["event"]["start"] = dt_util.utcnow().isoformat()
    return message


async def test_gestures_are_not_sounds(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Gestures get no binary sensor, are no sound event type and no last-sound state."""
    info = init_integration.runtime_data.coordinator.info
    assert info.gesture_ids == ("double_clap", "triple_clap", "double_snap")
    assert "double_clap" not in info.category_ids
    assert hass.states.get("binary_sensor.kitchen_double_clap") is None
    assert "double_clap" not in hass.states.get("event.kitchen_sound").attributes["event_types"]
    gesture = hass.states.get("event.kitchen_gesture")
    assert gesture.attributes["event_types"] == ["double_clap", "triple_clap", "double_snap"]
    assert gesture.attributes["friendly_name"] == "Kitchen Gesture"


async def test_gesture_fires_once(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A gesture fires its source's Gesture entity and bus event once; its end and a repeat
    do not, and it is no sound (no sound event, last sound unchanged)."""
    gestures = async_capture_events(hass, EVENT_GESTURE)
    sounds = async_capture_events(hass, EVENT_SOUND)
    before = hass.states.get("sensor.kitchen_last_sound").state
    await fake_service.send(gesture_message(60, "double_clap"))
    await hass.async_block_till_done()
    state = hass.states.get("event.kitchen_gesture")
    assert state.attributes["event_type"] == "double_clap"
    device = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    assert [e.data for e in gestures] == [
        {
            "config_entry_id": init_integration.entry_id,
            "device_id": device.id,
            "source": "kitchen",
            "type": "double_clap",
            "seq": 60,
        }
    ]
    await fake_service.send(gesture_message(60, "double_clap"))
    ended = gesture_message(60, "double_clap", ended=True)
    await fake_service.send(ended)
    await hass.async_block_till_done()
    assert len(gestures) == 1
    assert hass.states.get("event.kitchen_gesture").state == state.state
    assert sounds == []
    assert hass.states.get("sensor.kitchen_last_sound").state == before
    assert hass.states.get("event.hall_gesture").attributes.get("event_type") is None


@pytest.mark.parametrize("late", ["replay", "old"])
async def test_late_gesture_triggers_nothing(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService, late: str
) -> None:
    """A gesture replayed after a reconnect, or made long before it arrives, triggers nothing:
    a light must not toggle minutes after the claps."""
    gestures = async_capture_events(hass, EVENT_GESTURE)
    if late == "replay":
        message = gesture_message(61, "triple_clap", replay=True)
    else:
        message = event_message(61, "triple_clap")  # the recorded start: long ago
    await fake_service.send(message)
    await hass.async_block_till_done()
    assert gestures == []
    assert hass.states.get("event.kitchen_gesture").attributes.get("event_type") is None


async def test_device_triggers(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The automation editor offers each gesture per source device; an automation on
    "Kitchen: double clap" runs for that gesture on that source only."""
    kitchen = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    service = get_device(hass, (DOMAIN, SERVICE_ID))
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, kitchen.id)
    assert sorted(t["type"] for t in triggers if t["domain"] == DOMAIN) == [
        "double_clap",
        "double_snap",
        "triple_clap",
    ]
    service_triggers = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, service.id
    )
    assert [t for t in service_triggers if t["domain"] == DOMAIN] == []

    calls = async_mock_service(hass, "test", "toggled")
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: {
                "triggers": {
                    "platform": "device",
                    "domain": DOMAIN,
                    "device_id": kitchen.id,
                    "type": "double_clap",
                },
                "actions": {
                    "action": "test.toggled",
                    "data": {"gesture": "{{ trigger.event.data.type }}"},
                },
            }
        },
    )
    await fake_service.send(gesture_message(62, "double_snap"))
    await fake_service.send(gesture_message(63, "double_clap", source="hall"))
    await hass.async_block_till_done()
    assert calls == []
    await fake_service.send(gesture_message(64, "double_clap"))
    await hass.async_block_till_done()
    assert [c.data for c in calls] == [{"gesture": "double_clap"}]


async def test_service_without_gestures(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    entity_registry: er.EntityRegistry,
) -> None:
    """A service that recognises no gesture (an older one) gets no Gesture entity and no
    device triggers."""
    mock_client.info.return_value = ServiceInfo.from_dict(
        load_json("info.json")
        | {
            "categories": [
                c for c in load_json("info.json")["categories"] if c.get("kind") != "gesture"
            ]
        }
    )
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("event.kitchen_gesture") is None
    kitchen = get_device(hass, (DOMAIN, f"{SERVICE_ID}_kitchen"))
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, kitchen.id)
    assert [t for t in triggers if t["domain"] == DOMAIN] == []
