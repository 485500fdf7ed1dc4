"""Select: each source's sensitivity, as the service keeps it.

The service owns a source's sensitivity (its detection thresholds live there, and other
clients may change it); this entity shows the value the service reports and changes it on
the service. The integration's options only choose the sensitivity of sources added from
Home Assistant.
"""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import SENSITIVITIES, MidashengError
from .const import DOMAIN
from .coordinator import MidashengConfigEntry
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 1

SENSITIVITY = SelectEntityDescription(
    key="sensitivity",
    translation_key="sensitivity",
    options=list(SENSITIVITIES),
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensitivity of every source, now and as sources appear."""
    coordinator = entry.runtime_data.coordinator
    async_add_source_entities(
        entry,
        async_add_entities,
        lambda source_id: [MidashengSensitivitySelect(coordinator, source_id, SENSITIVITY)],
    )


class MidashengSensitivitySelect(MidashengEntity, SelectEntity):
    """How readily a source's sensors switch on."""

    @property
    def current_option(self) -> str | None:
        """The sensitivity the service reports for the source."""
        source = self.coordinator.sources.get(self.source_id)
        if source is None or source.sensitivity not in SENSITIVITIES:
            return None
        return source.sensitivity

    async def async_select_option(self, option: str) -> None:
        """Change the source's sensitivity on the service."""
        try:
            await self.coordinator.async_set_sensitivity(self.source_id, option)
        except MidashengError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="sensitivity_failed",
                translation_placeholders={"error": str(err)},
            ) from err
