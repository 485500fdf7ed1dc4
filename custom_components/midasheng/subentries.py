"""Sources as config subentries: one per source the service keeps, both ways in step.

The service is where a source lives (it opens the stream, keeps the source in its data dir
and reports it over the WebSocket), so a subentry mirrors it:

- a source made from Home Assistant (the subentry flow) or elsewhere (the service's API, a
  satellite's push source) gets a subentry as soon as the service reports it; the source's
  device and entities belong to that subentry;
- deleting the subentry in Home Assistant deletes the source on the service. When the service
  cannot be reached, the deletion is kept (and saved) and done on the next connection, so the
  source does not come back;
- a source deleted on the service takes its subentry, device and entities with it.

Sources from the service's config file are not subentries: the service cannot delete them,
so they stay devices of the entry itself, as before.

Entries made before subentries existed are migrated the same way at setup: each source gets
its subentry and its existing device and entities move into it, keeping their entity ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntryChange,
    ConfigSubentry,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .api import MidashengConnectionError, MidashengError, MidashengNotFoundError, Source
from .const import CONF_SOURCE_ID, LOGGER, SUBENTRY_SOURCE

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

    from .coordinator import MidashengCoordinator


class SourceSubentries:
    """Keeps an entry's source subentries and the service's sources in step."""

    def __init__(self, hass: HomeAssistant, coordinator: MidashengCoordinator) -> None:
        """Start with the subentries the entry has."""
        self.hass = hass
        self.coordinator = coordinator
        self.entry = coordinator.entry
        # Sources whose subentry the user deleted while the service could not be told.
        self.pending_deletes: set[str] = set()
        # Deleted on the service, which has not yet said so: what it says until then about
        # the source (a message already on its way) does not bring the source back.
        self.deleted: set[str] = set()
        self._known: dict[str, str] = self.by_subentry()
        self._deleting: asyncio.Task[None] | None = None
        self._save: Callable[[], None] = lambda: None

    def by_subentry(self) -> dict[str, str]:
        """Subentry id -> source id of the entry's source subentries."""
        return {
            subentry_id: str(subentry.data[CONF_SOURCE_ID])
            for subentry_id, subentry in self.entry.subentries.items()
            if subentry.subentry_type == SUBENTRY_SOURCE and CONF_SOURCE_ID in subentry.data
        }

    def subentry_id(self, source_id: str) -> str | None:
        """The subentry of a source, None for a source of the service's config file."""
        for subentry_id, known_source in self.by_subentry().items():
            if known_source == source_id:
                return subentry_id
        return None

    @callback
    def async_start(self, save: Callable[[], None]) -> CALLBACK_TYPE:
        """Follow the user's deletions of subentries; `save` persists `pending_deletes`."""
        self._save = save

        @callback
        def changed(change: ConfigEntryChange, entry: ConfigEntry) -> None:
            if change is ConfigEntryChange.UPDATED and entry.entry_id == self.entry.entry_id:
                self._async_entry_changed()

        stop_listening = async_dispatcher_connect(self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, changed)

        def stop() -> None:
            stop_listening()
            if self._deleting is not None:
                self._deleting.cancel()

        return stop

    # The service -> Home Assistant

    @callback
    def async_sync(self, source: Source) -> str | None:
        """Give a source the service keeps its subentry (or its new name); the subentry id."""
        if not source.persistent or self.is_deleted(source.id):
            return None
        subentry_id = self.subentry_id(source.id)
        if subentry_id is None:
            subentry = ConfigSubentry(
                data=MappingProxyType({CONF_SOURCE_ID: source.id}),
                subentry_type=SUBENTRY_SOURCE,
                title=source.name,
                unique_id=source.id,
            )
            subentry_id = subentry.subentry_id
            self._known[subentry_id] = source.id
            self.hass.config_entries.async_add_subentry(self.entry, subentry)
            LOGGER.debug("Source %s is now subentry %s", source.id, subentry_id)
        elif (subentry := self.entry.subentries[subentry_id]).title != source.name:
            self.hass.config_entries.async_update_subentry(self.entry, subentry, title=source.name)
        self._move_device(source.id, subentry_id)
        return subentry_id

    def is_deleted(self, source_id: str) -> bool:
        """Whether the user deleted the source's subentry (the service may still have it)."""
        return source_id in self.pending_deletes or source_id in self.deleted

    @callback
    def async_service_sources(self, source_ids: set[str]) -> None:
        """The service's complete list of sources: deleted ones not in it are done."""
        self.deleted &= source_ids

    @callback
    def async_source_removed(self, source_id: str) -> bool:
        """Remove the subentry of a source the service no longer has (with its device and
        entities); False when the source had none."""
        self.deleted.discard(source_id)
        if (subentry_id := self.subentry_id(source_id)) is None:
            return False
        self._known.pop(subentry_id, None)
        self.hass.config_entries.async_remove_subentry(self.entry, subentry_id)
        return True

    @callback
    def _move_device(self, source_id: str, subentry_id: str) -> None:
        """Put a source's device and entities into its subentry (entries and devices made
        before sources were subentries belong to the entry itself)."""
        device = self.coordinator.async_get_device(source_id)
        if device is None:
            return
        # Entities first: a device leaving no-subentry takes along the entities still there.
        ent_reg = er.async_get(self.hass)
        for entity in er.async_entries_for_device(
            ent_reg, device.id, include_disabled_entities=True
        ):
            if (
                entity.config_entry_id == self.entry.entry_id
                and entity.config_subentry_id != subentry_id
            ):
                ent_reg.async_update_entity(entity.entity_id, config_subentry_id=subentry_id)
        entry_id = self.entry.entry_id
        dev_reg = dr.async_get(self.hass)
        if hasattr(device, "config_subentry_id"):
            # Home Assistant 2026: a device belongs to one entry and subentry; moved in one step.
            if device.config_subentry_id != subentry_id:
                dev_reg.async_update_device(device.id, new_config_subentry_id=subentry_id)
        else:
            subentries = device.config_entries_subentries.get(entry_id, set())
            if subentry_id not in subentries:
                dev_reg.async_update_device(
                    device.id, add_config_entry_id=entry_id, add_config_subentry_id=subentry_id
                )
            if None in subentries:
                dev_reg.async_update_device(
                    device.id, remove_config_entry_id=entry_id, remove_config_subentry_id=None
                )

    # Home Assistant -> the service

    @callback
    def _async_entry_changed(self) -> None:
        current = self.by_subentry()
        deleted = {
            source_id
            for subentry_id, source_id in self._known.items()
            if subentry_id not in current
        }
        self._known = current
        if not deleted:
            return
        LOGGER.debug("Subentries deleted; deleting sources %s on the service", sorted(deleted))
        self.pending_deletes |= deleted
        for source_id in deleted:
            # Gone for Home Assistant at once, whatever the service says until it deletes it.
            self.coordinator.async_forget_source(source_id)
        self._save()
        self.async_delete_pending()

    @callback
    def async_delete_pending(self) -> None:
        """Delete on the service the sources whose subentry was deleted (in the background)."""
        if not self.pending_deletes or (self._deleting is not None and not self._deleting.done()):
            return
        self._deleting = self.entry.async_create_background_task(
            self.hass, self._async_delete(), f"{self.entry.title} delete sources"
        )

    async def _async_delete(self) -> None:
        client = self.coordinator.client
        while self.pending_deletes:
            source_id = next(iter(sorted(self.pending_deletes)))
            try:
                await client.delete_source(source_id)
            except MidashengNotFoundError:
                pass
            except MidashengConnectionError as err:
                LOGGER.info(
                    "Could not delete source %s on the service (%s); trying again when it is "
                    "reachable",
                    source_id,
                    err,
                )
                return
            except MidashengError as err:
                # The service refuses (a source of its config file): deleting it again will
                # not help. Its device comes back as a device of the entry.
                LOGGER.warning("The service did not delete source %s: %s", source_id, err)
            else:
                self.deleted.add(source_id)
            self.pending_deletes.discard(source_id)
            self._save()
