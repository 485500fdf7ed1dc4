"""Tests for MiDasheng Audio diagnostics."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from .conftest import TOKEN, FakeService, event_message


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    fake_service: FakeService,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics hold the service state with the token and stream URLs redacted."""
    await fake_service.send(event_message(42))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert TOKEN not in str(diagnostics)
    assert "hunter2" not in str(diagnostics)
    assert diagnostics == snapshot
