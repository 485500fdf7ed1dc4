"""Binary sensors: one per watched sound category, on while the service hears it."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import CONF_CATEGORIES, TAUGHT_KIND
from .coordinator import MidashengConfigEntry, SourceUpdate, UpdateKind
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class MidashengBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A sound category as a binary sensor; the key is the category id."""


def _category(
    key: str, device_class: BinarySensorDeviceClass
) -> MidashengBinarySensorEntityDescription:
    return MidashengBinarySensorEntityDescription(
        key=key, translation_key=key, device_class=device_class
    )


DESCRIPTIONS: dict[str, MidashengBinarySensorEntityDescription] = {
    description.key: description
    for description in (
        _category("smoke_alarm", BinarySensorDeviceClass.SMOKE),
        _category("co_alarm", BinarySensorDeviceClass.CO),
        _category("fire_alarm", BinarySensorDeviceClass.SMOKE),
        _category("glass_break", BinarySensorDeviceClass.SAFETY),
        _category("dog_bark", BinarySensorDeviceClass.SOUND),
        _category("cat", BinarySensorDeviceClass.SOUND),
        _category("baby_cry", BinarySensorDeviceClass.SOUND),
        _category("scream", BinarySensorDeviceClass.SAFETY),
        _category("speech", BinarySensorDeviceClass.SOUND),
        _category("doorbell", BinarySensorDeviceClass.SOUND),
        _category("knock", BinarySensorDeviceClass.SOUND),
        # A sound, not a leak: MOISTURE means "wet", and a tap running is not water on the floor.
        _category("water_running", BinarySensorDeviceClass.SOUND),
        _category("siren", BinarySensorDeviceClass.SOUND),
        _category("cough", BinarySensorDeviceClass.SOUND),
        _category("appliance_beep", BinarySensorDeviceClass.SOUND),
        _category("loud_noise", BinarySensorDeviceClass.SOUND),
        _category("unusual_sound", BinarySensorDeviceClass.SOUND),
    )
}


def watched_descriptions(
    entry: MidashengConfigEntry,
) -> list[MidashengBinarySensorEntityDescription]:
    """Descriptions for the categories the service offers and the user watches."""
    info = entry.runtime_data.coordinator.info
    watched = set(entry.options.get(CONF_CATEGORIES, info.category_ids))
    return [
        DESCRIPTIONS.get(category.id)
        # A category this version does not know yet still works, named by the service.
        or MidashengBinarySensorEntityDescription(
            key=category.id, name=category.name, device_class=BinarySensorDeviceClass.SOUND
        )
        for category in info.categories
        # A taught sound is always watched: teaching it asked for its sensor.
        if category.id in watched or category.kind == TAUGHT_KIND
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the category binary sensors of every source, now and as sources appear."""
    coordinator = entry.runtime_data.coordinator
    descriptions = watched_descriptions(entry)

    # Categories no longer watched (or no longer offered) leave no orphaned entities.
    entity_registry = er.async_get(hass)
    wanted = {
        f"{coordinator.unique_id}_{source_id}_{description.key}"
        for source_id in coordinator.sources
        for description in descriptions
    }
    wanted |= {
        f"{coordinator.unique_id}_{source_id}_{HEARING_PROBLEM.key}"
        for source_id in coordinator.sources
    }
    for entity_entry in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if entity_entry.domain == Platform.BINARY_SENSOR and entity_entry.unique_id not in wanted:
            entity_registry.async_remove(entity_entry.entity_id)

    async_add_source_entities(
        entry,
        async_add_entities,
        lambda source_id: (
            MidashengHearingProblemEntity(coordinator, source_id, HEARING_PROBLEM),
            *(
                MidashengBinarySensorEntity(coordinator, source_id, description)
                for description in descriptions
            ),
        ),
    )


HEARING_PROBLEM = BinarySensorEntityDescription(
    key="hearing_problem",
    translation_key="hearing_problem",
    device_class=BinarySensorDeviceClass.PROBLEM,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class MidashengHearingProblemEntity(MidashengEntity, BinarySensorEntity):
    """On while the source is not heard: its stream is down, stalled or gone, or the
    service is unreachable. Available whenever the entry is loaded, so an automation can
    tell a deaf smoke detector from a quiet house."""

    @property
    def available(self) -> bool:
        """Available while the source exists, connected or not, once the first subscription
        said how the sources are (not in the moments between setup and that)."""
        return self.coordinator.ever_connected and self.source_id in self.coordinator.sources

    @property
    def is_on(self) -> bool:
        """Whether the source is not heard."""
        return not self.coordinator.hears(self.source_id)


class MidashengBinarySensorEntity(MidashengEntity, BinarySensorEntity):
    """On while an event of its category is ongoing on its source; unavailable while the
    source is not heard."""

    entity_description: MidashengBinarySensorEntityDescription
    _detector = True

    @property
    def is_on(self) -> bool:
        """Whether the category is being heard."""
        return (
            self.coordinator.active_event(self.source_id, self.entity_description.key) is not None
        )

    def _wants_update(self, update: SourceUpdate) -> bool:
        if update.kind is UpdateKind.EVENT:
            return update.event is not None and update.event.category == self.entity_description.key
        return super()._wants_update(update)
