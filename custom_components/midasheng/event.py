"""Event entities: per source one fired with the category of every sound event start, and
one fired with each sound gesture made there (double clap, triple clap, double snap)."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import MidashengConfigEntry, MidashengCoordinator, SourceUpdate, UpdateKind
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 0

DESCRIPTION = EventEntityDescription(key="sound", translation_key="sound")
GESTURE = EventEntityDescription(key="gesture", translation_key="gesture")


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
                [MidashengGestureEntity(coordinator, source_id, GESTURE)]
                if coordinator.info.gesture_ids
                else []
            ),
        ],
    )


class MidashengEventEntity(MidashengEntity, EventEntity):
    """Fires the category of each sound event heard on its source."""

    def __init__(
        self,
        coordinator: MidashengCoordinator,
        source_id: str,
        description: EventEntityDescription,
    ) -> None:
        """Offer every category the service detects as an event type."""
        super().__init__(coordinator, source_id, description)
        self._attr_event_types = list(coordinator.info.category_ids)

    @callback
    def _handle_update(self, update: SourceUpdate) -> None:
        if update.kind is not UpdateKind.EVENT:
            super()._handle_update(update)
            return
        event = update.event
        if not update.started or event is None or event.category not in self.event_types:
            return
        self._trigger_event(
            event.category,
            {
                "label": event.label,
                "score": event.score,
                "event_id": event.id,
                "seq": event.seq,
                "replay": update.replay,
            },
        )
        self.async_write_ha_state()


class MidashengGestureEntity(MidashengEntity, EventEntity):
    """Fires the gesture (double clap, triple clap, double snap) made on its source, once,
    when it is made: never for a gesture replayed after a reconnect."""

    def __init__(
        self,
        coordinator: MidashengCoordinator,
        source_id: str,
        description: EventEntityDescription,
    ) -> None:
        """Offer every gesture the service recognises as an event type."""
        super().__init__(coordinator, source_id, description)
        self._attr_event_types = list(coordinator.info.gesture_ids)

    @callback
    def _handle_update(self, update: SourceUpdate) -> None:
        if update.kind is not UpdateKind.GESTURE:
            super()._handle_update(update)
            return
        event = update.event
        if event is None or event.category not in self.event_types:
            return
        self._trigger_event(event.category, {"seq": event.seq})
        self.async_write_ha_state()
