"""Diagnostics for MiDasheng Audio (the token and stream URLs redacted)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant

from .coordinator import MidashengConfigEntry

# Stream URLs of cameras often carry a user name and password.
TO_REDACT = {CONF_TOKEN, CONF_URL}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: MidashengConfigEntry
) -> dict[str, Any]:
    """Return the entry, the service's info and sources, and the push connection state."""
    coordinator = entry.runtime_data.coordinator
    return {
        "entry": {
            "data": async_redact_data(entry.data, {CONF_TOKEN}),
            "options": dict(entry.options),
        },
        "info": coordinator.info.as_dict(),
        "sources": [
            async_redact_data(source.as_dict(), TO_REDACT)
            for source in coordinator.sources.values()
        ],
        "connection": coordinator.diagnostics(),
    }
