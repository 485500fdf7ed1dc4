"""Event entities: per source one fired with the category of every sound event start, and
one fired with each sound gesture made there (double clap, triple clap, double snap)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .api import ServiceInfo, SoundEvent
from .coordinator import MidashengConfigEntry, MidashengCoordinator, SourceUpdate, UpdateKind
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class MidashengEventEntityDescription(EventEntityDescription):
    """An event entity of a source: the updates that fire it, its event types, its data."""

    fired_by: UpdateKind
    types_fn: Callable[[ServiceInfo], tuple[str, ...]]
    data_fn: Callable[[SoundEvent, SourceUpdate], dict[str, Any]]


DESCRIPTION = MidashengEventEntityDescription(
    key="sound",
    translation_key="sound",
    fired_by=UpdateKind.EVENT,
    types_fn=lambda info: info.category_ids,
    data_fn=lambda event, update: {
        "label": event.label,
        "score": event.score,
        "event_id": event.id,
        "seq": event.seq,
        "mode": event.mode,
        "intrusion": event.intrusion,
        "replay": update.replay,
    },
)
# Fired once when a gesture is made: the coordinator passes no replayed or late gesture on.
GESTURE = MidashengEventEntityDescription(
    key="gesture",
    translation_key="gesture",
    fired_by=UpdateKind.GESTURE,
    types_fn=lambda info: info.gesture_ids,
    data_fn=lambda event, update: {"seq": event.seq},
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the event entity of every source, now and as sources appear."""
    coordinator = entry.runtime_data.coordinator

    async_add_source_entities(
        entry,
        async_add_entities,
        lambda source_id: [
            MidashengEventEntity(coordinator, source_id, DESCRIPTION),
            *(
                [MidashengEventEntity(coordinator, source_id, GESTURE)]
                if coordinator.info.gesture_ids
                else []
            ),
        ],
    )


class MidashengEventEntity(MidashengEntity, EventEntity):
    """Fires on its source: the category of each sound event start, or each gesture made."""

    entity_description: MidashengEventEntityDescription

    def __init__(
        self,
        coordinator: MidashengCoordinator,
        source_id: str,
        description: MidashengEventEntityDescription,
    ) -> None:
        """Offer the service's categories (or gestures) as event types."""
        super().__init__(coordinator, source_id, description)
        self._attr_event_types = list(description.types_fn(coordinator.info))

    @callback
    def _handle_update(self, update: SourceUpdate) -> None:
        if update.kind is not self.entity_description.fired_by:
            super()._handle_update(update)
            return
        event = update.event
        if not update.started or event is None or event.category not in self.event_types:
            return
        self._trigger_event(event.category, self.entity_description.data_fn(event, update))
        self.async_write_ha_state()
