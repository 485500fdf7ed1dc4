"""Tests for the MiDasheng Audio sensors."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from .conftest import FakeService, event_message, load_json, snapshot_entities

LEVEL = "sensor.kitchen_sound_level"


@pytest.fixture(autouse=True)
def only_sensors() -> None:
    """Load the sensor platform only."""
    with patch("custom_components.midasheng.PLATFORMS", [Platform.SENSOR]):
        yield


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Sound level, last sound and stream state of every source."""
    await snapshot_entities(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_stream_state_disabled_by_default(
    hass: HomeAssistant, init_integration: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """The diagnostic stream state sensor is opt-in."""
    entry = entity_registry.async_get("sensor.kitchen_stream_state")
    assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_stream_state(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The stream state follows the source; its error is a sensor of its own."""
    assert hass.states.get("sensor.kitchen_stream_state").state == "streaming"
    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send(
        {"type": "source", "source": {**kitchen, "state": "retrying", "error": "EOF"}}
    )
    await hass.async_block_till_done()
    state = hass.states.get("sensor.kitchen_stream_state")
    assert state.state == "retrying"
    assert hass.states.get("sensor.kitchen_stream_error").state == "EOF"
    long_error = "Connection refused " * 20
    await fake_service.send(
        {"type": "source", "source": {**kitchen, "state": "sleeping", "error": long_error}}
    )
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_stream_state").state == STATE_UNKNOWN
    error = hass.states.get("sensor.kitchen_stream_error").state
    assert len(error) == 255
    assert error.startswith("Connection refused")
    assert error.endswith("…")
    await fake_service.send({"type": "source", "source": {**kitchen, "error": None}})
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_stream_error").state == STATE_UNKNOWN


async def test_last_sound(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The last sound is the category of the last event start, kept after it ends."""
    assert hass.states.get("sensor.kitchen_last_sound").state == STATE_UNKNOWN
    await fake_service.send(event_message(42, "dog_bark"))
    await hass.async_block_till_done()
    state = hass.states.get("sensor.kitchen_last_sound")
    assert state.state == "dog_bark"
    # The event's data (when, score, ids) is the event entity's, not attributes here.
    assert set(state.attributes) == {"device_class", "friendly_name", "options"}
    await fake_service.send(event_message(42, "dog_bark", ended=True))
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_last_sound").state == "dog_bark"
    assert hass.states.get("sensor.hall_last_sound").state == STATE_UNKNOWN


async def test_sound_level_throttled(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Levels are written at most every 60 s, or after 1 s when they jump by 6 dB."""
    assert hass.states.get(LEVEL).state == "-42.1"
    assert hass.states.get("sensor.hall_sound_level").state == STATE_UNKNOWN

    async def level(dbfs: float) -> str:
        await fake_service.send({"type": "level", "source": "kitchen", "dbfs": dbfs})
        await hass.async_block_till_done()
        return hass.states.get(LEVEL).state

    assert await level(-40.04) == "-40.0"  # the first level message is written
    freezer.tick(timedelta(seconds=2))
    assert await level(-41.0) == "-40.0"  # small change, too soon
    assert await level(-20.0) == "-20.0"  # a jump, more than a second later
    assert await level(-45.0) == "-20.0"  # a jump, but within a second
    freezer.tick(timedelta(seconds=30))
    assert await level(-22.0) == "-20.0"  # small change, within the minute
    freezer.tick(timedelta(seconds=30))
    assert await level(-23.0) == "-23.0"  # the interval passed


async def test_learned_hours(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """How much of the day the service has learned for a source, as it reports it."""
    assert hass.states.get("sensor.kitchen_learned_hours").state == "0"
    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send({"type": "source", "source": {**kitchen, "learned_hours": 7}})
    await hass.async_block_till_done()
    state = hass.states.get("sensor.kitchen_learned_hours")
    assert state.state == "7"
    assert state.attributes["unit_of_measurement"] == "h"
