"""Tests for the MiDasheng Audio event entities."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.const import STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from .conftest import FakeService, event_message, handshake, snapshot_entities


@pytest.fixture(autouse=True)
def only_events() -> None:
    """Load the event platform only."""
    with patch("custom_components.midasheng.PLATFORMS", [Platform.EVENT]):
        yield


async def test_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """One event entity per source whose event types are the service's categories."""
    await snapshot_entities(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_fired_on_each_start(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """Each start fires the entity with its category; ends and repeats do not."""
    await fake_service.send(event_message(42, "doorbell", source="hall"))
    await hass.async_block_till_done()
    state = hass.states.get("event.hall_sound")
    assert state.attributes["event_type"] == "doorbell"
    assert state.attributes["event_id"] == "event-42"
    assert dt_util.parse_datetime(state.state) is not None
    fired_at = state.state

    await fake_service.send(
        event_message(42, "doorbell", source="hall", ended=True),
        event_message(42, "doorbell", source="hall"),
    )
    await hass.async_block_till_done()
    assert hass.states.get("event.hall_sound").state == fired_at

    await fake_service.send(event_message(43, "knock", source="hall"))
    await hass.async_block_till_done()
    assert hass.states.get("event.hall_sound").attributes["event_type"] == "knock"
    assert hass.states.get("event.hall_sound").attributes["intrusion"] is False


async def test_intrusions_heard_away_say_so(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """An event heard in away mode carries the mode and whether it is an intrusion, so an
    automation can tell a knock while away from one at home."""
    message = event_message(44, "unusual_sound", source="hall")
    message["event"].update(mode="away", intrusion=True)
    await fake_service.send(message)
    await hass.async_block_till_done()
    attributes = hass.states.get("event.hall_sound").attributes
    assert attributes["event_type"] == "unusual_sound"
    assert (attributes["mode"], attributes["intrusion"]) == ("away", True)


async def test_unavailable_while_disconnected(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """The entity is unavailable while the push connection is down and returns with it."""
    await fake_service.drop()
    await hass.async_block_till_done()
    assert hass.states.get("event.kitchen_sound").state == STATE_UNAVAILABLE
    await fake_service.wait_subscriptions(2)
    await fake_service.send(*handshake())
    await hass.async_block_till_done()
    assert hass.states.get("event.kitchen_sound").state != STATE_UNAVAILABLE
