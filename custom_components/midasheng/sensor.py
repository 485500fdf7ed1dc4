"""Sensors: sound level, last sound heard, stream state and error, and learned hours of
each source.

What an event carries (label, score, ids, time) is the event entity's: its state is the time
of the last sound and its attributes the event's data. The sensors keep no attributes that
change with every event, which the recorder would store with every state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .api import SOURCE_STATES
from .const import LEVEL_INTERVAL, LEVEL_JUMP_DB, LEVEL_MIN_INTERVAL
from .coordinator import MidashengConfigEntry, MidashengCoordinator, SourceUpdate, UpdateKind
from .entity import MidashengEntity, async_add_source_entities

PARALLEL_UPDATES = 0

UNIT_DBFS = "dBFS"


def _level(coordinator: MidashengCoordinator, source_id: str) -> StateType:
    level = coordinator.levels.get(source_id)
    return None if level is None else round(level, 1)


def _last_sound(coordinator: MidashengCoordinator, source_id: str) -> StateType:
    if (event := coordinator.last_events.get(source_id)) is None:
        return None
    return event.category if event.category in coordinator.info.category_ids else None


def _stream_state(coordinator: MidashengCoordinator, source_id: str) -> StateType:
    state = coordinator.sources[source_id].state
    return state if state in SOURCE_STATES else None


def _stream_error(coordinator: MidashengCoordinator, source_id: str) -> StateType:
    error = coordinator.sources[source_id].error
    # A state holds 255 characters; the full text is in the repair issue and diagnostics.
    return None if not error else error if len(error) <= 255 else f"{error[:254]}…"


def _learned_hours(coordinator: MidashengCoordinator, source_id: str) -> StateType:
    return coordinator.sources[source_id].learned_hours


@dataclass(frozen=True, kw_only=True)
class MidashengSensorEntityDescription(SensorEntityDescription):
    """A per-source sensor, its value and the updates that change it."""

    value_fn: Callable[[MidashengCoordinator, str], StateType]
    update_on: frozenset[UpdateKind] = frozenset()


DESCRIPTIONS: tuple[MidashengSensorEntityDescription, ...] = (
    MidashengSensorEntityDescription(
        key="sound_level",
        translation_key="sound_level",
        native_unit_of_measurement=UNIT_DBFS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=_level,
        update_on=frozenset({UpdateKind.LEVEL}),
    ),
    MidashengSensorEntityDescription(
        key="last_sound",
        translation_key="last_sound",
        device_class=SensorDeviceClass.ENUM,
        value_fn=_last_sound,
        update_on=frozenset({UpdateKind.EVENT}),
    ),
    MidashengSensorEntityDescription(
        key="stream_state",
        translation_key="stream_state",
        device_class=SensorDeviceClass.ENUM,
        options=list(SOURCE_STATES),
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=_stream_state,
    ),
    # How many hours of the day the service has learned what the source usually hears there
    # (it reports unusual sounds at those hours only).
    MidashengSensorEntityDescription(
        key="learned_hours",
        translation_key="learned_hours",
        native_unit_of_measurement="h",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_learned_hours,
    ),
    MidashengSensorEntityDescription(
        key="stream_error",
        translation_key="stream_error",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=_stream_error,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MidashengConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up the sensors of every source, now and as sources appear."""
    coordinator = entry.runtime_data.coordinator
    descriptions = [
        replace(description, options=list(coordinator.info.category_ids))
        if description.key == "last_sound"
        else description
        for description in DESCRIPTIONS
    ]

    async_add_source_entities(
        entry,
        async_add_entities,
        lambda source_id: (
            (
                MidashengLevelSensorEntity
                if description.key == "sound_level"
                else MidashengSensorEntity
            )(coordinator, source_id, description)
            for description in descriptions
        ),
    )


class MidashengSensorEntity(MidashengEntity, SensorEntity):
    """A per-source sensor driven by the push connection."""

    entity_description: MidashengSensorEntityDescription

    @property
    def native_value(self) -> StateType:
        """The sensor's value."""
        return self.entity_description.value_fn(self.coordinator, self.source_id)

    def _wants_update(self, update: SourceUpdate) -> bool:
        if update.kind is UpdateKind.EVENT:
            # The last sound changes on starts only; an end leaves it as it was.
            return update.kind in self.entity_description.update_on and update.started
        return update.kind in self.entity_description.update_on or super()._wants_update(update)


class MidashengLevelSensorEntity(MidashengSensorEntity):
    """Sound level, throttled: the service sends several a second, the recorder needs few."""

    _detector = True

    _written_at: datetime | None = None
    _written_level: float | None = None

    def _wants_update(self, update: SourceUpdate) -> bool:
        if update.kind is not UpdateKind.LEVEL:
            return super()._wants_update(update)
        level = self.coordinator.levels.get(self.source_id)
        now = dt_util.utcnow()
        if self._written_at is not None and self._written_level is not None and level is not None:
            elapsed = now - self._written_at
            jumped = abs(level - self._written_level) >= LEVEL_JUMP_DB
            if elapsed < LEVEL_INTERVAL and not (jumped and elapsed >= LEVEL_MIN_INTERVAL):
                return False
        self._written_at = now
        self._written_level = level
        return True
