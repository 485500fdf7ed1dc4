"""Selects: each source's sensitivity and mode, as the service keeps them.

The service owns both (detection thresholds live there, and other clients may change them);
these entities show what the service reports and change it on the service. The integration's
options only choose the sensitivity of sources added from Home Assistant.

The mode is not a configuration detail but something automations switch (the blueprint
"Sound mode follows presence" does), so it is a control on the source's device: `home`,
`away` (listens harder for glass, knocks, bangs, voices and unusual sounds, and marks them
as intrusions) or `night` (the safety alarms, glass and the baby monitor as they are, the rest
less sensitive).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import MODES, SENSITIVITIES, MidashengError, Source
from .const import DOMAIN
from .coordinator import MidashengConfigEntry, MidashengCoordinator
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class MidashengSelectEntityDescription(SelectEntityDescription):
    """A source setting the service keeps: how to read it and how to change it."""

    value_fn: Callable[[Source], str]
    set_fn: Callable[[MidashengCoordinator, str, str], Awaitable[None]]
    failed_key: str


SENSITIVITY = MidashengSelectEntityDescription(
    key="sensitivity",
    translation_key="sensitivity",
    options=list(SENSITIVITIES),
    entity_category=EntityCategory.CONFIG,
    value_fn=lambda source: source.sensitivity,
    set_fn=lambda coordinator, source_id, option: coordinator.async_set_sensitivity(
        source_id, option
    ),
    failed_key="sensitivity_failed",
)
MODE = MidashengSelectEntityDescription(
    key="mode",
    translation_key="mode",
    options=list(MODES),
    value_fn=lambda source: source.mode,
    set_fn=lambda coordinator, source_id, option: coordinator.async_set_mode(source_id, option),
    failed_key="mode_failed",
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensitivity and mode of every source, now and as sources appear."""
    coordinator = entry.runtime_data.coordinator
    async_add_source_entities(
        entry,
        async_add_entities,
        lambda source_id: [
            MidashengSourceSelect(coordinator, source_id, description)
            for description in (SENSITIVITY, MODE)
        ],
    )


class MidashengSourceSelect(MidashengEntity, SelectEntity):
    """A setting of a source, kept by the service."""

    entity_description: MidashengSelectEntityDescription

    @property
    def current_option(self) -> str | None:
        """The value the service reports for the source."""
        source = self.coordinator.sources.get(self.source_id)
        if source is None:
            return None
        value = self.entity_description.value_fn(source)
        return value if value in self.options else None

    async def async_select_option(self, option: str) -> None:
        """Change the setting on the service."""
        try:
            await self.entity_description.set_fn(self.coordinator, self.source_id, option)
        except MidashengError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=self.entity_description.failed_key,
                translation_placeholders={"error": str(err)},
            ) from err
