"""Push connection to the service: one WebSocket per entry, resumed from the last rev seen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import random
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .api import (
    HEARING_STATES,
    ErrorMessage,
    EventMessage,
    LevelMessage,
    MidashengAuthError,
    MidashengClient,
    MidashengConnectionError,
    MidashengError,
    OverflowMessage,
    ServiceInfo,
    SoundEvent,
    SoundsMessage,
    Source,
    SourceMessage,
    SourceRemovedMessage,
    StorageMessage,
    SubscribedMessage,
    TaughtSound,
    WsMessage,
)
from .const import (
    CONF_REPAIR_AFTER,
    DEFAULT_REPAIR_AFTER,
    DOMAIN,
    EVENT_GESTURE,
    EVENT_SOUND,
    GESTURE_MAX_AGE,
    ISSUE_DEAF,
    ISSUE_STORAGE,
    ISSUE_UNREACHABLE,
    LOGGER,
    MIN_REPAIR_AFTER,
    RECONNECT_MAX_DELAY,
    RECONNECT_MIN_DELAY,
    SEEN_EVENTS_MAX,
    STORAGE_SAVE_DELAY,
    STORAGE_VERSION,
    TAUGHT_KIND,
)
from .resume import ResumeState, Verdict
from .subentries import SourceSubentries


@dataclass(kw_only=True)
class MidashengRuntimeData:
    """What a loaded entry keeps: the client, the push coordinator and the options it was
    loaded with (a change of them reloads the entry; a change of its subentries does not)."""

    client: MidashengClient
    coordinator: MidashengCoordinator
    options: dict[str, Any]


type MidashengConfigEntry = ConfigEntry[MidashengRuntimeData]


class UpdateKind(StrEnum):
    """What changed for a source's entities."""

    CONNECTION = "connection"
    SOURCE = "source"
    LEVEL = "level"
    EVENT = "event"
    GESTURE = "gesture"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceUpdate:
    """A change delivered to the entities of one source."""

    kind: UpdateKind
    event: SoundEvent | None = None
    started: bool = False
    replay: bool = False


type SourceListener = Callable[[SourceUpdate], None]


def _category_names(info: ServiceInfo) -> list[tuple[str, str]]:
    # Entities depend on category ids and names, not on the tagger's labels behind them.
    return [(category.id, category.name) for category in info.categories]


def storage_key(entry_id: str) -> str:
    """Storage key of an entry's resume state."""
    return f"{DOMAIN}.{entry_id}"


class MidashengCoordinator:
    """Keeps the state of one service from its WebSocket and tells entities what changed.

    Which event messages are new, changes or repeats, and where a subscription resumes, is
    decided by `ResumeState` (resume.py); it is persisted with the last sound of each source,
    so a restarted Home Assistant resumes with `after=<cursor>` without losing or repeating
    events.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MidashengConfigEntry,
        client: MidashengClient,
        info: ServiceInfo,
        sources: Iterable[Source],
    ) -> None:
        """Start from the state fetched over REST at setup."""
        self.hass = hass
        self.entry = entry
        self.client = client
        self.info = info
        assert entry.unique_id is not None
        self.unique_id: str = entry.unique_id
        self.sources: dict[str, Source] = {source.id: source for source in sources}
        self.levels: dict[str, float] = {
            s.id: s.level_dbfs for s in self.sources.values() if s.level_dbfs is not None
        }
        self.last_events: dict[str, SoundEvent] = {}
        self.latest: dict[tuple[str, str], SoundEvent] = {}
        self.connected = False
        # Whether a subscription ever completed: until then nothing is known about the sources.
        self.ever_connected = False
        self.resume = ResumeState(max_seen=SEEN_EVENTS_MAX)
        self.reconnects = 0
        self._open_events: dict[int, SoundEvent] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._listeners: dict[str, list[SourceListener]] = {}
        self._new_source_listeners: list[Callable[[str], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._disconnected_since: datetime | None = None
        self._lost_logged = False
        self._last_error: str | None = None
        self._unreachable_issue = False
        self._unreachable_timer: CALLBACK_TYPE | None = None
        # Sources not heard: the timer that raises their repair issue, or the issue raised.
        self._deaf_timers: dict[str, CALLBACK_TYPE] = {}
        self._deaf_issues: set[str] = set()
        self._storage_issue = False
        self._overflowed = False
        # Handshake bookkeeping: what the service sent between subscribe and "subscribed".
        self._resumed_from: int | None = None
        self._handshake_seqs: set[int] = set()
        self._handshake_sources: set[str] = set()
        self.subentries = SourceSubentries(hass, self)

    # Identity

    def device_identifier(self, source_id: str) -> str:
        """The device registry identifier of a source."""
        return f"{self.unique_id}_{source_id}"

    @callback
    def async_get_device(self, source_id: str | None = None) -> dr.DeviceEntry | None:
        """This entry's device of a source, or the service's own device without one.

        Looked up among the entry's own devices: since Home Assistant 2026 identifiers are
        unique per config entry only, and the registry's global lookup is deprecated.
        """
        wanted = (
            DOMAIN,
            self.unique_id if source_id is None else self.device_identifier(source_id),
        )
        dev_reg = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(dev_reg, self.entry.entry_id):
            if wanted in device.identifiers:
                return device
        return None

    def source_id_from_identifier(self, identifier: str) -> str | None:
        """The source id a device identifier stands for; None for the service device."""
        prefix = f"{self.unique_id}_"
        return identifier[len(prefix) :] if identifier.startswith(prefix) else None

    @property
    def unreachable_issue_id(self) -> str:
        """Repair issue id for this entry's unreachable service."""
        return f"{ISSUE_UNREACHABLE}_{self.entry.entry_id}"

    def deaf_issue_id(self, source_id: str) -> str:
        """Repair issue id for a source that is not heard."""
        return f"{ISSUE_DEAF}_{self.entry.entry_id}_{source_id}"

    @property
    def repair_after(self) -> timedelta:
        """How long a source may go unheard (or the service unreached) before a repair issue."""
        value = self.entry.options.get(CONF_REPAIR_AFTER, DEFAULT_REPAIR_AFTER)
        try:
            delay = timedelta(**value)
        except TypeError:
            delay = timedelta(**DEFAULT_REPAIR_AFTER)
        return max(delay, MIN_REPAIR_AFTER)

    # State for entities

    def hears(self, source_id: str) -> bool:
        """Whether the source is being heard: connected, and its audio arriving (or a push
        source idle by design). When not, no event can come from it, so its detectors must
        not say "clear"."""
        source = self.sources.get(source_id)
        return self.connected and source is not None and source.state in HEARING_STATES

    def deaf_reason(self, source_id: str) -> str | None:
        """Why a source is not heard, for people; None while it is."""
        if self.hears(source_id):
            return None
        if not self.connected:
            return f"the service at {self.client.url} is not connected ({self._last_error})"
        source = self.sources.get(source_id)
        if source is None:
            return "the service no longer has this source"
        return f"{source.state}: {source.error}" if source.error else source.state

    def active_event(self, source_id: str, category: str) -> SoundEvent | None:
        """The newest ongoing event of a category on a source."""
        ongoing = [
            event
            for event in self._open_events.values()
            if event.source == source_id and event.category == category
        ]
        return max(ongoing, key=lambda event: event.seq, default=None)

    def active_events(self) -> list[SoundEvent]:
        """Every ongoing event, oldest first."""
        return sorted(self._open_events.values(), key=lambda event: event.seq)

    # Listeners

    @callback
    def async_add_source_listener(self, source_id: str, listener: SourceListener) -> CALLBACK_TYPE:
        """Call `listener` on every change of one source (and of the connection)."""
        listeners = self._listeners.setdefault(source_id, [])
        listeners.append(listener)

        @callback
        def remove() -> None:
            listeners.remove(listener)

        return remove

    @callback
    def async_add_new_source_listener(self, listener: Callable[[str], None]) -> CALLBACK_TYPE:
        """Call `listener` with the id of each source that appears after setup."""
        self._new_source_listeners.append(listener)

        @callback
        def remove() -> None:
            self._new_source_listeners.remove(listener)

        return remove

    @callback
    def _notify(self, source_id: str, update: SourceUpdate) -> None:
        for listener in list(self._listeners.get(source_id, ())):
            listener(update)

    @callback
    def _notify_all(self, update: SourceUpdate) -> None:
        for source_id in list(self._listeners):
            self._notify(source_id, update)

    # Lifecycle

    async def async_load(self) -> None:
        """Restore the resume point saved by an earlier run, and the sources still to delete
        on the service."""
        data = await self._store.async_load()
        if not data:
            return
        self.subentries.pending_deletes = {str(s) for s in data.get("pending_deletes", [])}
        try:
            self.resume = ResumeState.from_dict(data, max_seen=SEEN_EVENTS_MAX)
            self.last_events = {
                source_id: SoundEvent.from_dict(event)
                for source_id, event in data.get("last_events", {}).items()
                if source_id in self.sources
            }
        except (KeyError, TypeError, ValueError) as err:
            LOGGER.warning("Ignoring unreadable resume state: %s", err)
            self.resume = ResumeState(max_seen=SEEN_EVENTS_MAX)
            self.last_events = {}

    def _data_to_store(self) -> dict[str, Any]:
        return {
            **self.resume.as_dict(),
            "pending_deletes": sorted(self.subentries.pending_deletes),
            "last_events": {
                source_id: event.as_dict() for source_id, event in self.last_events.items()
            },
        }

    @callback
    def async_sync_subentries(self) -> None:
        """Give every source the service keeps its subentry; remove the subentries of sources
        it no longer has. At setup, when the service's list of sources is complete."""
        for source_id in self.subentries.pending_deletes:
            self.sources.pop(source_id, None)
        for source in self.sources.values():
            self.subentries.async_sync(source)
        for source_id in set(self.subentries.by_subentry().values()) - set(self.sources):
            self.subentries.async_source_removed(source_id)
        self.entry.async_on_unload(
            self.subentries.async_start(
                lambda: self._store.async_delay_save(self._data_to_store, 0)
            )
        )

    @callback
    def async_start(self) -> None:
        """Open the push connection in the background."""
        self._task = self.entry.async_create_background_task(
            self.hass, self._async_run(), f"{DOMAIN} {self.entry.title} push connection"
        )

    async def async_stop(self) -> None:
        """Close the push connection, save the resume point, withdraw the repair issues."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False
        await self._store.async_save(self._data_to_store())
        if self._unreachable_timer is not None:
            self._unreachable_timer()
            self._unreachable_timer = None
        ir.async_delete_issue(self.hass, DOMAIN, self.unreachable_issue_id)
        for source_id in set(self._deaf_timers) | self._deaf_issues:
            self._clear_deaf(source_id)
        ir.async_delete_issue(self.hass, DOMAIN, self.storage_issue_id)
        self._storage_issue = False

    async def _async_run(self) -> None:
        delay = RECONNECT_MIN_DELAY
        check_info = False
        while True:
            error: Exception
            try:
                if check_info and not await self._async_check_info():
                    return
                self._begin_handshake()
                async for message in self.client.subscribe(after=self._resumed_from):
                    if self._handle_message(message):
                        delay = RECONNECT_MIN_DELAY
                error = MidashengConnectionError("the subscription ended")
            except MidashengAuthError as err:
                self._set_disconnected(err)
                LOGGER.warning("The service rejected the token; reauthentication needed")
                self.entry.async_start_reauth(self.hass)
                return
            except MidashengError as err:
                error = err
            except Exception as err:  # noqa: BLE001
                # A bug must not silently end the connection: log it and reconnect.
                LOGGER.exception("Unexpected error in the push connection")
                error = err
            self.reconnects += 1
            check_info = True
            if self._overflowed:
                # The service dropped us for falling behind: resume at once, nothing is lost.
                self._overflowed = False
                continue
            self._set_disconnected(error)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def _async_check_info(self) -> bool:
        """Re-read /v1/info after a reconnect; reload the entry when the service changed."""
        info = await self.client.info()
        # New categories or capabilities (a speech model loaded or gone) change the entities.
        if (
            not info.compatible
            or _category_names(info) != _category_names(self.info)
            or set(info.capabilities) != set(self.info.capabilities)
        ):
            LOGGER.info("The service changed (version %s); reloading", info.version)
            self.hass.config_entries.async_schedule_reload(self.entry.entry_id)
            return False
        if info.version != self.info.version and (device := self.async_get_device()):
            dr.async_get(self.hass).async_update_device(device.id, sw_version=info.version)
        self.info = info
        return True

    @callback
    def _set_disconnected(self, err: Exception) -> None:
        now = dt_util.utcnow()
        self._last_error = str(err) or type(err).__name__
        if self._disconnected_since is None:
            self._disconnected_since = now
        if not self._lost_logged:
            LOGGER.info("Connection to the service at %s lost: %s", self.client.url, err)
            self._lost_logged = True
        if not self._unreachable_issue and self._unreachable_timer is None:
            self._unreachable_timer = async_call_later(
                self.hass, self.repair_after, self._raise_unreachable
            )
        if self.connected:
            self.connected = False
            self._notify_all(SourceUpdate(kind=UpdateKind.CONNECTION))

    @callback
    def _raise_unreachable(self, _now: datetime) -> None:
        self._unreachable_timer = None
        if self.connected:
            return
        self._unreachable_issue = True
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.unreachable_issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_UNREACHABLE,
            translation_placeholders={
                "title": self.entry.title,
                "url": self.client.url,
                "error": self._last_error or "",
            },
        )

    @callback
    def _set_connected(self) -> None:
        if self._lost_logged:
            LOGGER.info("Connection to the service at %s restored", self.client.url)
            self._lost_logged = False
        if self._unreachable_timer is not None:
            self._unreachable_timer()
            self._unreachable_timer = None
        if self._unreachable_issue:
            ir.async_delete_issue(self.hass, DOMAIN, self.unreachable_issue_id)
            self._unreachable_issue = False
        self._disconnected_since = None
        self.connected = True
        self.ever_connected = True
        for source_id in self.sources:
            self._check_deaf(source_id)
        self._notify_all(SourceUpdate(kind=UpdateKind.CONNECTION))

    # Sources not heard

    @callback
    def _check_deaf(self, source_id: str) -> None:
        """Start the repair timer of a source that stopped being heard; withdraw both when
        it is heard again. Only while connected: an unreachable service has its own issue."""
        if not self.connected:
            return
        if self.hears(source_id):
            self._clear_deaf(source_id)
            return
        if source_id in self._deaf_timers or source_id in self._deaf_issues:
            return
        LOGGER.info(
            "Source %s is not heard: %s; its detectors are unavailable",
            source_id,
            self.deaf_reason(source_id),
        )

        @callback
        def raise_issue(_now: datetime) -> None:
            self._deaf_timers.pop(source_id, None)
            if not self.connected or self.hears(source_id) or source_id not in self.sources:
                return
            self._deaf_issues.add(source_id)
            source = self.sources[source_id]
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self.deaf_issue_id(source_id),
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key=ISSUE_DEAF,
                translation_placeholders={
                    "title": self.entry.title,
                    "source": source.name,
                    "state": source.state,
                    "error": source.error or "none",
                    "minutes": f"{self.repair_after.total_seconds() / 60:g}",
                },
            )

        self._deaf_timers[source_id] = async_call_later(self.hass, self.repair_after, raise_issue)

    @callback
    def _clear_deaf(self, source_id: str) -> None:
        if (cancel := self._deaf_timers.pop(source_id, None)) is not None:
            cancel()
        if source_id in self._deaf_issues:
            self._deaf_issues.discard(source_id)
            ir.async_delete_issue(self.hass, DOMAIN, self.deaf_issue_id(source_id))

    # The service's storage

    @property
    def storage_issue_id(self) -> str:
        """Repair issue raised while the service cannot store events."""
        return f"{ISSUE_STORAGE}_{self.entry.entry_id}"

    @callback
    def _handle_storage(self, ok: bool, problem: str | None) -> None:
        if ok:
            if self._storage_issue:
                LOGGER.info("The service at %s can store events again", self.client.url)
                ir.async_delete_issue(self.hass, DOMAIN, self.storage_issue_id)
                self._storage_issue = False
            return
        LOGGER.warning("The service at %s has a storage problem: %s", self.client.url, problem)
        self._storage_issue = True
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.storage_issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_STORAGE,
            translation_placeholders={"title": self.entry.title, "problem": problem or ""},
        )

    # Messages

    def _begin_handshake(self) -> None:
        self._resumed_from = self.resume.resume_after()
        self._handshake_seqs = set()
        self._handshake_sources = set()

    @callback
    def _handle_message(self, message: WsMessage) -> bool:
        """Apply one message; True when the subscription is complete."""
        match message:
            case EventMessage(event=event, replay=replay):
                self._handshake_seqs.add(event.seq)
                self._handle_event(event, replay=replay)
            case LevelMessage(source=source_id, dbfs=dbfs):
                if source_id in self.sources:
                    self.levels[source_id] = dbfs
                    self._notify(source_id, SourceUpdate(kind=UpdateKind.LEVEL))
            case SourceMessage(source=source):
                self._handshake_sources.add(source.id)
                self._handle_source(source)
            case SourceRemovedMessage(source_id=source_id):
                self._remove_source(source_id)
            case SubscribedMessage(last_seq=last_seq):
                self._handle_subscribed(last_seq)
                return True
            case ErrorMessage(error=error):
                LOGGER.warning("The service reported an error: %s", error)
            case OverflowMessage():
                LOGGER.debug("Fell behind the service's event stream; resuming")
                self._overflowed = True
            case StorageMessage(ok=ok, problem=problem):
                self._handle_storage(ok, problem)
            case SoundsMessage(sounds=sounds):
                self._handle_sounds(sounds)
        return False

    @callback
    def _handle_sounds(self, sounds: tuple[TaughtSound, ...]) -> None:
        """Taught sounds are categories: when the ready ones change (taught, renamed,
        cleared, deleted), the entry reloads so their sensors and event types follow."""
        ready = {(sound.id, sound.name) for sound in sounds if sound.ready}
        known = {(c.id, c.name) for c in self.info.categories if c.kind == TAUGHT_KIND}
        if ready != known:
            LOGGER.info("Taught sounds changed; reloading to show them")
            self.hass.config_entries.async_schedule_reload(self.entry.entry_id)

    @callback
    def _handle_event(self, event: SoundEvent, *, replay: bool) -> None:
        seq = event.seq
        verdict = self.resume.judge(seq, event.rev, ongoing=event.ongoing)
        if verdict is Verdict.REPEAT:
            return
        started = verdict is Verdict.NEW
        if event.category in self.info.gesture_ids:
            self._handle_gesture(event, started=started, replay=replay)
            return
        if started:
            self.last_events[event.source] = event
            self._fire(event, "start", replay)
        if event.ongoing:
            self._open_events[seq] = event
        else:
            self._open_events.pop(seq, None)
            self._fire(event, "end", replay)
        self.latest[(event.source, event.category)] = event
        self._store.async_delay_save(self._data_to_store, STORAGE_SAVE_DELAY)
        self._notify(
            event.source,
            SourceUpdate(kind=UpdateKind.EVENT, event=event, started=started, replay=replay),
        )

    @callback
    def _handle_gesture(self, event: SoundEvent, *, started: bool, replay: bool) -> None:
        """A gesture is a command: it triggers once, when it is made. Its end, a repeat, and
        a gesture replayed or arriving late (a reconnect) trigger nothing."""
        if event.ongoing:
            self._open_events[event.seq] = event
        else:
            self._open_events.pop(event.seq, None)
        self._store.async_delay_save(self._data_to_store, STORAGE_SAVE_DELAY)
        if not started or replay:
            return
        if event.start is not None:
            age = (dt_util.utcnow() - event.start).total_seconds()
            if age > GESTURE_MAX_AGE:
                LOGGER.debug(
                    "Gesture %s on %s is %.0f s old; ignored", event.category, event.source, age
                )
                return
        device = self.async_get_device(event.source)
        self.hass.bus.async_fire(
            EVENT_GESTURE,
            {
                "config_entry_id": self.entry.entry_id,
                "device_id": device.id if device else None,
                "source": event.source,
                "type": event.category,
                "seq": event.seq,
            },
        )
        self._notify(
            event.source,
            SourceUpdate(kind=UpdateKind.GESTURE, event=event, started=True, replay=False),
        )

    @callback
    def _fire(self, event: SoundEvent, kind: str, replay: bool) -> None:
        device = self.async_get_device(event.source)
        source = self.sources.get(event.source)
        self.hass.bus.async_fire(
            EVENT_SOUND,
            {
                "config_entry_id": self.entry.entry_id,
                "device_id": device.id if device else None,
                "source": event.source,
                "source_name": source.name if source else None,
                "type": kind,
                "category": event.category,
                "label": event.label,
                "score": event.score,
                "seq": event.seq,
                "event_id": event.id,
                "start": event.start.isoformat() if event.start else None,
                "end": event.end.isoformat() if event.end else None,
                "level_dbfs": event.level_dbfs,
                "mode": event.mode,
                "intrusion": event.intrusion,
                "replay": replay,
            },
        )

    @callback
    def _handle_source(self, source: Source) -> None:
        if self.subentries.is_deleted(source.id):
            return  # Its subentry was deleted; the service is told, or was.
        previous = self.sources.get(source.id)
        self.sources[source.id] = source
        if source.level_dbfs is not None:
            self.levels[source.id] = source.level_dbfs
        self._check_deaf(source.id)
        self.subentries.async_sync(source)
        if previous is None:
            LOGGER.debug("Source %s appeared", source.id)
            for listener in list(self._new_source_listeners):
                listener(source.id)
            return
        if previous.name != source.name and (device := self.async_get_device(source.id)):
            dr.async_get(self.hass).async_update_device(device.id, name=source.name)
        self._notify(source.id, SourceUpdate(kind=UpdateKind.SOURCE))

    @callback
    def async_forget_source(self, source_id: str) -> None:
        """Drop a source, its state and its device (the service no longer has it, or its
        subentry was deleted)."""
        self._remove_source(source_id)

    @callback
    def _remove_source(self, source_id: str) -> None:
        if self.sources.pop(source_id, None) is None:
            self.subentries.async_source_removed(source_id)
            return
        LOGGER.debug("Source %s removed", source_id)
        self._clear_deaf(source_id)
        self.levels.pop(source_id, None)
        self.last_events.pop(source_id, None)
        for seq, event in list(self._open_events.items()):
            if event.source == source_id:
                del self._open_events[seq]
                self.resume.forget_open([seq])
        for key in [key for key in self.latest if key[0] == source_id]:
            del self.latest[key]
        if self.subentries.async_source_removed(source_id):
            return
        if device := self.async_get_device(source_id):
            dr.async_get(self.hass).async_remove_device(device.id)

    @callback
    def _handle_subscribed(self, last_seq: int) -> None:
        ours = self.resume.last_seq
        restarted, gone = self.resume.subscribed(
            last_seq, resumed_from=self._resumed_from, replayed=self._handshake_seqs
        )
        if restarted:
            LOGGER.warning(
                "The service's event log restarted (last seq %s, ours %s); following it",
                last_seq,
                ours,
            )
        self._drop_open(gone)
        for source_id in set(self.sources) - self._handshake_sources:
            self._remove_source(source_id)
        self.subentries.async_service_sources(self._handshake_sources)
        self.async_remove_stale_devices()
        self._store.async_delay_save(self._data_to_store, STORAGE_SAVE_DELAY)
        self._set_connected()
        self.subentries.async_delete_pending()

    @callback
    def _drop_open(self, seqs: Iterable[int]) -> None:
        for seq in list(seqs):
            if (event := self._open_events.pop(seq, None)) is not None:
                self._notify(event.source, SourceUpdate(kind=UpdateKind.EVENT, event=event))

    @callback
    def async_remove_stale_devices(self) -> None:
        """Remove devices of sources the service no longer has."""
        dev_reg = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(dev_reg, self.entry.entry_id):
            for domain, identifier in device.identifiers:
                if domain != DOMAIN:
                    continue
                source_id = self.source_id_from_identifier(identifier)
                if source_id is not None and source_id not in self.sources:
                    dev_reg.async_remove_device(device.id)

    # Sensitivity

    async def async_set_sensitivity(self, source_id: str, sensitivity: str) -> None:
        """Change a source's sensitivity on the service (which keeps it); MidashengError."""
        await self.async_update_source(source_id, sensitivity=sensitivity)

    async def async_set_mode(self, source_id: str, mode: str) -> None:
        """Change a source's mode on the service (which keeps it); MidashengError."""
        await self.async_update_source(source_id, mode=mode)

    async def async_update_source(
        self,
        source_id: str,
        *,
        name: str | None = None,
        sensitivity: str | None = None,
        mode: str | None = None,
    ) -> Source:
        """Rename a source or change its sensitivity or mode on the service and show the
        change at once (the WebSocket repeats it); MidashengError."""
        changes = {"name": name, "sensitivity": sensitivity, "mode": mode}
        source = await self.client.update_source(
            source_id, **{key: value for key, value in changes.items() if value is not None}
        )
        if source_id in self.sources:
            self._handle_source(source)
        return source

    # Diagnostics

    def diagnostics(self) -> dict[str, Any]:
        """Connection and resume state for diagnostics."""
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "disconnected_since": self._disconnected_since,
            "not_heard": {
                source_id: self.deaf_reason(source_id)
                for source_id in self.sources
                if not self.hears(source_id)
            },
            "sources_to_delete": sorted(self.subentries.pending_deletes),
            "last_seq": self.resume.last_seq,
            "open_seqs": sorted(self.resume.open_seqs),
            "levels": dict(self.levels),
            "last_events": {
                source_id: event.as_dict() for source_id, event in self.last_events.items()
            },
        }
