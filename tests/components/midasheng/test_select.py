"""Tests for the per-source sensitivity select."""

from __future__ import annotations

from unittest.mock import MagicMock, patch

from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.const import ATTR_ENTITY_ID, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.midasheng.api import MidashengResponseError

from .conftest import FakeService, load_json

KITCHEN = "select.kitchen_sensitivity"


@pytest.fixture(autouse=True)
def only_selects() -> None:
    """Load the select platform only."""
    with patch("custom_components.midasheng.PLATFORMS", [Platform.SELECT]):
        yield


async def test_entities(
    hass: HomeAssistant, init_integration: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """Every source has a configuration select showing the service's value."""
    state = hass.states.get(KITCHEN)
    assert state.state == "medium"
    assert state.attributes["options"] == ["low", "medium", "high"]
    assert hass.states.get("select.hall_sensitivity").state == "medium"
    entry = entity_registry.async_get(KITCHEN)
    assert entry.entity_category is EntityCategory.CONFIG
    assert entry.translation_key == "sensitivity"


async def test_follows_the_service(
    hass: HomeAssistant, init_integration: MockConfigEntry, fake_service: FakeService
) -> None:
    """A change made on the service by anyone shows up here."""
    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send({"type": "source", "source": {**kitchen, "sensitivity": "low"}})
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN).state == "low"


async def test_select_changes_the_service(
    hass: HomeAssistant, init_integration: MockConfigEntry, mock_client: MagicMock
) -> None:
    """Choosing an option changes the source on the service, and the state follows its answer."""
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: KITCHEN, ATTR_OPTION: "high"},
        blocking=True,
    )
    mock_client.update_source.assert_awaited_once_with("kitchen", sensitivity="high")
    assert hass.states.get(KITCHEN).state == "high"

    mock_client.update_source.side_effect = MidashengResponseError("the disk is full", 503)
    with pytest.raises(HomeAssistantError, match="the disk is full"):
        await hass.services.async_call(
            SELECT_DOMAIN,
            SERVICE_SELECT_OPTION,
            {ATTR_ENTITY_ID: KITCHEN, ATTR_OPTION: "low"},
            blocking=True,
        )
    assert hass.states.get(KITCHEN).state == "high"


KITCHEN_MODE = "select.kitchen_mode"


async def test_mode_select(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    mock_client: MagicMock,
    fake_service: FakeService,
    entity_registry: er.EntityRegistry,
) -> None:
    """Each source's mode is a control (not a setting hidden in configuration): it shows the
    service's value, changes it there, follows changes made elsewhere, and says why it could
    not change it."""
    state = hass.states.get(KITCHEN_MODE)
    assert state.state == "home"
    assert state.attributes["options"] == ["home", "away", "night"]
    entry = entity_registry.async_get(KITCHEN_MODE)
    assert entry.entity_category is None
    assert entry.translation_key == "mode"

    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: KITCHEN_MODE, ATTR_OPTION: "away"},
        blocking=True,
    )
    mock_client.update_source.assert_awaited_once_with("kitchen", mode="away")
    assert hass.states.get(KITCHEN_MODE).state == "away"

    kitchen = load_json("sources.json")["sources"][0]
    await fake_service.send({"type": "source", "source": {**kitchen, "mode": "night"}})
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN_MODE).state == "night"

    mock_client.update_source.side_effect = MidashengResponseError("the disk is full", 503)
    with pytest.raises(HomeAssistantError, match="Could not change the mode") as err:
        await hass.services.async_call(
            SELECT_DOMAIN,
            SERVICE_SELECT_OPTION,
            {ATTR_ENTITY_ID: KITCHEN_MODE, ATTR_OPTION: "home"},
            blocking=True,
        )
    assert err.value.translation_key == "mode_failed"
    assert hass.states.get(KITCHEN_MODE).state == "night"
