"""Base entity for MiDasheng Audio: one device per audio source."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import MidashengConfigEntry, MidashengCoordinator, SourceUpdate, UpdateKind

MANUFACTURER = "MiDasheng"
# Home Assistant 2026 links a device to its parent by the parent's device id (`via_device`,
# by identifier, is deprecated there and goes in 2027.8); earlier releases know only that.
_VIA_DEVICE_ID = "via_device_id" in DeviceInfo.__optional_keys__


@callback
def async_add_source_entities(
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    make: Callable[[str], Iterable[Entity]],
) -> None:
    """Add a platform's entities for every source now, and for each source that appears."""
    coordinator = entry.runtime_data.coordinator

    @callback
    def add_source(source_id: str) -> None:
        # A source the service keeps belongs to its subentry (removed with it); one of the
        # service's config file to the entry.
        async_add_entities(
            make(source_id), config_subentry_id=coordinator.subentries.subentry_id(source_id)
        )

    for source_id in coordinator.sources:
        add_source(source_id)
    entry.async_on_unload(coordinator.async_add_new_source_listener(add_source))


class MidashengEntity(Entity):
    """An entity of one audio source, updated by the push connection."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    # Detectors say what is heard: they are unavailable while the source is not heard
    # (`MidashengCoordinator.hears`), never "clear".
    _detector = False

    def __init__(
        self,
        coordinator: MidashengCoordinator,
        source_id: str,
        description: EntityDescription,
    ) -> None:
        """Attach the entity to its source's device."""
        self.coordinator = coordinator
        self.source_id = source_id
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.unique_id}_{source_id}_{description.key}"
        source = coordinator.sources[source_id]
        info = DeviceInfo(
            identifiers={(DOMAIN, coordinator.device_identifier(source_id))},
            name=source.name,
            manufacturer=MANUFACTURER,
            model="Audio source",
            model_id=source.kind,
        )
        # The service's device is made at setup, before any platform adds entities.
        if _VIA_DEVICE_ID and (service := coordinator.async_get_device()) is not None:
            info["via_device_id"] = service.id
        else:
            info["via_device"] = (DOMAIN, coordinator.unique_id)  # type: ignore[typeddict-unknown-key]
        self._attr_device_info = info

    @property
    def available(self) -> bool:
        """Available while the push connection is up and the source exists; a detector only
        while its source is heard."""
        if self._detector:
            return self.coordinator.hears(self.source_id)
        return self.coordinator.connected and self.source_id in self.coordinator.sources

    async def async_added_to_hass(self) -> None:
        """Listen to the source's updates."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_source_listener(self.source_id, self._handle_update)
        )

    @callback
    def _handle_update(self, update: SourceUpdate) -> None:
        if self._wants_update(update):
            self.async_write_ha_state()

    def _wants_update(self, update: SourceUpdate) -> bool:
        """Whether an update changes this entity; connection and source changes always do."""
        return update.kind in (UpdateKind.CONNECTION, UpdateKind.SOURCE)
