"""Sounds taught by example, as Home Assistant shows them: their own sensors and event types."""

from __future__ import annotations

from unittest.mock import MagicMock

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.midasheng.api import ServiceInfo

from .conftest import FakeService, event_message, handshake, load_json

CHIME = {"id": "custom:front_door_chime", "name": "Front door chime", "examples": 3, "ready": True}


async def test_a_taught_sound_gets_its_sensor_and_event_type(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """When the service says a sound became ready, the entry reloads with it as a category:
    a binary sensor named by the user on every source, and an event type; the same list
    again reloads nothing; its events switch the sensor like any sound."""
    assert hass.states.get("binary_sensor.hall_front_door_chime") is None
    info = load_json("info.json")
    mock_client.info.return_value = ServiceInfo.from_dict(
        {**info, "categories": [*info["categories"], {**CHIME, "labels": [], "kind": "taught"}]}
    )
    await fake_service.send({"type": "sounds", "sounds": [CHIME]})
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    state = hass.states.get("binary_sensor.hall_front_door_chime")
    assert state is not None and state.state == STATE_OFF
    assert state.attributes["friendly_name"] == "Hall Front door chime"
    assert (
        "custom:front_door_chime" in hass.states.get("event.hall_sound").attributes["event_types"]
    )

    setups = mock_client.info.await_count
    await fake_service.send({"type": "sounds", "sounds": [CHIME]})
    await hass.async_block_till_done()
    assert mock_client.info.await_count == setups

    await fake_service.send(event_message(50, "custom:front_door_chime", source="hall"))
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.hall_front_door_chime").state == STATE_ON
    assert hass.states.get("event.hall_sound").attributes["event_type"] == "custom:front_door_chime"


async def test_a_sound_still_being_taught_changes_nothing(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """A sound with too few examples is not a category yet: no reload."""
    setups = mock_client.info.await_count
    await fake_service.send(
        {"type": "sounds", "sounds": [{**CHIME, "examples": 2, "ready": False}]}
    )
    await hass.async_block_till_done()
    assert mock_client.info.await_count == setups
    assert hass.states.get("binary_sensor.hall_front_door_chime") is None


async def test_a_taught_sound_is_watched_whatever_the_options(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
) -> None:
    """Options that watch only some sounds (chosen before the sound was taught) still give
    the taught sound its sensor: teaching it asked for one."""
    from custom_components.midasheng.const import CONF_CATEGORIES

    info = load_json("info.json")
    mock_client.info.return_value = ServiceInfo.from_dict(
        {**info, "categories": [*info["categories"], {**CHIME, "labels": [], "kind": "taught"}]}
    )
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, options={CONF_CATEGORIES: ["smoke_alarm"]}
    )
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.hall_smoke_alarm") is not None
    assert hass.states.get("binary_sensor.hall_cough") is None
    assert hass.states.get("binary_sensor.hall_front_door_chime") is not None
