"""Tests for the MiDasheng Audio binary sensors."""

from __future__ import annotations

from unittest.mock import MagicMock, patch

from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.midasheng.const import CONF_CATEGORIES

from .conftest import FakeService, event_message, handshake, snapshot_entities


@pytest.fixture(autouse=True)
def only_binary_sensors() -> None:
    """Load the binary sensor platform only."""
    with patch("custom_components.midasheng.PLATFORMS", [Platform.BINARY_SENSOR]):
        yield


async def test_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every category of every source, with its device class and translated name."""
    await snapshot_entities(hass, entity_registry, snapshot, init_integration.entry_id)


@pytest.mark.parametrize(
    ("category", "entity_id", "device_class"),
    [
        ("smoke_alarm", "binary_sensor.hall_smoke_alarm", "smoke"),
        ("fire_alarm", "binary_sensor.hall_fire_alarm", "smoke"),
        ("co_alarm", "binary_sensor.hall_co_alarm", "carbon_monoxide"),
        ("glass_break", "binary_sensor.hall_glass_break", "safety"),
        ("scream", "binary_sensor.hall_scream", "safety"),
        ("water_running", "binary_sensor.hall_water_running", "sound"),
        ("baby_cry", "binary_sensor.hall_baby_cry", "sound"),
    ],
)
async def test_category_on_and_off(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    category: str,
    entity_id: str,
    device_class: str,
) -> None:
    """A sensor follows its category's events on its own source only."""
    assert hass.states.get(entity_id).attributes["device_class"] == device_class
    await fake_service.send(event_message(50, category, source="kitchen"))
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == STATE_OFF
    await fake_service.send(event_message(51, category, source="hall", score=0.6))
    await hass.async_block_till_done()
    state = hass.states.get(entity_id)
    assert state.state == STATE_ON
    # The event's data is the event entity's; the sensor has no attributes that change with
    # every event.
    assert set(state.attributes) == {"device_class", "friendly_name"}
    await fake_service.send(event_message(51, category, source="hall", ended=True))
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == STATE_OFF


async def test_watched_categories(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    entity_registry: er.EntityRegistry,
) -> None:
    """Only watched categories get sensors; unwatched ones leave no orphans behind."""
    mock_config_entry.add_to_hass(hass)
    entity_registry.async_get_or_create(
        "binary_sensor",
        "midasheng",
        f"{mock_config_entry.unique_id}_kitchen_cough",
        config_entry=mock_config_entry,
    )
    hass.config_entries.async_update_entry(
        mock_config_entry, options={CONF_CATEGORIES: ["smoke_alarm", "tuba"]}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    await fake_service.wait_subscriptions(1)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert sorted(hass.states.async_entity_ids("binary_sensor")) == [
        "binary_sensor.hall_hearing_problem",
        "binary_sensor.hall_smoke_alarm",
        "binary_sensor.kitchen_hearing_problem",
        "binary_sensor.kitchen_smoke_alarm",
    ]
    assert not entity_registry.async_get_entity_id(
        "binary_sensor", "midasheng", f"{mock_config_entry.unique_id}_kitchen_cough"
    )
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)
